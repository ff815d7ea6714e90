from __future__ import annotations

from django.apps import AppConfig


class VoiceConfig(AppConfig):
    verbose_name = "Voice"
    name = "voice"
    default_auto_field = "django.db.models.BigAutoField"
