"""Model slots belong to the worker thread: a cancelled STT/LLM/TTS call keeps its slot
until the thread has really returned, and its caller still learns of the cancellation at
once (barge-in stays fast)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from prometheus_client import REGISTRY

from voice.protocols.metadata import CallStart
from voice.session import slots
from voice.session.events import Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tests.test_local_session import RATE, ScriptedLlm, ScriptedTts, _drain, _feed


class BlockingStt(SttBackend):
    """The first transcription blocks until ``release``; counts how many run at once."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.calls = self.running = self.most_at_once = 0

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None) -> Transcription:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if first:
                self.entered.set()
                self.release.wait(10)
            return Transcription(text="Do you have brake pads?", language="en", ms=5)
        finally:
            with self.lock:
                self.running -= 1


def _busy_count(stage: str) -> float:
    return REGISTRY.get_sample_value("tom_pipeline_backpressure_total", {"stage": stage}) or 0.0


async def test_a_barged_in_transcription_keeps_its_slot_until_its_thread_returns(
        settings: Any) -> None:
    settings.TOM_STT_MAX_CONCURRENCY, settings.TOM_STT_PREEMPT_MS = 1, 0
    stt = BlockingStt()
    call = CallStart(uuid="s", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    session = LocalSession(call=call, stt_backend=stt, llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                           tts_backend=ScriptedTts())
    t = await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    assert await asyncio.to_thread(stt.entered.wait, 5)  # Whisper is busy with turn 1
    first_turn = session.stt._work  # the STT stage's work on turn 1
    assert first_turn is not None
    busy_before = _busy_count("stt")
    # The caller speaks again: turn 1 is cancelled while its thread still transcribes.
    await _feed(session, voiced(RATE, 0.6, freq=180) + bytes(RATE), t)
    await asyncio.wait([first_turn])
    assert first_turn.cancelled()  # the caller learnt of it without waiting for Whisper
    assert stt.running == 1 and not stt.release.is_set()
    # Turn 2 found the only slot still held by turn 1's thread, so it waits; it did not
    # start a second transcription beside the first (what freeing the slot on
    # cancellation did).
    async with asyncio.timeout(5):  # the STT stage takes turn 2 up after the cancel
        while _busy_count("stt") != busy_before + 1:  # noqa: ASYNC110  (a counter: no event)
            await asyncio.sleep(0.01)
    stt.release.set()
    events = await _drain(session, Transcript)
    callers = [e for e in events if isinstance(e, Transcript) and e.role == "caller"]
    assert len(callers) == 1 and callers[0].turn == 2
    assert stt.calls == 2 and stt.most_at_once == 1
    await session.aclose()


async def test_run_in_slot_cancels_its_caller_at_once_and_frees_the_slot_after_the_thread(
) -> None:
    entered, release, first_returned = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def blocking() -> str:
        entered.set()
        try:
            release.wait(10)
            return "late"
        finally:
            order.append("first returned")
            first_returned.set()

    def second() -> bool:
        order.append("second started")
        return first_returned.is_set()

    first = asyncio.create_task(slots.run_in_slot(stage="unit", size=1, fn=blocking))
    assert await asyncio.to_thread(entered.wait, 5)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first  # while the thread is still blocked: the caller did not wait for it
    assert not release.is_set() and not first_returned.is_set()
    assert slots.stage_semaphore(stage="unit", size=1).locked()  # the thread still has it
    runner = asyncio.create_task(slots.run_in_slot(stage="unit", size=1, fn=second))
    await asyncio.sleep(0)  # let it reach the semaphore
    assert not runner.done() and order == []
    release.set()
    assert await asyncio.wait_for(runner, 5) is True
    assert order == ["first returned", "second started"]
    assert not slots.stage_semaphore(stage="unit", size=1).locked()


async def test_a_thread_that_fails_after_its_caller_left_still_frees_the_slot(
        caplog: pytest.LogCaptureFixture) -> None:
    entered, release = threading.Event(), threading.Event()

    def failing() -> None:
        entered.set()
        release.wait(10)
        raise RuntimeError("model crashed")

    caller = asyncio.create_task(slots.run_in_slot(stage="failing", size=1, fn=failing))
    assert await asyncio.to_thread(entered.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    # The next caller gets the slot once the failed thread is done, and its own error
    # (a bad argument here) reaches it.
    with caplog.at_level(logging.DEBUG, logger="voice.session.slots"), \
            pytest.raises(ZeroDivisionError):
        await slots.run_in_slot(stage="failing", size=1, fn=lambda: 1 / 0)
    assert "session.slot_thread_failed" in caplog.messages
    assert not slots.stage_semaphore(stage="failing", size=1).locked()


async def test_a_slot_busy_for_too_long_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "BUSY_WAIT_S", 0.05)
    held = slots.stage_semaphore(stage="held", size=1)
    await held.acquire()  # another call holds the only slot
    ran: list[int] = []
    try:
        with pytest.raises(TimeoutError):
            await slots.run_in_slot(stage="held", size=1, fn=ran.append, args=(1,))
    finally:
        held.release()
    assert ran == []
    assert await slots.run_in_slot(stage="held", size=1, fn=sum, args=([1, 2],)) == 3


class StallingLlm:
    """Says one clause, then stalls inside the model (as llama.cpp does while it evaluates
    a long prompt) where the stop flag cannot reach it."""

    def __init__(self) -> None:
        self.stalled, self.release, self.returned = (threading.Event(), threading.Event(),
                                                     threading.Event())

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Any:
        try:
            yield from ("Sure, ", "the brake pads fit your car. ")
            self.stalled.set()
            self.release.wait(10)
            yield "They cost fifty euros."
        finally:
            self.returned.set()


async def test_a_cancelled_reply_keeps_its_llm_slot_until_generation_returns(
        settings: Any) -> None:
    settings.TOM_LLM_MAX_CONCURRENCY = 1
    llm = StallingLlm()
    call = CallStart(uuid="l", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    session = LocalSession(call=call, stt_backend=BlockingStt(), llm_backend=llm,  # type: ignore[arg-type]
                           tts_backend=ScriptedTts())
    session._stt.release.set()  # type: ignore[union-attr]  # Whisper answers at once
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    assert await asyncio.to_thread(llm.stalled.wait, 5)
    # Hanging up cancels the turn without waiting for the stalled model...
    await asyncio.wait_for(session.aclose(), 5)
    assert not llm.returned.is_set()
    # ...whose thread still holds the only LLM slot: the next generation waits for it.
    assert slots.stage_semaphore(stage="llm", size=1).locked()
    llm.release.set()
    assert await asyncio.wait_for(
        slots.run_in_slot(stage="llm", size=1, fn=llm.returned.is_set), 5)
