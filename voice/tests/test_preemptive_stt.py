"""Preemptive STT: transcription starts in the end-of-turn silence and is used when the
caller stays quiet, dropped when they go on speaking."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from voice.protocols.metadata import CallStart
from voice.session.events import Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tests.test_local_session import RATE, ScriptedLlm, ScriptedTts, _drain, _feed


class CountingStt(SttBackend):
    def __init__(self) -> None:
        self.heard: list[int] = []  # bytes of audio per transcription
        self.lock = threading.Lock()

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None) -> Transcription:
        with self.lock:
            self.heard.append(len(pcm))
        return Transcription(text=f"{len(pcm)} bytes", language="en", ms=5)


def _session(stt: CountingStt) -> LocalSession:
    call = CallStart(uuid="p", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    return LocalSession(call=call, stt_backend=stt, llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                        tts_backend=ScriptedTts())


def _silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


async def test_transcription_starts_before_the_turn_ends_and_is_used(settings: Any) -> None:
    settings.TOM_STT_PREEMPT_MS, settings.TOM_VAD_STOP_MS = 150, 450
    stt = CountingStt()
    session = _session(stt)
    t = await _feed(session, voiced(RATE, 0.6) + _silence(200), 0.0)
    await asyncio.sleep(0.05)
    assert len(stt.heard) == 1, "no transcription during the end-of-turn silence"
    assert session.turns.turn == 0  # the turn itself has not started yet
    await _feed(session, _silence(600), t)
    events = await _drain(session, Transcript)
    caller = next(e for e in events if isinstance(e, Transcript) and e.role == "caller")
    assert stt.heard == [stt.heard[0]]  # used, not done again
    assert caller.text == f"{stt.heard[0]} bytes"
    await session.aclose()


async def test_speech_after_a_pause_drops_the_early_transcript(settings: Any) -> None:
    settings.TOM_STT_PREEMPT_MS, settings.TOM_VAD_STOP_MS = 150, 450
    stt = CountingStt()
    session = _session(stt)
    t = await _feed(session, voiced(RATE, 0.6) + _silence(250), 0.0)
    await asyncio.sleep(0.05)
    early = session.stt._early
    assert early is not None and len(stt.heard) == 1
    t = await _feed(session, voiced(RATE, 0.5, freq=180), t)  # "... for a Golf 7"
    assert session.stt._early is None
    assert early[1].cancelled() or early[1].done()
    await _feed(session, _silence(700), t)
    events = await _drain(session, Transcript)
    caller = next(e for e in events if isinstance(e, Transcript) and e.role == "caller")
    assert len(stt.heard) >= 2 and stt.heard[-1] > stt.heard[0]
    assert caller.text == f"{stt.heard[-1]} bytes"  # the whole utterance, not the guess
    await session.aclose()


@pytest.mark.parametrize("preempt_ms", [0])
async def test_preemption_can_be_switched_off(settings: Any, preempt_ms: int) -> None:
    settings.TOM_STT_PREEMPT_MS = preempt_ms
    stt = CountingStt()
    session = _session(stt)
    await _feed(session, voiced(RATE, 0.6) + _silence(300), 0.0)
    await asyncio.sleep(0.05)
    assert stt.heard == [] and session.stt._early is None
    await session.aclose()


async def test_hanging_up_in_the_silence_leaves_nothing_running(settings: Any) -> None:
    settings.TOM_STT_PREEMPT_MS = 100
    session = _session(CountingStt())
    await _feed(session, voiced(RATE, 0.6) + _silence(200), 0.0)
    await session.stt.idle()  # it has taken the early utterance
    assert session.stt._early is not None
    await session.aclose()
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
            and not t.done()] == []
