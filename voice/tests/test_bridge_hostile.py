"""Hostile input against a real daphne server: byte floods, endless speech, deep or bulky
JSON, DTMF floods. Each gets its close code (or is ignored, with a metric), and the
Call row records why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async

from calls.models import Call
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer, voiced
from voice.tests.test_bridge_limits import _close_of, _metric, _open
from voice.tests.test_bridge_live import ended_call

pytestmark = pytest.mark.slow


async def _started(server: LiveServer, **metadata: Any) -> tuple[Any, str]:
    call_uuid = str(uuid.uuid4())
    ws = await _open(server, call_uuid)
    await ws.send(json.dumps({"uuid": call_uuid, "sampleRate": 8000, **metadata}))
    return ws, call_uuid


async def _send_paced(ws: Any, *, frame: bytes, per_s: float, seconds: float) -> float:
    """Send ``frame`` ``per_s`` times a second until closed or ``seconds`` passed; return
    how long the server took to close (``seconds`` if it did not)."""
    loop = asyncio.get_running_loop()
    started, sent = loop.time(), 0
    with contextlib.suppress(websockets.ConnectionClosed):
        while loop.time() - started < seconds:
            await ws.send(frame)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / per_s - loop.time()))
    return loop.time() - started


async def test_byte_flood_under_the_message_limit_is_closed(live_server_echo: LiveServer) -> None:
    server = live_server_echo
    # 64,000-byte frames 100 times a second: under the 64 KiB frame limit and the
    # 120 messages/s limit, 400 times real time for 8 kHz L16.
    ws, call_uuid = await _started(server)
    took = await _send_paced(ws, frame=bytes(64_000), per_s=100, seconds=8)
    code, messages = await _close_of(ws)
    assert code == 1008 and took < 2, (code, took)
    assert messages[-1]["type"] == "error" and "real time" in messages[-1]["data"]["message"]
    call = await ended_call(call_uuid)
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.RATE_LIMITED)
    assert _metric(server, "tom_telephony_calls_failed_total", reason="rate_limited") == 1


async def test_audio_at_twice_real_time_is_closed_within_seconds(
        live_server_echo: LiveServer) -> None:
    server = live_server_echo
    frame = bytes(160)  # 20 ms of 8 kHz G.711: one byte a sample
    fast, fast_uuid = await _started(server, encoding="pcmu")
    steady, steady_uuid = await _started(server, encoding="pcmu")
    # The steady one sends at 1.25x real time, within the 1.5x budget: it stays open.
    took, steady_took = await asyncio.gather(
        _send_paced(fast, frame=frame, per_s=100, seconds=10),
        _send_paced(steady, frame=frame, per_s=62.5, seconds=6))
    code, _ = await _close_of(fast)
    # 2 s of burst drained at 0.5x real time: about 4 s (without the burst allowance it
    # would be at once; a loaded machine sends late frames in clumps, so a margin below).
    assert code == 1008 and 2.5 < took < 6, (code, took)
    assert (await ended_call(fast_uuid)).end_reason == Call.EndReason.RATE_LIMITED
    assert steady_took >= 6 and steady.close_code is None
    await steady.close()
    assert (await ended_call(steady_uuid)).end_reason == Call.EndReason.CALLER_HANGUP


async def test_endless_speech_is_cut_at_the_maximum(live_server_factory: Any) -> None:
    server = live_server_factory(TOM_MAX_UTTERANCE_S=2)
    call_uuid = str(uuid.uuid4())
    report = await ForkClient(
        url=server.fork_url(call_uuid=call_uuid), metadata={"uuid": call_uuid}, rate=8000,
        segments=[Segment(voiced(8000, 5.0), pause_s=1.5)]).run()
    # Echoed in 2 s pieces while the caller still talks, not once at the end.
    heard = [t["text"] for t in report.transcripts if t["role"] == "caller"]
    assert heard[:2] == ["(2000 ms of speech)", "(2000 ms of speech)"], heard
    assert report.playbacks[0].start < report.segment_ends[0]
    assert _metric(server, "tom_vad_utterances_cut_total") == 2
    assert (await ended_call(call_uuid)).end_reason == Call.EndReason.GRACEFUL_SHUTDOWN


@pytest.mark.parametrize(("where", "levels"), [("metadata", 30_000), ("control", 8_000)])
async def test_deeply_nested_json_is_invalid_payload(live_server_echo: LiveServer,
                                                     where: str, levels: int) -> None:
    server = live_server_echo
    deep = "[" * levels + "]" * levels  # control frames may hold 16 KiB
    call_uuid = str(uuid.uuid4())
    ws = await _open(server, call_uuid)
    if where == "control":
        await ws.send(json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    await ws.send(deep)
    code, messages = await _close_of(ws)
    assert code == 1007, code
    assert messages[-1]["type"] == "error" and "nested" in messages[-1]["data"]["message"]
    call = await database_sync_to_async(Call.objects.filter(uuid=call_uuid).first)()
    assert (call is None) == (where == "metadata")
    if call is not None:
        assert (await ended_call(call_uuid)).end_reason == Call.EndReason.PROTOCOL_ERROR


async def test_control_frames_are_capped_in_items_and_size(live_server_echo: LiveServer) -> None:
    server = live_server_echo
    dtmf = json.dumps({"type": "dtmf", "data": {"digit": "5"}}, separators=(",", ":"))
    # 400 DTMF messages in one 15 KB frame: a flood, not 400 database writes.
    ws, call_uuid = await _started(server)
    await ws.send(dtmf * 400)
    code, messages = await asyncio.wait_for(_close_of(ws), 3)
    assert code == 1008 and "more than 32" in messages[-1]["data"]["message"]
    call = await ended_call(call_uuid)
    assert (call.end_reason, call.dtmf) == (Call.EndReason.RATE_LIMITED, "")
    # 1,700 of them fill 63 KB: under the frame limit, over the control-frame limit.
    ws, call_uuid = await _started(server)
    await ws.send(dtmf * 1_700)
    code, messages = await asyncio.wait_for(_close_of(ws), 3)
    assert code == 1009 and messages[-1]["type"] == "error"
    assert (await ended_call(call_uuid)).end_reason == Call.EndReason.FRAME_TOO_LARGE


async def test_dtmf_beyond_the_rate_is_ignored(live_server_echo: LiveServer) -> None:
    server = live_server_echo
    ws, call_uuid = await _started(server)
    # 60 single-digit messages at once: the burst of 20 (and what refills at 5 a second
    # meanwhile) is recorded, the rest ignored.
    for _ in range(60):
        await ws.send(json.dumps({"type": "dtmf", "data": {"digit": "5"}}))
    await ws.send(bytes(320))  # still a live call afterwards: audio is accepted
    await asyncio.sleep(1.0)
    assert ws.close_code is None
    await ws.close()
    call = await ended_call(call_uuid)
    assert call.end_reason == Call.EndReason.CALLER_HANGUP
    assert call.dtmf == "5555"  # recorded (the last four are kept)
    assert 30 <= _metric(server, "tom_fork_dtmf_ignored_total", reason="rate") <= 40
