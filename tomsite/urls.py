"""URL routes: the supervisors' admin, health probes and (later) the greenlights page."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "TOM supervisor console"
admin.site.site_title = "TOM"
admin.site.index_title = "Calls, tools and health"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("greenlights.urls")),
    path("", include("voice.urls")),
]
