from __future__ import annotations

from django.apps import AppConfig


class ToolhubConfig(AppConfig):
    verbose_name = "ToolHub"
    name = "toolhub"
    default_auto_field = "django.db.models.BigAutoField"
