from __future__ import annotations

from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"
    verbose_name = "Voice"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks and metrics register themselves on import: /metrics lists the metrics
        # before the first call. The policy variant form (calls) asks whether a variant's
        # models are installed; calls may not import voice, so voice hands it the check.
        from calls.variants import variant_check_register
        from voice import checks, metrics  # noqa: F401
        from voice.variant_checks import variant_models_check

        variant_check_register(check=variant_models_check)
