"""Ready means warm, with the real models through the real server: /healthz says 503 (warm
false) while the web process loads its models and runs its warm-up turn, then 200; the
first call after that answers and barges in like a later one (issue 16: cold, the first
call took 4.5-6.2 s to its first audio and 0.5-2.2 s to stop for a barge-in, against
2.5 s and 17-25 ms warm)."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from voice import models, tts
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer
from voice.tests.test_local_models import _onset_s, _telephone

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUESTION = "Hello, what are your opening hours on Saturday morning?"
INTERRUPTION = "Stop, I only need the price of brake pads."
BARGE_IN_LIMIT_S = 0.12


@pytest.fixture(scope="module")
def assembled() -> None:
    for name in models.required():
        models.assemble(name)


class HealthWatch(threading.Thread):
    """What /healthz answered while the server started, until its first 200."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.seen: list[tuple[int, Any]] = []  # (status, "warm")
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    self.seen.append((response.status, json.loads(response.read())["warm"]))
                    return
            except urllib.error.HTTPError as exc:
                self.seen.append((exc.code, json.loads(exc.read())["warm"]))
            except OSError:
                pass  # not listening yet
            self.done.wait(0.1)


@dataclass
class Heard:
    e2e_s: float  # the caller's end of speech to the first agent audio (client clock)
    barge_in_s: float  # the interruption's speech onset to killAudio (client clock)


async def _call(server: LiveServer, question: bytes, interruption: bytes) -> Heard:
    """The question, then the caller talking over the answer (as test_local_models)."""
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(question, pause_s=0.0),
                                             Segment(interruption, pause_s=9.0,
                                                     over_reply_s=0.6)])
    report = await client.run()
    assert report.errors == [] and report.close_code == 1000, report.problems()
    e2e = report.turn_latencies()[0]
    assert e2e is not None and report.segment_ends[0] + e2e < report.segment_starts[1], \
        "the agent had not started speaking when the caller interrupted"
    onset = report.segment_starts[1] + _onset_s(interruption, 8000)
    kills = [k for k in report.kills if k >= onset - 0.05]
    assert kills, "no killAudio after the interruption"
    return Heard(e2e_s=e2e, barge_in_s=kills[0] - onset)


async def test_the_first_call_after_a_start_answers_and_barges_in_like_a_later_one(
        assembled: None, live_server_process: Any, free_port: int, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    voice = await sync_to_async(tts.get_tts)("en")  # this process's, not the server's
    question, interruption = [
        _telephone(await sync_to_async(voice.synthesize)(text), voice.rate)
        for text in (QUESTION, INTERRUPTION)]
    watch = HealthWatch(free_port)
    watch.start()
    log = tmp_path / "web.log"
    try:
        # Returns at the first 200 from /healthz, as a load balancer would send calls.
        # Models in process (pytest's TOM_INFERENCE=inline). The caller talks over each
        # reply 0.6 s into it (Segment.over_reply_s): a fixed pause missed quick, short
        # replies (CI: a later call's reply had ended, no killAudio to measure).
        server: LiveServer = live_server_process(
            log=log, TOM_SESSION_BACKEND="local", TOM_WARM_UP="true", TOM_LOG_LEVEL="INFO")
        # The server answered 200 to the fixture; the watcher sees it at its next poll and
        # returns. Stopping it now could lose that 200 (seen once in CI).
        watch.join(5)
    finally:
        watch.done.set()
        watch.join(5)
    assert (503, False) in watch.seen, watch.seen  # loading and warming: not ready
    assert watch.seen[-1] == (200, True) and all(ok == 503 for ok, _ in watch.seen[:-1])
    warmed = re.search(r"voice\.warm .*?\bseconds=([\d.]+)", log.read_text())
    assert warmed, "no voice.warm line in the web log"

    first = await _call(server, question, interruption)
    later = [await _call(server, question, interruption) for _ in range(2)]
    typical = sum(h.e2e_s for h in later) / len(later)
    with capsys.disabled():  # the issue asks for the figures
        print(f"\nwarm-up: {float(warmed[1]):.1f} s before /healthz said 200; "  # noqa: T201
              f"end of speech to first audio: first call {first.e2e_s:.2f} s, later calls "
              + ", ".join(f"{h.e2e_s:.2f} s" for h in later)
              + f"; barge-in (onset to killAudio): first call {first.barge_in_s * 1000:.0f} ms,"
              " later calls " + ", ".join(f"{h.barge_in_s * 1000:.0f} ms" for h in later))
    assert first.e2e_s <= 1.5 * typical, (first, later)
    assert first.barge_in_s <= BARGE_IN_LIMIT_S, (first, later)
