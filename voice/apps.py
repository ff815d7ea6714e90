from __future__ import annotations

from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"
    verbose_name = "Voice"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the metrics at start-up so /metrics lists them before the first call.
        from voice import checks, metrics  # noqa: F401
