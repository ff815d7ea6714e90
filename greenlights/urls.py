from __future__ import annotations

from django.urls import path

from greenlights import pages, views

app_name = "greenlights"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("greenlights/", pages.page, name="page"),
    path("greenlights/run", pages.run_now, name="run"),
    path("greenlights/stream/<int:run_id>", pages.stream, name="stream"),
]
