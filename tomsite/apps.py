from __future__ import annotations

from django.apps import AppConfig


class TomsiteConfig(AppConfig):
    name = "tomsite"
    verbose_name = "TOM site"

    def ready(self) -> None:
        from tomsite import checks  # noqa: F401  (registers the system checks)
