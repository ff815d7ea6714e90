from __future__ import annotations

from django.urls import path

from voice import views

app_name = "voice"

urlpatterns = [
    path("fork/token", views.fork_token, name="fork-token"),
]
