"""The fork consumer's call slots and session start, in process: a session whose
``prepare()`` fails in an unforeseen way, and handshakes that arrive together at the hard
cap (``TOM_MAX_CONCURRENT_CALLS``; over the capacity below it: test_admission)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from calls.models import Call
from voice import admission, consumers
from voice.session.echo import EchoSession
from voice.signals import voiced
from voice.tests.conftest import fork_communicator
from voice.tests.test_bridge_live import ended_call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_slot(settings: Any) -> None:
    settings.TOM_SESSION_BACKEND = "echo"
    settings.TOM_MAX_CONCURRENT_CALLS = 1
    assert admission.admission_counts() == (0, 0)


async def test_an_unforeseen_prepare_error_ends_the_call_and_frees_its_slot(
        one_slot: None, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: EchoSession) -> None:
        raise OSError("voice folder unreadable")

    monkeypatch.setattr(EchoSession, "prepare", broken)
    call_uuid = str(uuid.uuid4())
    first = fork_communicator(call_uuid)
    assert (await first.connect())[0]
    await first.send_to(text_data=json.dumps({"uuid": call_uuid}))
    # The caller is told, in words that leak nothing of the server, and the call closes.
    message = json.loads(await first.receive_from())
    assert message == {"type": "error", "data": {"message": "internal error"}}
    assert await first.receive_output() == {"type": "websocket.close", "code": 1011}
    call = await ended_call(call_uuid)
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.SERVER_ERROR)
    assert admission.admission_counts() == (0, 0)
    # The one slot is free again at once, not after the 15-minute call limit.
    second = fork_communicator(str(uuid.uuid4()))
    assert (await second.connect())[0]
    await second.disconnect()
    await first.wait()


async def test_handshakes_arriving_together_cannot_both_take_the_last_slot(
        one_slot: None, monkeypatch: pytest.MonkeyPatch) -> None:
    authenticate = consumers.fork_authenticate

    async def slow(**kwargs: Any) -> Any:  # a token check that waits on the cache
        await asyncio.sleep(0.2)
        return await authenticate(**kwargs)

    monkeypatch.setattr(consumers, "fork_authenticate", slow)
    first, second = fork_communicator(str(uuid.uuid4())), fork_communicator(str(uuid.uuid4()))
    results = await asyncio.gather(first.connect(), second.connect())
    assert sorted(accepted for accepted, _ in results) == [False, True]
    assert admission.admission_counts() == (1, 1)
    for communicator, (accepted, _) in zip((first, second), results, strict=True):
        if accepted:
            await communicator.disconnect()
    assert admission.admission_counts() == (0, 0)


async def test_a_refused_token_gives_its_reserved_slot_back(one_slot: None) -> None:
    refused = WebsocketCommunicator(consumers.ForkConsumer.as_asgi(), "/ws/fork/?token=bad")
    assert (await refused.connect())[0] is False
    assert admission.admission_counts() == (0, 0)
    accepted = fork_communicator(str(uuid.uuid4()))
    assert (await accepted.connect())[0]
    await accepted.disconnect()


async def test_audio_queued_while_the_session_prepares_is_no_flood(
        one_slot: None, monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow_models(self: EchoSession) -> None:
        await asyncio.sleep(3.0)

    monkeypatch.setattr(EchoSession, "prepare", slow_models)
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    # FreeSWITCH keeps sending in real time meanwhile: 3 s of audio (48 KB, beyond the
    # 2 s burst) reach the consumer at once when the models are ready.
    speech = voiced(8000, 1.0) + bytes(16_000 * 2)
    for offset in range(0, len(speech), 320):
        await fork.send_to(bytes_data=speech[offset:offset + 320])
        await asyncio.sleep(0.02)
    outputs = []
    while not await fork.receive_nothing(timeout=1.0):
        outputs.append(await fork.receive_output())
    # Answered, and not closed as a flood.
    assert [json.loads(o.get("text") or "{}").get("type") for o in outputs] == [
        "transcription", "playAudio"], outputs
    await fork.disconnect()
    assert (await ended_call(call_uuid)).end_reason == Call.EndReason.CALLER_HANGUP


async def test_a_flood_while_the_session_prepares_is_closed_before_the_models_are_ready(
        one_slot: None, monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow_models(self: EchoSession) -> None:
        await asyncio.sleep(10.0)

    monkeypatch.setattr(EchoSession, "prepare", slow_models)
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    loop = asyncio.get_running_loop()
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": 8000}))
    started = loop.time()
    # 64,000-byte frames, 25 a second: under the message limit, ~100x real time at 8 kHz.
    # Each is judged on arrival even though the session is still loading; before, they
    # waited in daphne's unbounded queue until prepare() returned.
    for _ in range(100):
        await fork.send_to(bytes_data=bytes(64_000))
        await asyncio.sleep(0.04)
        if not await fork.receive_nothing(timeout=0.001):
            break
    message = json.loads(await fork.receive_from(timeout=2))
    assert message["type"] == "error" and "real time" in message["data"]["message"]
    assert await fork.receive_output(timeout=2) == {"type": "websocket.close", "code": 1008}
    assert loop.time() - started < 5.0  # the models would have taken 10 s
    call = await ended_call(call_uuid)
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.RATE_LIMITED)
    assert admission.admission_counts() == (0, 0)
    await fork.wait()
