"""Place a call through TOM's fork endpoint as FreeSWITCH's mod_audio_fork would."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice.auth import fork_token_mint
from voice.client import (
    CallReport,
    CallTimeout,
    ForkClient,
    Segment,
    close_code_text,
    read_wav,
    write_wav,
)
from voice.demo import web_log_hint
from voice.signals import voiced


class Command(BaseCommand):
    help = ("Stream WAV files (or a test buzz) to /ws/fork/ as mod_audio_fork does; print the "
            "transcript and per-turn latency; write what the caller heard.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("wav", nargs="*",
                            help="caller utterances in order, each PATH or PATH@PAUSE_S (a short "
                                 "pause makes the next one interrupt the agent); default: a "
                                 "one-second test buzz")
        parser.add_argument("--url", default=f"ws://{settings.TOM_HOST}:{settings.TOM_PORT}",
                            help="server base URL (ws:// or wss://)")
        parser.add_argument("--path", default="/ws/fork/",
                            choices=["/ws/fork/", "/ws/audio-stream/"])
        parser.add_argument("--mode", default="file", choices=["file", "stream"])
        parser.add_argument("--rate", type=int, default=8000, choices=[8000, 16000, 24000])
        parser.add_argument("--pause", type=float, default=2.0,
                            help="seconds of silence after each utterance")
        parser.add_argument("--telephone", action="store_true",
                            help="pass the audio through μ-law first, like a phone line")
        parser.add_argument("--encoding", default="l16", choices=["l16", "pcmu", "pcma"])
        parser.add_argument("--token", help="use this token instead of minting one")
        parser.add_argument("--uuid", help="the call's uuid in the metadata (default: the "
                            "token's subject, else a new one)")
        parser.add_argument("--language", default=settings.TOM_LANGUAGE)
        parser.add_argument("--caller", default="", help="caller number (hashed by TOM)")
        parser.add_argument("--fast", action="store_true", help="do not pace in real time (TOM "
                            "closes a call with 1008 once it is over 1.5x real time beyond its "
                            "burst allowance, TOM_RATE_LIMIT_AUDIO_*)")
        parser.add_argument("--wait", type=float, default=30.0,
                            help="seconds TOM may take, after the caller hangs up, to finish "
                                 "its answer and close the call (default 30)")
        parser.add_argument("--no-answer-ok", action="store_true",
                            help="do not fail when TOM sends no audio after the last utterance")
        parser.add_argument("--out", type=Path, help="write what the caller heard to this WAV")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        rate = options["rate"]
        if options["wav"]:
            segments = []
            for item in options["wav"]:
                path, _, pause = item.rpartition("@") if "@" in item else (item, "", "")
                try:
                    pcm = read_wav(Path(path), rate=rate, telephone=options["telephone"])
                    segments.append(Segment(pcm, pause_s=float(pause or options["pause"])))
                except (OSError, ValueError, EOFError) as exc:
                    raise CommandError(f"{item}: {exc}") from None
        else:
            segments = [Segment(voiced(rate, 1.0), pause_s=options["pause"])]
        call_uuid = str(uuid.uuid4())
        if options["token"]:
            # A token opens only the call it names (its `sub`): the metadata must say the
            # same uuid. Read unverified: the server is the one that checks it.
            try:
                claims = jwt.decode(options["token"], options={"verify_signature": False})
            except jwt.PyJWTError as exc:
                raise CommandError(f"--token is not a JWT: {exc}") from None
            call_uuid = str(claims.get("sub") or call_uuid)
        call_uuid = options["uuid"] or call_uuid
        token = options["token"] or fork_token_mint(call_uuid=call_uuid)
        query = f"token={token}&mode={options['mode']}"
        if options["encoding"] != "l16":
            query += f"&encoding={options['encoding']}"
        metadata = {"uuid": call_uuid, "sampleRate": rate, "mixType": "mono",
                    "direction": "inbound", "language": options["language"]}
        if options["caller"]:
            metadata["caller"] = options["caller"]
        client = ForkClient(
            url=f"{options['url'].rstrip('/')}{options['path']}?{query}", metadata=metadata,
            rate=rate, segments=segments, fast=options["fast"], encoding=options["encoding"],
            subprotocol=None if options["path"] == "/ws/audio-stream/" else
            settings.TOM_FORK_SUBPROTOCOL, wait_s=options["wait"],
        )
        try:
            report = asyncio.run(client.run())
        except CallTimeout as exc:
            self._show(call_uuid, exc.report, rate, options, problems=[str(exc)])
            raise CommandError(f"call {call_uuid} failed: {exc}; {web_log_hint()}") from None
        except (OSError, TimeoutError) as exc:
            raise CommandError(f"could not reach {options['url']}: {exc}") from None
        except Exception as exc:  # websockets' handshake errors name the HTTP status
            raise CommandError(f"fork call failed: {exc}") from None
        problems = report.problems(expect_answer=not options["no_answer_ok"])
        self._show(call_uuid, report, rate, options, problems=problems)
        if problems:
            raise CommandError(f"call {call_uuid} failed:\n  - " + "\n  - ".join(problems)
                               + f"\n  {web_log_hint()}")

    def _show(self, call_uuid: str, report: CallReport, rate: int, options: dict[str, Any],
              *, problems: list[str]) -> None:
        if options["out"]:
            write_wav(options["out"], report.heard_pcm(rate), rate)
        if options["json"]:
            self.stdout.write(json.dumps({"call_uuid": call_uuid, **report.as_dict(),
                                          "problems": problems}, indent=2))
            return
        self.stdout.write(f"call {call_uuid}: closed with "
                          + close_code_text(report.close_code, report.close_reason))
        for item in report.transcripts:
            self.stdout.write(f"  turn {item.get('turn')} {item.get('role')}: {item.get('text')}")
        for index, latency in enumerate(report.turn_latencies(), start=1):
            shown = "no answer" if latency is None else f"{latency * 1000:.0f} ms"
            self.stdout.write(f"  turn {index}: end of speech -> first agent audio {shown}")
        for error in report.errors:
            self.stdout.write(self.style.ERROR(f"  error from TOM: {error}"))
