"""The two lanes from a session to its transport: system events overtake queued data,
in the queue itself and at the fork consumer (in process, WebsocketCommunicator)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from calls.models import Call
from voice import consumers
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession
from voice.session.events import (
    AgentAudio,
    AgentSpeech,
    BargeInConfirmed,
    EndCall,
    Interruption,
    SessionEvents,
    SpeechResumed,
    Transcript,
)
from voice.tests.conftest import fork_communicator
from voice.tests.test_bridge_live import ended_call

RATE = 8000
CLAUSES = 8
CLAUSE_PCM = bytes(RATE * 2 // 2)  # 500 ms of audio each


def _speech() -> AgentSpeech:
    return AgentSpeech(turn=1, text="a reply", rate=RATE)


async def test_a_system_event_is_read_before_data_queued_earlier() -> None:
    events = SessionEvents()
    speech = _speech()
    audio = [AgentAudio(speech=speech, pcm=CLAUSE_PCM, text=str(i)) for i in range(3)]
    for item in audio:
        await events.put(item)
    await events.put(Transcript(role="agent", text="a reply", final=True, turn=1))
    kill = Interruption(speech=speech, speech_onset_at=0.0)
    events.put_nowait(kill)  # the sync path (a barge-in decided inside push_audio) too
    decided = BargeInConfirmed(speech=speech)
    await events.put(decided)
    assert events.qsize() == 6
    # System events first, in their own order; then the data frames, in theirs.
    assert await events.get() is kill
    assert await events.get() is decided
    assert [await events.get() for _ in range(3)] == audio
    assert isinstance(events.get_nowait(), Transcript)
    assert events.empty()
    with pytest.raises(asyncio.QueueEmpty):
        events.get_nowait()


async def test_every_control_event_takes_the_system_lane() -> None:
    speech, rest = _speech(), _speech()
    events = SessionEvents()
    await events.put(AgentAudio(speech=speech, pcm=CLAUSE_PCM))
    controls = [Interruption(speech=speech, speech_onset_at=0.0),
                SpeechResumed(speech=speech, continuation=rest), EndCall(reason="done")]
    for control in controls:
        await events.put(control)
    assert [events.get_nowait() for _ in controls] == controls


async def test_get_waits_for_the_next_event_and_wakes_for_a_system_one() -> None:
    events = SessionEvents()
    waiting = asyncio.create_task(events.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing queued: it waits, it does not spin or fail
    kill = Interruption(speech=_speech(), speech_onset_at=0.0)
    await events.put(kill)
    assert await asyncio.wait_for(waiting, 1) is kill


class BurstSession(RealtimeSession):
    """On the first caller frame, queues a reply's clauses and its transcript, and then
    the caller's barge-in, all before the transport reads any of them (as when the
    transport is still sending an earlier clause). It tells the transport of the cut with
    the ``Interruption`` alone: ``interrupted_at`` on the handle is a session's own
    bookkeeping, which the transport must not need."""

    def __init__(self, *, call: CallStart) -> None:
        super().__init__(call=call)
        self.queued = False

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        if self.queued:
            return
        self.queued = True
        speech = AgentSpeech(turn=1, text="a long reply", rate=RATE, caller_text="hello")
        self.speech = speech
        for index in range(CLAUSES):
            speech.clauses.append((f"clause {index}.", speech.audio_ms))
            speech.audio_bytes += len(CLAUSE_PCM)
            await self.events.put(AgentAudio(speech=speech, pcm=CLAUSE_PCM,
                                             text=f"clause {index}."))
        speech.complete = True
        await self.events.put(AgentAudio(speech=speech, pcm=b"", final=True))
        await self.events.put(Transcript(role="agent", text=speech.text, final=True, turn=1))
        await self.events.put(Interruption(speech=speech, speech_onset_at=at))
        await self.events.put(BargeInConfirmed(speech=speech))

    async def end_of_input(self, *, at: float) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.mark.django_db(transaction=True)
async def test_the_consumer_kills_audio_before_sending_the_audio_queued_ahead(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False

    def burst(*, call: CallStart, **kwargs: Any) -> RealtimeSession:
        return BurstSession(call=call)

    monkeypatch.setattr(consumers, "create_session", burst)
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": RATE}))
    await fork.send_to(bytes_data=bytes(320))
    sent = []
    while not await fork.receive_nothing(timeout=0.5):
        sent.append(json.loads(await fork.receive_from())["type"])
    # On one queue the eight clauses (4 s of audio the caller talked over) went out first.
    assert sent[0] == "killAudio", sent
    # The cut reply's queued audio is dropped; its transcript (a data frame) still goes.
    assert sent == ["killAudio", "transcription"], sent
    await fork.disconnect()
    call = await ended_call(call_uuid)
    turns = [turn async for turn in call.turns.order_by("index")]
    assert len(turns) == 1 and turns[0].barge_in is True
    assert turns[0].agent_audio_ms == CLAUSES * 500
    assert turns[0].agent_audio_heard_ms == 0  # none of it was sent
    assert call.end_reason == Call.EndReason.CALLER_HANGUP


async def test_join_waits_until_the_reader_has_handled_every_event() -> None:
    events = SessionEvents()
    await events.join()  # nothing put: nothing to wait for
    speech = _speech()
    await events.put(AgentAudio(speech=speech, pcm=CLAUSE_PCM))
    await events.put(Interruption(speech=speech, speech_onset_at=0.0))
    joined = asyncio.create_task(events.join())
    events.get_nowait()
    events.get_nowait()
    events.task_done()
    await asyncio.sleep(0)
    assert not joined.done()  # got, but the second is not handled yet
    events.task_done()
    await asyncio.wait_for(joined, 1)
    # More task_done calls than events is the reader's bug: said, not hidden.
    with pytest.raises(ValueError, match="more times"):
        events.task_done()
