"""The warm-up service with scripted STT/LLM/TTS backends (named in settings, as an
operator names a backend): a whole turn with a barge-in, failures, a call that comes
first. The same service with the real models, through the real server, is
test_warm_start.py."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from calls import services as call_services
from voice import metrics, models, warmup
from voice.llm import LlmBackend
from voice.llm_deltas import LlmDelta, TextDelta
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tts import TtsBackend
from voice.warmup import WarmState, WarmStatus

pytestmark = pytest.mark.django_db(transaction=True)
HERE = "voice.tests.test_warmup"
REPLY = "We open at nine on Saturday. Anything else?"


class ScriptedStt(SttBackend):
    heard: list[int] = []  # lengths of what it was asked to transcribe

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        ScriptedStt.heard.append(len(pcm))
        return Transcription(text="When do you open on Saturday?", language="en", ms=5)


class ScriptedLlm(LlmBackend):
    gate = threading.Event()  # cleared: the reply waits (a slow model)
    asked = threading.Event()
    cancelled = threading.Event()
    turns: list[int] = []  # messages in each prompt

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        ScriptedLlm.turns.append(len(messages))
        ScriptedLlm.asked.set()
        while not ScriptedLlm.gate.wait(0.01):
            if cancel.is_set():
                ScriptedLlm.cancelled.set()
                return
        for word in REPLY.split(" "):
            if cancel.is_set():
                ScriptedLlm.cancelled.set()
                return
            time.sleep(0.01)  # a model's pace: the reply plays while it is written
            yield TextDelta(word + " ")


class ScriptedTts(TtsBackend):
    rate = 16000

    def synthesize(self, text: str) -> bytes:
        return voiced(self.rate, 0.25 * len(text.split()))  # VADs take it for a voice


class MissingStt(SttBackend):
    @classmethod
    def from_settings(cls, *, model: str | None = None) -> SttBackend:
        raise models.ModelError("no Whisper model in /nowhere: run manage.py tom_models")

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        raise AssertionError("never loaded")


@pytest.fixture
def scripted(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.TOM_SESSION_BACKEND, settings.TOM_WARM_UP = "local", True
    settings.TOM_FEATURE_TOOLS = settings.TOM_FEATURE_RL = False
    settings.TOM_LANGUAGE = "en"
    settings.TOM_STT_BACKEND = f"{HERE}.ScriptedStt"
    settings.TOM_LLM_BACKEND = f"{HERE}.ScriptedLlm"
    settings.TOM_TTS_BACKEND = f"{HERE}.ScriptedTts"
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.PENDING))
    ScriptedStt.heard.clear()
    ScriptedLlm.turns.clear()
    for flag in (ScriptedLlm.asked, ScriptedLlm.cancelled):
        flag.clear()
    ScriptedLlm.gate.set()


async def test_the_warm_up_runs_a_turn_and_a_barge_in_then_reports_warm(
        scripted: None, caplog: pytest.LogCaptureFixture) -> None:
    heard: list[WarmStatus] = []
    assert warmup.warm_status().ready is False  # scheduled: /healthz says 503 until warm
    with caplog.at_level(logging.INFO, logger="voice.warmup"):
        status = await warmup.voice_warm_up(on_change=heard.append)
    assert status.state is WarmState.WARM and status.warm and status.ready
    assert [s.state for s in heard] == [WarmState.WARMING, WarmState.WARM]
    assert warmup.warm_status() == status and not status.preempted
    # Two caller turns reached the STT and the LLM: the question, and the caller talking
    # over its answer, whose history holds the first reply as far as it was heard.
    assert len(ScriptedStt.heard) >= 2 and len(ScriptedLlm.turns) == 2
    assert ScriptedLlm.turns[1] > ScriptedLlm.turns[0]
    record = next(r for r in caplog.records if r.getMessage() == "voice.warm")
    assert record.seconds == status.seconds and record.barge_in is True  # type: ignore[attr-defined]
    assert record.preempted is False and record.load_s >= 0  # type: ignore[attr-defined]
    assert metrics.WARM_UP_SECONDS._value.get() == status.seconds


async def test_a_model_that_cannot_load_leaves_the_process_unready(
        scripted: None, settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.TOM_STT_BACKEND = f"{HERE}.MissingStt"
    status = await warmup.voice_warm_up()
    assert status.state is WarmState.FAILED and not status.ready
    assert status.error == "ModelError"  # the type only: /healthz is public
    failed = next(r for r in caplog.records if r.getMessage() == "voice.warm_failed")
    assert "tom_models" in failed.exc_text  # type: ignore[operator]  # the log says what to run


async def test_a_call_that_comes_first_cuts_the_warm_up_turn_short(scripted: None) -> None:
    ScriptedLlm.gate.clear()  # the warm-up's reply is still being written...
    try:
        warming = asyncio.ensure_future(warmup.voice_warm_up())
        assert await asyncio.to_thread(ScriptedLlm.asked.wait, 10)
        # ...when a caller's call starts: the warm-up gives the model back at once.
        await sync_to_async(call_services.call_start)(uuid="first-caller")
        status = await asyncio.wait_for(warming, 5)
        assert await asyncio.to_thread(ScriptedLlm.cancelled.wait, 5)
    finally:
        ScriptedLlm.gate.set()
    assert status.state is WarmState.WARM and status.preempted


async def test_the_echo_session_is_warm_at_once_and_the_switch_turns_it_off(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.PENDING))
    settings.TOM_SESSION_BACKEND, settings.TOM_WARM_UP = "echo", True
    assert warmup.warm_status().warm and not warmup.warm_up_wanted()
    assert (await warmup.voice_warm_up()).warm
    settings.TOM_SESSION_BACKEND, settings.TOM_WARM_UP = "local", False
    off = warmup.warm_status()
    assert off.state is WarmState.OFF and off.ready and not off.warm
