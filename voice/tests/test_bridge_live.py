"""Calls through a real daphne server with the project's own fork client."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async

from calls.models import Call
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer, voiced

pytestmark = pytest.mark.slow


def _metadata(call_uuid: str, rate: int = 8000, **extra: object) -> dict[str, object]:
    return {"uuid": call_uuid, "caller": "+49 30 98765432", "callee": "+49 40 5550100",
            "sampleRate": rate, "mixType": "mono", "direction": "inbound", "language": "en",
            **extra}


async def ended_call(call_uuid: str, wait_s: float = 5.0) -> Call:
    """The call row once the server has finished with it (it closes after the client)."""
    get = database_sync_to_async(Call.objects.filter(uuid=call_uuid).first)
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        call = await get()
        if (call is not None and call.is_ended) or asyncio.get_running_loop().time() > deadline:
            assert call is not None, "no call row"
            return call
        await asyncio.sleep(0.05)


async def _call(server: LiveServer, *, mode: str = "file", rate: int = 8000,
                segments: list[Segment] | None = None, **kwargs: object) -> tuple[object, Call]:
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid, mode=mode),
                        metadata=_metadata(call_uuid, rate), rate=rate,
                        segments=segments or [Segment(voiced(rate, 0.8), pause_s=1.2)],
                        **kwargs)  # type: ignore[arg-type]
    report = await client.run()
    return report, await ended_call(call_uuid)


async def test_echo_call_in_file_mode_plays_the_caller_back(live_server_echo: LiveServer) -> None:
    report, call = await _call(live_server_echo)
    assert report.errors == []
    assert len(report.playbacks) == 1
    played = report.playbacks[0]
    assert played.rate == 8000
    assert 0.7 <= played.end - played.start <= 1.0  # the 0.8 s utterance, trimmed of silence
    assert report.transcripts and report.transcripts[0]["role"] == "caller"
    latency = report.turn_latencies()[0]
    assert latency is not None and latency < 1.0
    assert report.close_code == 1000
    assert (call.status, call.end_reason) == (Call.Status.COMPLETED,
                                              Call.EndReason.GRACEFUL_SHUTDOWN)
    turns = await database_sync_to_async(list)(call.turns.all())
    assert len(turns) == 1 and turns[0].e2e_ms is not None


async def test_echo_call_in_stream_mode_sends_paced_binary_audio(
        live_server_echo: LiveServer) -> None:
    report, call = await _call(live_server_echo, mode="stream", rate=16000,
                               segments=[Segment(voiced(16000, 1.0), pause_s=2.0)])
    assert report.errors == []
    audio_s = sum(p.end - p.start for p in report.playbacks)
    assert 0.9 <= audio_s <= 1.3
    assert all(len(p.pcm) == 640 for p in report.playbacks)  # 20 ms frames at 16 kHz
    assert report.marks == ["turn-1"]  # the module's playout reply reached TOM
    assert call.end_reason == Call.EndReason.GRACEFUL_SHUTDOWN


async def test_caller_interrupting_the_echo_gets_kill_audio(live_server_echo: LiveServer) -> None:
    # A long utterance is echoed; the caller talks over it half a second in.
    segments = [Segment(voiced(8000, 2.0), pause_s=1.0), Segment(voiced(8000, 0.6, freq=180),
                                                                  pause_s=1.5)]
    report, call = await _call(live_server_echo, segments=segments)
    assert report.kills, "no killAudio after the caller barged in"
    onset = report.segment_starts[1]
    assert 0 <= report.kills[0] - onset < 0.4
    turns = await database_sync_to_async(list)(call.turns.order_by("index"))
    assert turns[0].barge_in is True
    assert turns[0].agent_audio_heard_ms is not None
    assert turns[0].agent_audio_heard_ms < turns[0].agent_audio_ms


async def test_ulaw_input_is_decoded(live_server_echo: LiveServer) -> None:
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=live_server_echo.fork_url(call_uuid=call_uuid, encoding="pcmu"),
                        metadata=_metadata(call_uuid), rate=8000, encoding="pcmu",
                        segments=[Segment(voiced(8000, 0.8), pause_s=1.2)])
    report = await client.run()
    assert len(report.playbacks) == 1 and report.errors == []


async def test_audio_stream_route_answers_with_stream_audio(
        live_server_echo: LiveServer) -> None:
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=live_server_echo.fork_url(call_uuid=call_uuid,
                                                      path="/ws/audio-stream/"),
                        metadata=_metadata(call_uuid), rate=8000, subprotocol=None,
                        segments=[Segment(voiced(8000, 0.8), pause_s=1.2)], finish="stop")
    report = await client.run()
    assert len(report.playbacks) == 1
    call = await ended_call(call_uuid)
    assert call.end_reason == Call.EndReason.CALLER_HANGUP
    assert call.metadata["flavour"] == "audio_stream"


async def test_concurrent_calls_are_served(live_server_echo: LiveServer) -> None:
    results = await asyncio.gather(*[_call(live_server_echo) for _ in range(5)])
    assert all(len(report.playbacks) == 1 for report, _ in results)  # type: ignore[attr-defined]
