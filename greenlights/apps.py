from __future__ import annotations

from django.apps import AppConfig


class GreenlightsConfig(AppConfig):
    verbose_name = "Greenlights"
    name = "greenlights"
    default_auto_field = "django.db.models.BigAutoField"
