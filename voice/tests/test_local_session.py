"""LocalSession orchestration with scripted STT/LLM/TTS and an explicit clock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from voice.protocols.metadata import CallStart
from voice.session.events import AgentAudio, Interruption, Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tts import TtsBackend

RATE = 8000
FRAME = 320
REPLY = "Sure, the brake pads fit your car. They cost fifty euros. Anything else?"


class ScriptedStt(SttBackend):
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None) -> Transcription:
        return Transcription(text="Do you have brake pads?", language="en", ms=5)


class ScriptedLlm:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.seen: list[list[dict[str, Any]]] = []

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event) -> Iterator[str]:
        self.seen.append([dict(m) for m in messages])
        for word in REPLY.split(" "):
            if cancel.is_set():
                self.cancelled.set()
                return
            time.sleep(0.005)
            yield word + " "


class ScriptedTts(TtsBackend):
    rate = 8000

    def synthesize(self, text: str) -> bytes:
        return bytes(len(text.split()) * 200 * 16)  # 200 ms of audio per word


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i:i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


async def _feed(session: LocalSession, pcm: bytes, start: float) -> float:
    t = start
    for frame in _frames(pcm):
        await session.push_audio(frame, at=t)
        t += 0.02
    return t


async def _drain(session: LocalSession, until: type, wait_s: float = 5.0) -> list[Any]:
    out: list[Any] = []
    async with asyncio.timeout(wait_s):
        while True:
            event = await session.events.get()
            out.append(event)
            if isinstance(event, until) and (not isinstance(event, Transcript)
                                             or event.role == "agent"):
                return out


def _session(llm: ScriptedLlm) -> LocalSession:
    call = CallStart(uuid="t", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    return LocalSession(call=call, stt_backend=ScriptedStt(), llm_backend=llm,  # type: ignore[arg-type]
                        tts_backend=ScriptedTts())


async def test_a_turn_emits_caller_text_then_clauses_then_the_end() -> None:
    session = _session(ScriptedLlm())
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Transcript" and events[0].role == "caller"
    audio = [e for e in events if isinstance(e, AgentAudio)]
    assert [a.text for a in audio[:-1]] == ["Sure, the brake pads fit your car.",
                                            "They cost fifty euros.", "Anything else?"]
    assert audio[-1].final and audio[-1].pcm == b""
    assert events[-1].role == "agent" and events[-1].text == REPLY
    speech = audio[0].speech
    assert speech.timings["stt_ms"] == 5 and "llm_first_token_ms" in speech.timings
    assert session.history[-1] == {"role": "assistant", "content": REPLY}
    assert t > 0


async def test_barge_in_cancels_the_turn_and_keeps_only_what_was_heard() -> None:
    llm = ScriptedLlm()
    session = _session(llm)
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    first = await session.events.get()  # caller transcript
    assert isinstance(first, Transcript)
    clause = await session.events.get()
    assert isinstance(clause, AgentAudio)
    speech = clause.speech
    speech.first_sent_at = t  # the transport started playing it now
    # 0.5 s later, the caller talks over the agent.
    events: list[Any] = []
    await _feed(session, voiced(RATE, 0.4, freq=190), t + 0.5)
    while not session.events.empty():
        events.append(session.events.get_nowait())
    interruption = next(e for e in events if isinstance(e, Interruption))
    assert interruption.speech is speech and speech.interrupted_at is not None
    heard = speech.heard_text(speech.interrupted_at)
    assert heard and heard != speech.text and REPLY.startswith(heard.rsplit(" ", 1)[0])
    assert session.history[-1] == {"role": "assistant", "content": heard}
    await session.aclose()
    assert not session.pipeline.alive()  # nothing left running
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "local-turn"
                and not task.done()]


async def test_a_backchannel_silences_the_agent_at_once_then_it_resumes() -> None:
    session = _session(ScriptedLlm())
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    await session.events.get()
    clause = await session.events.get()
    speech = clause.speech
    speech.first_sent_at = t
    onset = t + 0.3
    await _feed(session, voiced(RATE, 0.12, freq=200) + bytes(RATE), onset)  # "hm"
    events = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    kill = next(e for e in events if isinstance(e, Interruption))
    # killAudio is due within a few frames of the onset, long before 120 ms.
    assert speech.interrupted_at is not None and speech.interrupted_at - onset <= 0.1
    assert kill.speech is speech
    resumed = [e for e in events if isinstance(e, AgentAudio) and e.speech is not speech]
    assert resumed, "the reply did not resume after the backchannel"
    rest = resumed[0].speech
    assert rest.turn == speech.turn and rest.caller_text == speech.caller_text
    assert speech.resumed_by is rest and rest.e2e_ms == speech.e2e_ms
    heard_ms = speech.heard_ms(speech.interrupted_at)
    assert len(resumed[0].pcm) == len(speech.audio) - int(heard_ms * RATE / 1000) * 2
    assert not [e for e in events if isinstance(e, Transcript) and e.role == "caller"]
    await _drain(session, Transcript)  # the turn finishes into the continuation
    assert session.history[-1] == {"role": "assistant", "content": REPLY}  # not cut short
    await session.aclose()


async def test_an_overloaded_model_gets_an_apology_not_silence(monkeypatch: Any) -> None:
    from voice.session import local, slots

    monkeypatch.setattr(slots, "BUSY_WAIT_S", 0.05)
    session = _session(ScriptedLlm())
    busy = slots.stage_semaphore(stage="stt", size=1)
    for _ in range(busy._value):  # another call holds every STT slot
        await busy.acquire()  # another call holds the only STT slot
    try:
        await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
        event = await asyncio.wait_for(session.events.get(), 2)
    finally:
        while busy.locked():
            busy.release()
    assert isinstance(event, AgentAudio) and event.final
    assert event.text == local.APOLOGY_EN and event.pcm
    await session.aclose()


class LoudTts(TtsBackend):
    """Speaks a voiced buzz, so the agent's own voice can leak back as echo."""

    rate = 8000

    def synthesize(self, text: str) -> bytes:
        return voiced(RATE, 0.2 * len(text.split()), freq=150)


async def test_the_agents_own_echo_in_a_mixed_fork_does_not_interrupt() -> None:
    call = CallStart(uuid="m", sample_rate=RATE, channels=1, mix_type="mixed", encoding="l16",
                     language="en")
    session = LocalSession(call=call, stt_backend=ScriptedStt(), llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                           tts_backend=LoudTts())
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    await session.events.get()
    clause = await session.events.get()
    speech = clause.speech
    speech.first_sent_at = t
    # The caller channel carries the agent's audio back, slightly attenuated, in step.
    await asyncio.sleep(0.2)  # let the turn produce more audio
    echo = bytes(speech.audio[int(0.1 * RATE) * 2:int(0.7 * RATE) * 2])
    samples = np.frombuffer(echo, dtype="<i2") // 2  # -6 dB
    await _feed(session, samples.astype("<i2").tobytes(), t + 0.1)
    events = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    assert not [e for e in events if isinstance(e, Interruption)]
    # A caller louder than the echo still barges in.
    loud = voiced(RATE, 0.4, freq=210, level=30000)
    await _feed(session, loud, t + 0.8)
    events = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    assert [e for e in events if isinstance(e, Interruption)]
    await session.aclose()
