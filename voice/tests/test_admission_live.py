"""The over-capacity caller through a real daphne server and the project's fork client:
the busy message is heard (file and stream mode) and the line closes "busy"; past the
hard cap the handshake is still refused with 403."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest
import websockets

from calls.models import Call
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer, voiced
from voice.tests.test_bridge_limits import _metric, _refused
from voice.tests.test_bridge_live import ended_call

pytestmark = pytest.mark.slow


async def _hold(server: LiveServer, *, metadata: bool) -> Any:
    """A connection that holds a place; with ``metadata`` it is a call in progress."""
    call_uuid = str(uuid.uuid4())
    ws = await websockets.connect(server.fork_url(call_uuid=call_uuid),
                                  subprotocols=["audio.drachtio.org"],  # type: ignore[list-item]
                                  max_size=None)
    if metadata:
        await ws.send(json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    return ws


async def test_the_caller_over_capacity_hears_the_busy_message(
        live_server_factory: Any) -> None:
    server: LiveServer = live_server_factory(
        TOM_CAPACITY_CALLS=1, TOM_MAX_CONCURRENT_CALLS=2, TOM_TTS_BACKEND="espeak",
        TOM_LANGUAGE="en", TOM_WS_IDLE_TIMEOUT_S=120)
    served = await _hold(server, metadata=True)  # the one call this server serves
    try:
        for mode in ("file", "stream"):
            call_uuid = str(uuid.uuid4())
            report = await ForkClient(
                url=server.fork_url(call_uuid=call_uuid, mode=mode),
                metadata={"uuid": call_uuid, "sampleRate": 8000}, rate=8000,
                segments=[Segment(voiced(8000, 1.0), pause_s=15.0)]).run()
            summary = report.as_dict()
            assert report.disconnects == ["busy"], summary
            assert report.close_code == 1000 and report.errors == [], summary
            heard = np.frombuffer(report.heard_pcm(8000), dtype="<i2").astype(np.float64)
            assert summary["agent_audio_s"] > 2.0, summary
            assert np.sqrt(np.mean(heard ** 2)) > 300, summary  # speech, not silence
            # Hung up once the message played out, not mid-message nor after the caller.
            assert report.closed_at is not None and report.closed_at < 15.0, summary
            assert report.closed_at >= max(p.end for p in report.playbacks) - 0.3, summary
            if mode == "stream":  # jambonz: the mark after it, answered playout, ends it
                assert report.marks == ["turn-0"], summary
            call = await ended_call(call_uuid)
            assert (call.status, call.end_reason) == (Call.Status.COMPLETED,
                                                      Call.EndReason.BUSY)
        assert _metric(server, "tom_calls_busy_total") == 2
        # Past the hard cap (the served call and a busy one that has not spoken yet) the
        # handshake is refused as before.
        waiting = await _hold(server, metadata=False)
        try:
            assert await _refused(server.fork_url()) == 403
            assert _metric(server, "tom_telephony_handshakes_refused_total",
                           reason="overloaded") == 1
        finally:
            await waiting.close()
    finally:
        await served.close()
