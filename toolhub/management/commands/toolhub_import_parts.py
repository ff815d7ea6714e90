"""Import parts and fitments from a CSV file (the admin's "Import CSV", for scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from toolhub.catalog import parts_import_csv


class Command(BaseCommand):
    help = "Upsert parts from a CSV (one row per part and vehicle); a bad row imports nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["csv"]
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        report = parts_import_csv(text=text)
        if not report.ok:
            for error in report.errors:
                self.stderr.write(error)
            raise CommandError(report.summary().split(";")[0])
        self.stdout.write(report.summary())
