"""Run the greenlight checks now: exit 0 green, 1 yellow, 2 red (3: another run is on)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenlights.models import GreenlightRun, State
from greenlights.services import greenlight_run_create, greenlight_run_execute

EXIT = {State.GREEN: 0, State.YELLOW: 1, State.RED: 2}


class Command(BaseCommand):
    help = "Run TOM's greenlight checks against the live system and report each result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", action="append", metavar="NAME",
                            help="run only this check (repeatable)")
        parser.add_argument("--json", action="store_true", help="one JSON object per result")
        parser.add_argument("--url", help="TOM's web base URL (default TOM_HOST:TOM_PORT)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND,
                                        only=options["only"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if run is None:
            self.stderr.write("another greenlight run is in progress")
            sys.exit(3)
        url = (options["url"] or "").rstrip("/") or None
        run = greenlight_run_execute(run=run, web_url=url,
                                     ws_url=url.replace("http", "ws", 1) if url else None)
        for result in run.results.all():
            if options["json"]:
                self.stdout.write(json.dumps({
                    "check": result.name, "state": result.state, "summary": result.summary,
                    "values": result.values, "error": result.error, "ms": result.ms},
                    default=str))
            else:
                self.stdout.write(f"{result.state:6} {result.name:22} {result.summary}")
        if not options["json"]:
            self.stdout.write(f"run {run.pk}: {run.state}")
        sys.exit(EXIT[State(run.state)])
