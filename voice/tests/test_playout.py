"""Playout events: the transport reports when each agent utterance started and finished
playing (how much was heard, whether it was cut), and the turn ledger and graceful
shutdown await those reports instead of polling for them. Through the fork consumer in
process (WebsocketCommunicator), in file mode (drachtio) and stream mode (jambonz)."""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from calls import services as call_services
from calls.models import Call, CallTurn
from voice import consumers, transport
from voice.auth import fork_token_mint
from voice.call_turns import TurnLedger
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession
from voice.session.events import AgentAudio, AgentSpeech, BargeInConfirmed, Interruption
from voice.transport import StreamPacer

RATE, FRAME = 8000, 320
# The functions that wait for playout: none of them may sleep (a poll loop).
WAITERS = {"_graceful_shutdown", "finish_speaking", "heard_all", "record_when_played"}


def _pcm(ms: int) -> bytes:
    return b"\x10\x00" * (RATE * ms // 1000)


def _reply(ms: int) -> AgentSpeech:
    speech = AgentSpeech(turn=1, text="a reply", rate=RATE, caller_text="hello")
    speech.audio_bytes, speech.complete = len(_pcm(ms)), True
    return speech


class ReplySession(RealtimeSession):
    """Says one reply of ``reply_ms`` on the first caller frame (or, with ``at_end``, at the
    end of input); the ``cut_on``-th frame after it is a confirmed barge-in."""

    def __init__(self, *, call: CallStart, reply_ms: int, clauses: int = 1,
                 at_end: bool = False, cut_on: int = 0) -> None:
        super().__init__(call=call)
        self.reply_ms, self.clauses, self.at_end, self.cut_on = reply_ms, clauses, at_end, cut_on
        self.frames = 0

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        self.frames += 1
        if self.frames == 1 and not self.at_end:
            await self._say()
        elif self.frames == self.cut_on and self.speech is not None:
            self.speech.interrupted_at = at
            await self.events.put(Interruption(speech=self.speech, speech_onset_at=at))
            await self.events.put(BargeInConfirmed(speech=self.speech))

    async def _say(self) -> None:
        speech = AgentSpeech(turn=1, text="a reply", rate=RATE, caller_text="hello")
        self.speech = speech
        piece = _pcm(self.reply_ms // self.clauses)
        for index in range(self.clauses):
            speech.clauses.append((f"clause {index}", speech.audio_ms))
            speech.audio_bytes += len(piece)
            await self.events.put(AgentAudio(speech=speech, pcm=piece, text=f"clause {index}"))
        speech.complete = True
        await self.events.put(AgentAudio(speech=speech, pcm=b"", final=True))

    async def end_of_input(self, *, at: float) -> None:
        if self.at_end:
            await self._say()

    async def aclose(self) -> None:
        return None


async def _connect(monkeypatch: pytest.MonkeyPatch, *, mode: str,
                   **session: Any) -> tuple[str, WebsocketCommunicator, list[ReplySession]]:
    made: list[ReplySession] = []

    def create(*, call: CallStart, **kwargs: Any) -> RealtimeSession:
        made.append(ReplySession(call=call, **session))
        return made[-1]

    monkeypatch.setattr(consumers, "create_session", create)
    call_uuid = str(uuid.uuid4())
    fork = WebsocketCommunicator(
        consumers.ForkConsumer.as_asgi(),
        f"/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}&mode={mode}",
        subprotocols=["audio.drachtio.org"])
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": RATE}))
    return call_uuid, fork, made


async def _until_text(fork: WebsocketCommunicator, kind: str, wait_s: float = 3.0) -> float:
    """Read what TOM sends (binary audio too) until a text message of ``kind``; its time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        output = await fork.receive_output(timeout=max(0.01, deadline - loop.time()))
        assert output["type"] == "websocket.send", output
        if output.get("text") and json.loads(output["text"])["type"] == kind:
            return loop.time()


async def _turns(call_uuid: str) -> list[CallTurn]:
    return [turn async for turn in CallTurn.objects.filter(call__uuid=call_uuid)
            .order_by("index")]


async def _first_turn(call_uuid: str, wait_s: float) -> tuple[CallTurn, float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not (turns := await _turns(call_uuid)):
        assert loop.time() < deadline, "the reply was never recorded"
        await asyncio.sleep(0.01)
    return turns[0], loop.time()


async def _graceful(fork: WebsocketCommunicator) -> None:
    """mod_audio_fork's graceful shutdown: an empty binary frame (send_to refuses it)."""
    await fork.send_input({"type": "websocket.receive", "bytes": b""})


def _spy_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions that call ``asyncio.sleep`` from now on."""
    callers: list[str] = []
    real_sleep = asyncio.sleep

    def sleep(delay: float, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        frame = inspect.currentframe()
        callers.append(frame.f_back.f_code.co_name if frame and frame.f_back else "")
        return real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return callers


# --- the handle ----------------------------------------------------------------------
@pytest.mark.django_db  # database_sync_to_async closes old connections
async def test_the_ledger_records_a_reply_when_its_playout_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(call_services, "call_turn_record", lambda **kw: recorded.append(kw))
    ledger = TurnLedger(call=None)  # type: ignore[arg-type]
    speech = _reply(1000)
    # Sent a minute ago on the loop's clock: elapsed time alone says it has played out.
    loop = asyncio.get_running_loop()
    speech.first_sent_at = loop.time() - 60
    speech.playout_started(at=speech.first_sent_at)
    sleeps = _spy_sleeps(monkeypatch)
    task = asyncio.create_task(ledger.record_when_played(speech))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not recorded and not task.done()  # no report from the transport yet
    # The module lost the end of it: 640 ms heard, reported as played to its end.
    speech.playout_finished(played_ms=640, interrupted=False, at=loop.time())
    await asyncio.wait_for(task, 2)
    assert len(recorded) == 1 and recorded[0]["agent_audio_heard_ms"] == 640
    assert recorded[0]["barge_in"] is False
    assert not WAITERS & set(sleeps), sleeps


@pytest.mark.django_db  # database_sync_to_async closes old connections
async def test_a_reply_cut_before_its_playout_ends_is_left_to_its_barge_in_decision(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(call_services, "call_turn_record", lambda **kw: recorded.append(kw))
    ledger = TurnLedger(call=None)  # type: ignore[arg-type]
    speech, now = _reply(1000), asyncio.get_running_loop().time()
    task = asyncio.create_task(ledger.record_when_played(speech))
    speech.playout_started(at=now)
    speech.playout_finished(played_ms=300, interrupted=True, at=now + 0.3)
    await asyncio.wait_for(task, 1)
    assert recorded == []
    # A second report (jambonz answers ``cleared`` after the kill) changes nothing.
    speech.playout_finished(played_ms=1000, interrupted=False, at=now + 1)
    assert speech.playout is not None and speech.playout.played_ms == 300
    assert speech.playout.interrupted and speech.heard_ms(now + 5) == 300
    assert not speech.playing(now + 0.1)


# --- stream mode (jambonz): the mark reply is the event ------------------------------
@pytest.mark.django_db(transaction=True)
async def test_stream_mode_records_the_reply_when_the_module_answers_its_mark(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, fork, _ = await _connect(monkeypatch, mode="stream", reply_ms=600)
    await fork.send_to(bytes_data=bytes(FRAME))
    await _until_text(fork, "mark")
    # FreeSWITCH is still playing its buffer: by elapsed time the 600 ms are long over.
    assert await fork.receive_nothing(timeout=0.8)
    assert await _turns(call_uuid) == [], "recorded before the module said it was heard"
    answered = asyncio.get_running_loop().time()
    await fork.send_to(text_data=json.dumps(
        {"type": "mark", "data": {"name": "turn-1", "event": "playout"}}))
    turn, at = await _first_turn(call_uuid, 2.0)
    assert at - answered < 0.3
    assert (turn.barge_in, turn.agent_audio_ms, turn.agent_audio_heard_ms) == (False, 600, 600)
    await fork.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_stream_mode_graceful_shutdown_closes_once_the_last_mark_is_answered(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, fork, _ = await _connect(monkeypatch, mode="stream", reply_ms=400, at_end=True)
    await fork.send_to(bytes_data=bytes(FRAME))
    await _graceful(fork)
    await _until_text(fork, "mark")
    assert await fork.receive_nothing(timeout=0.8), "closed before the reply was heard"
    answered = asyncio.get_running_loop().time()
    await fork.send_to(text_data=json.dumps(
        {"type": "mark", "data": {"name": "turn-1", "event": "playout"}}))
    closed = await fork.receive_output(timeout=2)
    assert closed["type"] == "websocket.close" and closed.get("code", 1000) == 1000
    assert asyncio.get_running_loop().time() - answered < 0.3
    call = await database_sync_to_async(Call.objects.get)(uuid=call_uuid)
    assert call.end_reason == Call.EndReason.GRACEFUL_SHUTDOWN


# --- file mode (drachtio): a timer the transport owns ---------------------------------
@pytest.mark.django_db(transaction=True)
async def test_file_mode_graceful_shutdown_closes_as_the_last_file_ends_without_polling(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, fork, _ = await _connect(monkeypatch, mode="file", reply_ms=500, at_end=True,
                                        clauses=2)
    sleeps = _spy_sleeps(monkeypatch)
    await fork.send_to(bytes_data=bytes(FRAME))
    await _graceful(fork)
    sent = await _until_text(fork, "playAudio")
    await _until_text(fork, "playAudio")  # the second clause's file
    closed = await fork.receive_output(timeout=3)
    assert closed["type"] == "websocket.close", closed
    # The two files (250 ms each) end 500 ms after the first went out; the close follows
    # (after the turn and the call's end are written).
    assert 0.45 <= asyncio.get_running_loop().time() - sent <= 1.0
    assert not WAITERS & set(sleeps), sleeps  # awaited the report, never polled for it
    turns = await _turns(call_uuid)
    assert [(t.agent_audio_ms, t.agent_audio_heard_ms) for t in turns] == [(500, 500)]


@pytest.mark.django_db(transaction=True)
async def test_file_mode_reports_how_much_of_a_cut_reply_was_played(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, fork, made = await _connect(monkeypatch, mode="file", reply_ms=2000,
                                           clauses=4, cut_on=2)
    await fork.send_to(bytes_data=bytes(FRAME))
    first = await _until_text(fork, "playAudio")
    await asyncio.sleep(0.5)
    await fork.send_to(bytes_data=bytes(FRAME))  # the caller barges in
    killed = await _until_text(fork, "killAudio")
    speech = made[0].speech
    assert speech is not None and speech.playout is not None
    assert speech.playout.interrupted
    # What the channel played of its four files before the break flag stopped them.
    assert abs(speech.playout.played_ms - (killed - first) * 1000) < 100, speech.playout
    turn, _ = await _first_turn(call_uuid, 2.0)
    assert turn.barge_in is True
    assert turn.agent_audio_heard_ms == round(speech.playout.played_ms)
    await fork.disconnect()


# --- the pacer -----------------------------------------------------------------------
class Wire:
    def __init__(self) -> None:
        self.frames: list[float] = []  # loop time each binary frame went out
        self.texts: list[dict[str, Any]] = []

    async def send(self, *, bytes_data: bytes | None = None, text_data: str | None = None) -> None:
        if bytes_data is not None:
            self.frames.append(asyncio.get_running_loop().time())
        if text_data is not None:
            self.texts.append(json.loads(text_data))


async def _paced(ms: int) -> tuple[StreamPacer, Wire, AgentSpeech, asyncio.Task[None]]:
    wire = Wire()
    pacer, speech = StreamPacer(send=wire.send, rate=RATE), _reply(ms)
    pacer.write(speech, _pcm(ms), final=True)
    return pacer, wire, speech, asyncio.create_task(pacer.run())


async def test_the_pacer_reports_the_played_ms_of_a_cut_reply() -> None:
    pacer, wire, speech, task = await _paced(2000)
    try:
        await asyncio.sleep(0.4)
        assert speech.playout_began and speech.playout is None
        cut_at = asyncio.get_running_loop().time()
        pacer.clear()
        assert speech.playout is not None and speech.playout.interrupted
        # Frames go out up to 200 ms ahead of playout: only the part behind now was heard.
        assert abs(speech.playout.played_ms - (cut_at - wire.frames[0]) * 1000) <= 50
    finally:
        task.cancel()


async def test_the_pacer_takes_an_unanswered_mark_as_played_after_a_grace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MARK_GRACE_S", 0.1)
    _, wire, speech, task = await _paced(200)
    try:
        playout = await asyncio.wait_for(speech.wait_for_playout(), 2)
        assert wire.texts == [{"type": "mark", "data": {"name": "turn-1"}}]
        assert (playout.played_ms, playout.interrupted) == (200, False)
        # Not before its audio could have played, plus the grace.
        assert playout.at >= wire.frames[-1] + 0.02 + 0.1 - 0.005
    finally:
        task.cancel()
