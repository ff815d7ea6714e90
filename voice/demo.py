"""The run command's demo call: a Piper-made caller question through the real endpoint."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from calls.models import Call
from voice import tts
from voice.auth import fork_token_mint
from voice.client import CallReport, CallTimeout, ForkClient, Segment, read_wav, write_wav

DEMO_QUESTION = "Hello, what are your opening hours on Saturday?"


@dataclass
class DemoResult:
    call: Call | None
    report: CallReport
    # What went wrong, in words (a dropped connection, a close code, an error message,
    # no answer, no close within the wait); empty when the caller was answered.
    problems: list[str] = field(default_factory=list)


def web_log_hint() -> str:
    """Where a failed call's cause is written: the web process's log."""
    log = Path(settings.TOM_DATA_DIR) / "log" / "web.log"
    return (f"see the TOM web log: {log} (under manage.py tom_run or deploy/local/run.sh), "
            "or `journalctl -u tom-web` under systemd")


def demo_caller_wav() -> Path:
    """The caller's question, spoken once by the packaged Piper voice and kept."""
    path = Path(settings.TOM_DATA_DIR) / "demo" / "caller_question.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = tts.caller_voice()
        write_wav(path, engine.synthesize(DEMO_QUESTION), engine.rate)
    return path


def demo_call(*, ws_base: str, rate: int = 8000, synthetic: bool = False) -> DemoResult:
    """Place one call as FreeSWITCH would (8 kHz, μ-law line) and return what happened.

    ``synthetic`` marks the call as TOM's own test call in the call record.
    """
    call_uuid = f"{'synthetic' if synthetic else 'demo'}-{uuid.uuid4()}"
    client = ForkClient(
        url=f"{ws_base}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
        metadata={"uuid": call_uuid, "sampleRate": rate, "language": "en",
                  "direction": "inbound", **({"tomSynthetic": True} if synthetic else {})},
        rate=rate,
        segments=[Segment(read_wav(demo_caller_wav(), rate=rate, telephone=True), pause_s=8.0)],
    )
    try:
        report = asyncio.run(client.run())
        problems = report.problems(expect_answer=True)
    except CallTimeout as exc:
        report, problems = exc.report, [str(exc)]
    return DemoResult(call=Call.objects.filter(uuid=call_uuid).first(), report=report,
                      problems=problems)
