"""Two web processes with the real models behind HAProxy share their host's model servers.

The default design (``TOM_INFERENCE=process``): the first web process of the host starts
llama-server and TOM's speech server and supervises them; the second finds them through
the state files in the data folder's run/ and starts none. Both answer real questions,
asked by the project's fork client through HAProxy, with one copy of each model in memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls.models import Call
from greenlights.tests.test_haproxy import HAProxy, Web, balanced_webs
from voice import models, tts
from voice.client import ForkClient, Segment
from voice.dsp import g711
from voice.dsp.resample import resample
from voice.inference.server import LLM_SPEC
from voice.session.apology import APOLOGY_EN
from voice.speech.backend import SPEECH_SPEC
from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.models, pytest.mark.postgres, pytest.mark.redis]

QUESTIONS = ("Do you have brake pads for a Volkswagen Golf?",
             "What are your opening hours on Saturday?")


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # after "(comm)": state, ppid
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append((int(stat.parent.name), cmdline.decode(errors="replace")))
        except (OSError, IndexError, ValueError):
            continue  # it ended while we looked
    return found


async def _ask(server: LiveServer, question: bytes) -> Call:
    call_uuid = str(uuid.uuid4())
    report = await ForkClient(
        url=server.fork_url(call_uuid=call_uuid),
        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"}, rate=8000,
        segments=[Segment(question, pause_s=10.0)], wait_s=40).run()
    assert report.problems() == [], report.problems()
    assert report.turn_latencies() and report.turn_latencies()[0] is not None, report.as_dict()
    get = database_sync_to_async(lambda: Call.objects.filter(uuid=call_uuid).first())
    for _ in range(200):
        if (call := await get()) is not None and call.is_ended:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError("the call never ended")


@pytest.fixture
def shared(transactional_db: None, settings: Any,
           tmp_path: Path) -> Iterator[tuple[HAProxy, list[Web], Path]]:
    """Two web processes with the local models on the default design, behind HAProxy, on
    a host of their own (their own data folder: run/, its locks and state files)."""
    for name in models.required():
        models.assemble(name)
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models.models_dir())
    with balanced_webs(settings=settings, tmp_path=tmp_path, ready_s=240,
                       TOM_SESSION_BACKEND="local", TOM_INFERENCE="process",
                       TOM_DATA_DIR=str(data), TOM_STT_MODEL="tiny.en", TOM_STT_MODELS="",
                       TOM_CAPACITY_MEASURE="false") as (balancer, webs):
        yield balancer, webs, data


async def test_two_web_processes_share_the_hosts_model_servers(
        shared: tuple[HAProxy, list[Web], Path]) -> None:
    balancer, webs, data = shared
    voice = await sync_to_async(tts.PiperTts)(models.piper_voice_path())
    questions = [g711.ulaw_decode(g711.ulaw_encode(resample(
        await sync_to_async(voice.synthesize)(text), voice.rate, 8000))) for text in QUESTIONS]
    pids = {web.process.pid for web in webs}
    states = {spec.name: json.loads((data / "run" / spec.state_name).read_text())
              for spec in (LLM_SPEC, SPEECH_SPEC)}
    owners = {state["owner_pid"] for state in states.values()}
    # Both servers belong to one web process (the host's first), none to the other.
    assert len(owners) == 1 and owners <= pids, (states, pids)
    children = {pid: _children(pid) for pid in pids}
    owner = next(iter(owners))
    other = (pids - {owner}).pop()
    assert {pid for pid, _ in children[owner]} == {s["pid"] for s in states.values()}
    assert children[other] == [], children[other]
    assert any("llama-server" in cmd for _, cmd in children[owner])
    assert any("voice.speech" in cmd for _, cmd in children[owner])

    # Two callers at once: leastconn gives one to each process, and both are answered
    # by the shared models (no apology, the question heard).
    calls = await asyncio.gather(*(_ask(balancer.server, q) for q in questions))
    assert Counter(call.pid for call in calls) == Counter({owner: 1, other: 1})
    for call, text in zip(calls, QUESTIONS, strict=True):
        turns = await database_sync_to_async(lambda c=call: list(c.turns.all()))()
        assert turns and turns[0].agent_text and turns[0].agent_text != APOLOGY_EN
        heard = set(re.findall(r"[a-z]+", turns[0].caller_text.lower()))
        assert len(heard & set(re.findall(r"[a-z]+", text.lower()))) >= 4, turns[0].caller_text
    assert _children(other) == []  # still no second copy of any model
