"""One turn record per agent reply, through the fork consumer (in process) with the local
session on scripted STT/LLM/TTS, in real time: the decision that a reply was cut or
resumed comes from the session, at the variant's own VAD timings."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from calls.models import CallTurn
from calls.variants import VariantParameters
from voice import consumers
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.tests.conftest import fork_communicator
from voice.tests.test_bridge_live import ended_call
from voice.tests.test_local_session import REPLY, ScriptedLlm, ScriptedStt, ScriptedTts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RATE, FRAME = 8000, 320
# Far longer than the global TOM_VAD_STOP_MS (450) the consumer used to wait for: the
# session decides "backchannel" only after two seconds of the caller's silence.
SLOW_TURNS = VariantParameters(vad_stop_ms=2000, barge_in_min_speech_ms=320, fillers=False,
                               max_sentences=3)
REPLY_MS = len(REPLY.split()) * 200  # ScriptedTts: 200 ms a word


class SlowLlm(ScriptedLlm):
    """Still generating when the caller says "hm": the reply's last audio comes later."""

    def stream(self, messages: list[dict[str, Any]], *, cancel: Any) -> Iterator[str]:
        for token in super().stream(messages, cancel=cancel):
            time.sleep(0.12)
            yield token


class Line:
    """The caller's side of the fork: audio in real time, everything TOM sends kept."""

    def __init__(self, fork: WebsocketCommunicator) -> None:
        self.fork, self.sent = fork, []

    async def say(self, pcm: bytes) -> None:
        for offset in range(0, len(pcm) - FRAME + 1, FRAME):
            await self.fork.send_to(bytes_data=pcm[offset:offset + FRAME])
            await asyncio.sleep(0.02)
            while not await self.fork.receive_nothing(timeout=0):
                self.sent.append(json.loads(await self.fork.receive_from())["type"])

    async def silence_until(self, kind: str, wait_s: float, *, count: int = 1) -> None:
        """Silence until TOM has sent ``count`` messages of ``kind`` in all."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while self.sent.count(kind) < count:
            assert asyncio.get_running_loop().time() < deadline, (kind, self.sent)
            await self.say(bytes(FRAME))


async def _call(monkeypatch: pytest.MonkeyPatch, llm: ScriptedLlm) -> tuple[str, Line]:
    def local(*, call: CallStart, call_id: int | None = None, **kwargs: Any) -> RealtimeSession:
        return LocalSession(call=call, stt_backend=ScriptedStt(), llm_backend=llm,  # type: ignore[arg-type]
                            tts_backend=ScriptedTts(), call_id=call_id, params=SLOW_TURNS)

    monkeypatch.setattr(consumers, "create_session", local)
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": RATE}))
    line = Line(fork)
    await line.say(voiced(RATE, 0.6) + bytes(RATE * 2 * 21 // 10))  # the question
    await line.silence_until("playAudio", 5.0)
    await line.say(bytes(RATE * 2 * 3 // 10))  # 300 ms into the answer...
    return call_uuid, line


async def _turns(call_uuid: str) -> list[CallTurn]:
    return [turn async for turn in CallTurn.objects.filter(call__uuid=call_uuid)
            .order_by("index")]


@pytest.mark.parametrize("llm", [ScriptedLlm, SlowLlm], ids=["reply-complete", "reply-streaming"])
async def test_a_backchannel_after_the_global_window_keeps_the_reply_one_turn(
        settings: Any, monkeypatch: pytest.MonkeyPatch, llm: type[ScriptedLlm]) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, line = await _call(monkeypatch, llm())
    # ..."hm", and the variant's two seconds of silence before the session resumes.
    await line.say(voiced(RATE, 0.12, freq=200) + bytes(FRAME * 5))
    assert "killAudio" in line.sent, line.sent
    killed, played = line.sent.index("killAudio"), line.sent.count("playAudio")
    await line.say(bytes(RATE * 2 * 18 // 10))
    assert "playAudio" not in line.sent[killed:], "resumed before the variant's VAD silence"
    # The rest of the same reply.
    await line.silence_until("playAudio", 1.0, count=played + 1)
    # Let the continuation play out: it is recorded once heard to its end.
    deadline = asyncio.get_running_loop().time() + REPLY_MS / 1000 + 1.0
    while not await _turns(call_uuid):
        assert asyncio.get_running_loop().time() < deadline, "the reply was never recorded"
        await line.say(bytes(FRAME * 5))
    await line.say(bytes(FRAME * 10))
    await line.fork.disconnect()
    await ended_call(call_uuid)
    turns = await _turns(call_uuid)
    # Before: the cut reply was recorded as a barge-in 0.85 s after the kill (or at once
    # by the playout poll), and its continuation as a second turn with the same question.
    assert len(turns) == 1, [(t.agent_text, t.barge_in) for t in turns]
    turn = turns[0]
    assert turn.barge_in is False and turn.caller_text == "Do you have brake pads?"
    assert turn.agent_text == REPLY  # the whole reply, not only the part after "hm"
    assert turn.agent_audio_ms == REPLY_MS
    # Heard: the part before "hm" and the continuation to its end.
    assert turn.agent_audio_heard_ms is not None
    assert REPLY_MS - 200 <= turn.agent_audio_heard_ms <= REPLY_MS


async def test_a_confirmed_barge_in_is_recorded_when_the_session_confirms_it(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_FEATURE_RL = False
    call_uuid, line = await _call(monkeypatch, ScriptedLlm())
    # The caller talks over the answer: 0.6 s of speech is past the variant's 320 ms.
    await line.say(voiced(RATE, 0.6, freq=190))
    assert "killAudio" in line.sent
    # Recorded as the session confirms it, while the caller is still in their turn.
    turns = await _turns(call_uuid)
    assert len(turns) == 1 and turns[0].barge_in is True, turns
    assert turns[0].agent_audio_heard_ms is not None
    assert 0 < turns[0].agent_audio_heard_ms < turns[0].agent_audio_ms == REPLY_MS
    played = line.sent.count("playAudio")
    await line.say(bytes(RATE * 2 * 2))  # the variant's end of turn: a new answer
    await line.silence_until("playAudio", 3.0, count=played + 1)
    await line.fork.disconnect()
    await ended_call(call_uuid)
    turns = await _turns(call_uuid)
    # The caller's new question got its own reply, cut by the hang-up: two turns in all.
    assert [t.barge_in for t in turns] == [True, False]
