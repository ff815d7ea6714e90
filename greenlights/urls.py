from __future__ import annotations

from django.urls import path

from greenlights import views

app_name = "greenlights"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
