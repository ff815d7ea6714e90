from __future__ import annotations

from django.apps import AppConfig


class ToolhubConfig(AppConfig):
    verbose_name = "ToolHub"
    name = "toolhub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the built-in tools (and their zeroed metric series) in every process.
        from toolhub import tools  # noqa: F401
