"""The minutely self-check (tom-selfcheck.timer): exit 0 when TOM's services answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenlights.selectors import selfcheck_status


class Command(BaseCommand):
    help = "Check the database, channel layer, broker and (with --url) the web process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="the web process, e.g. http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        status = asyncio.run(selfcheck_status(web_url=options["url"]))
        self.stdout.write(json.dumps(status))
        if not status["ok"]:
            failed = ", ".join(p["name"] for p in status["probes"] if not p["ok"])
            raise CommandError(f"unhealthy: {failed}")
