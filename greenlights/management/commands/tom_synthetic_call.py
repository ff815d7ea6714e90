"""The nightly synthetic call: a spoken question through the real fork endpoint."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice.demo import demo_call


class Command(BaseCommand):
    help = "Place one synthetic call (Piper-spoken question, 8 kHz μ-law) and report it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=f"ws://{settings.TOM_HOST}:{settings.TOM_PORT}",
                            help="the web process's WebSocket base URL")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = demo_call(ws_base=options["url"].rstrip("/"), synthetic=True)
        except OSError as exc:
            raise CommandError(f"could not reach {options['url']}: {exc}") from None
        report = result.report
        agent = [t["text"] for t in report.transcripts if t["role"] == "agent"]
        latencies = [round(s * 1000) for s in report.turn_latencies() if s is not None]
        self.stdout.write(json.dumps({
            "call_id": result.call.pk if result.call else None, "errors": report.errors,
            "answered": bool(agent), "e2e_ms": latencies}))
        if report.errors or not agent:
            raise CommandError("the synthetic call was not answered: "
                               + "; ".join(report.errors or ["no agent reply"]))
