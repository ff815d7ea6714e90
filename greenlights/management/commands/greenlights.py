"""Run the greenlight checks now: exit 0 green, 1 yellow, 2 red (3: another run is on)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from greenlights.models import GreenlightRun, State
from greenlights.services import greenlight_run_create, greenlight_run_execute
from greenlights.tasks import SELFCHECK

EXIT = {State.GREEN: 0, State.YELLOW: 1, State.RED: 2}


class Command(BaseCommand):
    help = "Run TOM's greenlight checks against the live system and report each result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", action="append", metavar="NAME",
                            help="run only this check (repeatable)")
        parser.add_argument("--json", action="store_true", help="one JSON object per result")
        parser.add_argument("--url", help="TOM's web base URL (default TOM_HOST:TOM_PORT)")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--selfcheck", action="store_true",
                          help="the minutely fast subset (what tom-selfcheck.timer runs)")
        kind.add_argument("--nightly", action="store_true",
                          help="every check as the nightly run (a red run counts as an error)")

    def handle(self, *args: Any, **options: Any) -> None:
        trigger, only = GreenlightRun.Trigger.COMMAND, options["only"]
        if options["selfcheck"]:
            trigger, only = GreenlightRun.Trigger.SCHEDULE, SELFCHECK
        elif options["nightly"]:
            trigger = GreenlightRun.Trigger.NIGHTLY
        try:
            run = greenlight_run_create(trigger=trigger, only=only)
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
