"""URL routes: the supervisors' admin, the live console, health probes and the greenlights page."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "TOM supervisor console"
admin.site.site_title = "TOM"
admin.site.index_title = "Calls, tools and health"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("console/", include("calls.console.urls")),
    path("", include("greenlights.urls")),
    path("", include("voice.urls")),
]
