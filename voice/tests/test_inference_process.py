"""The LLM in llama.cpp's own llama-server, out of the web process (voice.inference):
a crash there costs one turn, and its slots decode several conversations at once.

Real models, the real llama-server binary (deploy/local/_llama_server.sh builds it) and,
for the fault, the real daphne server with the project's fork client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from calls.models import Call
from voice import models, stt, tts
from voice.client import ForkClient, Segment
from voice.dsp import g711
from voice.dsp.resample import resample
from voice.inference import server
from voice.inference.host import STATE_NAME, HostServer
from voice.inference.supervisor import ServerSupervisor
from voice.session.apology import APOLOGY_EN
from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.models, pytest.mark.slow]

FIRST = "Hello, what are your opening hours on Saturday morning?"
SECOND = "Thank you. Do you sell brake pads for a Volkswagen Golf?"


@pytest.fixture(scope="module")
def assembled() -> None:
    for name in models.required():
        models.assemble(name)
    assert server.server_binary() is not None, (
        "no llama-server: deploy/local/_llama_server.sh builds it into .venv/bin")


def _telephone(pcm: bytes, rate: int) -> bytes:
    return g711.ulaw_decode(g711.ulaw_encode(resample(pcm, rate, 8000)))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _kill_when_generating(url: str, run_dir: Path, done: threading.Event) -> dict[str, Any]:
    """SIGKILL the server the moment one of its slots is working on a request.

    The server is another process and says nothing when a request arrives, so its
    /slots is asked every 10 ms (a generation there takes hundreds of ms).
    """
    killed: dict[str, Any] = {}
    while not done.is_set():
        try:
            busy = [s for s in server.slots(url) if s.get("is_processing")]
        except httpx.HTTPError:
            busy = []
        if busy:
            state = json.loads((run_dir / STATE_NAME).read_text())
            os.kill(int(state["pid"]), signal.SIGKILL)
            killed.update(pid=int(state["pid"]), at=time.monotonic())
            return killed
        done.wait(0.01)
    return killed


async def test_kill_9_of_the_llm_server_mid_turn_costs_one_turn_not_the_call(
        assembled: None, live_server_process: Any, tmp_path: Path) -> None:
    # Its own data folder (so its own host lock and server), with the assembled models.
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models.models_dir())
    log = tmp_path / "daphne.log"
    live: LiveServer = live_server_process(
        log=log, TOM_SESSION_BACKEND="local", TOM_LLM_BACKEND="llamacpp-server",
        TOM_DATA_DIR=str(data), TOM_LLM_PARALLEL="2", TOM_LOG_LEVEL="INFO")
    before = json.loads((data / "run" / STATE_NAME).read_text())  # written when it was ready
    voice = await sync_to_async(tts.get_tts)("en")
    first = _telephone(await sync_to_async(voice.synthesize)(FIRST), voice.rate)
    second = _telephone(await sync_to_async(voice.synthesize)(SECOND), voice.rate)
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=live.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "language": "en"},
                        rate=8000, segments=[Segment(first, pause_s=10.0),
                                             Segment(second, pause_s=10.0)], wait_s=40)
    done = threading.Event()
    killer = asyncio.create_task(asyncio.to_thread(_kill_when_generating, before["url"],
                                                   data / "run", done))
    try:
        report = await client.run()
    finally:
        done.set()
    killed = await killer
    assert killed.get("pid") == before["pid"], "the server never worked on the first turn"

    assert report.close_code == 1000 and report.errors == [], report.as_dict()
    # The caller heard something after each question: the apology, then an answer.
    assert all(latency is not None for latency in report.turn_latencies()), report.as_dict()
    heard = report.heard_pcm(8000)
    cut = int(report.segment_starts[1] * 8000) * 2
    said_first = await sync_to_async(stt.get_stt().transcribe)(heard[:cut], rate=8000,
                                                               language="en")
    assert {"sorry", "moment"} <= _words(said_first.text), said_first.text

    call = await database_sync_to_async(Call.objects.get)(uuid=call_uuid)
    turns = await database_sync_to_async(lambda: list(call.turns.order_by("index")))()
    assert [t.index for t in turns][:2] == [0, 1]
    assert turns[0].agent_text == APOLOGY_EN  # the call's record says what happened
    assert turns[1].agent_text and turns[1].agent_text != APOLOGY_EN
    assert turns[1].llm_first_token_ms is not None
    # The fork client saw the answer to the second question as the agent's only line.
    agent_lines = [t["text"] for t in report.transcripts if t["role"] == "agent"]
    assert agent_lines == [turns[1].agent_text], report.transcripts

    # The supervisor restarted it (a new pid, same address) and said why in words.
    after = json.loads((data / "run" / STATE_NAME).read_text())
    assert after["url"] == before["url"] and after["pid"] != before["pid"]
    assert after["restarts"] == 1 and after["owner_pid"] == before["owner_pid"]
    text = log.read_text(errors="replace")
    assert "inference.server_died" in text and "killed by SIGKILL" in text, text[-3000:]


def _chat(url: str, question: str) -> dict[str, float]:
    """One streamed completion: seconds to the first token and to the end."""
    started = time.perf_counter()
    first = 0.0
    # Exactly 48 tokens each (ignore_eos), so one reply alone and four together compare.
    body = {"model": server.MODEL_ALIAS, "stream": True, "max_tokens": 48, "ignore_eos": True,
            "temperature": 0.0, "messages": [{"role": "user", "content": question}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.startswith("data:") and '"content"' in line and not first:
                first = time.perf_counter() - started
    return {"first": first, "total": time.perf_counter() - started}


def test_the_servers_slots_decode_several_conversations_at_once(
        assembled: None, tmp_path: Path, settings: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings.TOM_LLM_PARALLEL = 4
    binary = server.server_binary()
    assert binary is not None
    port = server.free_port()
    supervisor = ServerSupervisor(argv=server.server_argv(binary=binary, port=port),
                                  url=f"http://127.0.0.1:{port}", log_path=tmp_path / "s.log",
                                  start_timeout_s=120)
    supervisor.start()
    try:
        url = supervisor.wait_ready(120)
        alone = _chat(url, "Name three car parts.")
        seen_busy: list[int] = []
        results: list[dict[str, float]] = []
        threads = [threading.Thread(target=lambda q=q: results.append(_chat(url, q)))
                   for q in ("Name three car parts.", "What is a brake pad?",
                             "Say hello in German.", "What does a gasket do?")]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            # Four requests in flight: the server says how many slots work on one now.
            seen_busy.append(sum(bool(s.get("is_processing")) for s in server.slots(url)))
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        assert max(seen_busy) == 4, seen_busy  # all four at once, none queued behind another
        with capsys.disabled():
            print(f"\nllama-server --parallel 4: one alone {alone['total']:.2f} s "  # noqa: T201
                  f"(first token {alone['first'] * 1000:.0f} ms); four at once: first tokens "
                  f"{sorted(round(r['first'] * 1000) for r in results)} ms, all done in "
                  f"{max(r['total'] for r in results):.2f} s")
        # Decoded together: every caller's first token comes before any reply is finished
        # (queued, the fourth would start only after the third had ended).
        assert max(r["first"] for r in results) < min(r["total"] for r in results), results
    finally:
        supervisor.stop()


def test_a_second_process_of_the_host_uses_the_first_ones_server(
        assembled: None, tmp_path: Path) -> None:
    # flock() locks belong to an open file, so two views in one process contend as two
    # web processes would.
    first = HostServer(run_dir=tmp_path / "run", log_path=tmp_path / "llm.log", port=0,
                       start_timeout_s=120)
    second = HostServer(run_dir=tmp_path / "run", log_path=tmp_path / "llm.log", port=0,
                        start_timeout_s=120)
    try:
        url = first.endpoint(timeout=120)
        assert second.endpoint(timeout=5) == url
        assert first.owner and not second.owner
        state = second.state()
        assert state is not None and state.owner_pid == os.getpid()
    finally:
        if first.supervisor is not None:
            first.supervisor.stop()


def test_the_llama_server_binary_holds_no_avx512_or_amx_code() -> None:
    # Built with the wheel's portable flags (deploy/local/_llama_server.sh): what broke
    # on a CPU that reports AMX must not come back through the server.
    from voice.tests.test_native_build import forbidden_instructions, needs_objdump

    if needs_objdump.args[0]:
        pytest.skip(needs_objdump.kwargs["reason"])
    binary = server.server_binary()
    assert binary is not None, "no llama-server: deploy/local/_llama_server.sh builds it"
    assert forbidden_instructions(binary) == {}
