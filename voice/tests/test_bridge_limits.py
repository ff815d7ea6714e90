"""Bad input against a real daphne server: each gets its close code or 403, the Call row
and a metric record why, and other calls keep being served meanwhile."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.request
import uuid
from typing import Any

import jwt
import pytest
import websockets
from django.conf import settings

from calls.models import Call
from voice.auth import fork_token_mint
from voice.client import ForkClient, Segment
from voice.tests.conftest import LiveServer, voiced
from voice.tests.test_bridge_live import ended_call

pytestmark = pytest.mark.slow


def _metric(server: LiveServer, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                     if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def _refused(url: str, **kwargs: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with websockets.connect(url, subprotocols=["audio.drachtio.org"],  # type: ignore[list-item]
                                      open_timeout=5, **kwargs):
            pass
    return int(caught.value.response.status_code)


def _token(**claims: Any) -> str:
    base = {"jti": uuid.uuid4().hex, "exp": int(time.time()) + 60, "aud": "tom-fork",
            "sub": str(uuid.uuid4())}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None},
                      settings.TOM_JWT_SECRET, algorithm="HS256")


async def test_bad_credentials_are_refused_at_the_handshake(live_server_echo: LiveServer) -> None:
    server = live_server_echo
    good = fork_token_mint(call_uuid=str(uuid.uuid4()))
    async with websockets.connect(server.ws(token=good), subprotocols=["audio.drachtio.org"]  # type: ignore[list-item]
                                  ) as ws:
        assert ws.subprotocol == "audio.drachtio.org"
    cases = {
        "missing": server.ws(),
        "replayed": server.ws(token=good),
        "expired": server.ws(token=_token(exp=int(time.time()) - 5)),
        "wrong_audience": server.ws(token=_token(aud="someone-else")),
        "missing_claim": server.ws(token=_token(jti=None)),
        "bad_token": server.ws(token=jwt.encode({"jti": "x", "exp": int(time.time()) + 60},
                                                "not-the-secret-" + "x" * 32, algorithm="HS256")),
    }
    for reason, url in cases.items():
        assert await _refused(url) == 403, reason
        assert _metric(server, "tom_telephony_handshakes_refused_total", reason=reason) >= 1
    assert await _refused(server.ws(), additional_headers={
        "Authorization": "Basic " + base64.b64encode(b"freeswitch:guess").decode()}) == 403


async def test_basic_auth_as_mod_audio_fork_sends_it(live_server_factory: Any) -> None:
    server = live_server_factory(TOM_FORK_BASIC_AUTH_USERNAME="freeswitch",
                                 TOM_FORK_BASIC_AUTH_PASSWORD="s3cret-pass")
    good = {"Authorization": "Basic " + base64.b64encode(b"freeswitch:s3cret-pass").decode()}
    async with websockets.connect(server.ws(), additional_headers=good):
        pass
    bad = {"Authorization": "Basic " + base64.b64encode(b"freeswitch:wrong").decode()}
    assert await _refused(server.ws(), additional_headers=bad) == 403
    assert _metric(server, "tom_telephony_handshakes_refused_total", reason="bad_basic") == 1


async def _open(server: LiveServer, call_uuid: str | None = None) -> Any:
    return await websockets.connect(server.fork_url(call_uuid=call_uuid),
                                    subprotocols=["audio.drachtio.org"],  # type: ignore[list-item]
                                    max_size=None)


async def _close_of(ws: Any) -> tuple[int | None, list[dict[str, Any]]]:
    messages = []
    try:
        async for message in ws:
            if isinstance(message, str):
                messages.append(json.loads(message))
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, messages


async def test_each_bad_input_gets_its_close_code(live_server_echo: LiveServer) -> None:
    server = live_server_echo
    # A good call runs through all of it.
    good_uuid = str(uuid.uuid4())
    good = asyncio.create_task(ForkClient(
        url=server.fork_url(call_uuid=good_uuid),
        metadata={"uuid": good_uuid, "sampleRate": 8000}, rate=8000,
        segments=[Segment(voiced(8000, 0.8), pause_s=1.2)]).run())

    # Oversized frame: 1009, Call failed with frame_too_large.
    big_uuid = str(uuid.uuid4())
    ws = await _open(server, big_uuid)
    await ws.send(json.dumps({"uuid": big_uuid}))
    await ws.send(bytes(settings.TOM_MAX_FRAME_BYTES + 2))
    code, messages = await _close_of(ws)
    assert code == 1009 and messages[-1]["type"] == "error"
    call = await ended_call(big_uuid)
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.FRAME_TOO_LARGE)

    # Flood: 1008, rate_limited.
    flood_uuid = str(uuid.uuid4())
    ws = await _open(server, flood_uuid)
    await ws.send(json.dumps({"uuid": flood_uuid}))
    with contextlib.suppress(websockets.ConnectionClosed):  # the server may close mid-burst
        for _ in range(1000):
            await ws.send(bytes(2))
    code, _ = await _close_of(ws)
    assert code == 1008
    assert (await ended_call(flood_uuid)).end_reason == Call.EndReason.RATE_LIMITED

    # Malformed metadata, metadata not an object, a bad rate, audio before metadata: 1007
    # after an error. (Metadata without a uuid is the token's call: every token names one.)
    for first in ("{not json", json.dumps([{"sampleRate": 8000}]),
                  json.dumps({"uuid": "x", "sampleRate": 11025}), b"\x00\x01" * 160):
        ws = await _open(server)
        await ws.send(first)
        code, messages = await _close_of(ws)
        assert code == 1007, first
        assert messages and messages[0]["type"] == "error" and messages[0]["data"]["message"]

    report = await good
    assert len(report.playbacks) == 1 and report.close_code == 1000
    assert _metric(server, "tom_telephony_calls_failed_total", reason="frame_too_large") == 1
    assert _metric(server, "tom_telephony_calls_failed_total", reason="rate_limited") == 1
    assert _metric(server, "tom_telephony_calls_failed_total", reason="protocol_error") == 4


async def test_token_for_another_call_is_refused(live_server_echo: LiveServer) -> None:
    ws = await _open(live_server_echo, call_uuid="call-a")
    await ws.send(json.dumps({"uuid": "call-b"}))
    code, messages = await _close_of(ws)
    assert code == 1007 and "token" in messages[0]["data"]["message"]


async def test_idle_connection_is_closed(live_server_factory: Any) -> None:
    server = live_server_factory(TOM_WS_IDLE_TIMEOUT_S=1.0)
    call_uuid = str(uuid.uuid4())
    ws = await _open(server, call_uuid)
    await ws.send(json.dumps({"uuid": call_uuid}))
    code, messages = await _close_of(ws)
    assert code == 1000 and messages[-1] == {"type": "disconnect", "data": {"reason": "idle"}}
    assert (await ended_call(call_uuid)).end_reason == Call.EndReason.IDLE_TIMEOUT


async def test_calls_beyond_the_limit_are_refused(live_server_factory: Any) -> None:
    server = live_server_factory(TOM_MAX_CONCURRENT_CALLS=1)
    first = await _open(server)
    try:
        assert await _refused(server.fork_url()) == 403
        assert _metric(server, "tom_telephony_handshakes_refused_total", reason="overloaded") == 1
    finally:
        await first.close()
    await asyncio.sleep(0.3)  # the server notices the hang-up and frees the slot
    second = await _open(server)
    await second.close()
