"""Greenlight runs in the admin: read-only evidence, like calls."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from greenlights.models import GreenlightResult, GreenlightRun


class ResultInline(admin.TabularInline):
    model = GreenlightResult
    extra = 0
    can_delete = False
    fields = ("name", "category", "state", "summary", "ms", "call", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GreenlightRun)
class GreenlightRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "started_at", "finished_at", "trigger", "state")
    list_filter = ("state", "trigger")
    readonly_fields = ("trigger", "state", "only", "started_at", "finished_at", "error")
    inlines = (ResultInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from /greenlights/, the command or the schedule
