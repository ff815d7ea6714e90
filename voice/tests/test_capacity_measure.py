"""Capacity measured at start (voice.capacity): the choice of k from the figures, the
measurement through LocalSession with fake models whose cost of concurrency is known (so
the capacity is an exact number), a configured capacity that is never overridden, a call
that cancels the measurement, and the measurement with the real models."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from calls import services as call_services
from greenlights.selectors import health_status
from voice import admission, capacity, models, warmup
from voice.admission import Capacity
from voice.capacity import Round, capacity_select
from voice.llm import LlmBackend
from voice.llm_deltas import LlmDelta, TextDelta
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tts import TtsBackend
from voice.warmup import WarmState, WarmStatus

HERE = "voice.tests.test_capacity_measure"
TURN_S = 0.6  # the fake Whisper's time for one utterance, alone on its "cores"
# End of speech is counted from before the VAD's end-of-turn silence, as a caller's is:
# the shortest a variant allows, so Whisper's queue decides the ratios.
STOP_S = 0.15


# --- the choice of k, figures in ---------------------------------------------------------

def _rounds(*figures: tuple[int, float, float]) -> list[Round]:
    return [Round(k=k, p50_s=p50, max_s=worst) for k, p50, worst in figures]


@pytest.mark.parametrize(("figures", "expected"), [
    # One turn at a time per core (1 core): two at once hold the goal, four do not.
    (((1, 1.0, 1.0), (2, 1.5, 2.0), (4, 2.5, 4.0)), 2),
    # The first k beyond 1 already misses the p50 ratio: one turn at a time.
    (((1, 1.0, 1.0), (2, 1.9, 2.0)), 1),
    # ...or the worst turn's: a median inside the goal is not enough.
    (((1, 1.0, 1.0), (2, 1.2, 3.1), (4, 1.3, 1.4)), 1),
    # The goal's bounds themselves are inside it.
    (((1, 2.0, 2.0), (2, 3.6, 6.0)), 2),
    # Every k up to the cap held: the cap is the answer.
    (((1, 1.0, 1.1), (2, 1.1, 1.2), (4, 1.3, 1.5), (6, 1.5, 2.0), (8, 1.7, 2.9)), 8),
    # The first miss ends the search: a later k that happens to pass does not count.
    (((1, 1.0, 1.0), (2, 1.5, 2.0), (4, 2.0, 2.5), (6, 1.6, 2.0)), 2),
    # A turn unanswered within the round's limit misses the goal.
    (((1, 1.0, 1.0), (2, 1.2, math.inf)), 1),
    # No base: nothing measured, the single turn unanswered, or no k = 1 round first.
    ((), 0),
    (((1, math.inf, math.inf),), 0),
    (((2, 1.0, 1.0), (4, 1.1, 1.2)), 0),
])
def test_the_largest_k_within_the_goal_before_the_first_miss_is_kept(
        figures: tuple[tuple[int, float, float], ...], expected: int) -> None:
    assert capacity_select(_rounds(*figures)) == expected


def test_a_round_reports_its_median_and_worst_turn() -> None:
    figures = Round.of(4, [1.0, 2.0, 3.0, 4.0])
    assert (figures.p50_s, figures.max_s) == (2.5, 4.0)
    assert Round.of(2, [1.0, math.inf]).as_dict() == {"k": 2, "p50_ms": None, "max_ms": None}


@pytest.mark.parametrize(("hard_cap", "cap"), [(100, 16), (12, 6), (9, 4), (1, 1)])
def test_turns_are_tried_up_to_the_hard_caps_calls(settings: Any, hard_cap: int,
                                                    cap: int) -> None:
    settings.TOM_MAX_CONCURRENT_CALLS = hard_cap
    assert capacity.turns_cap() == cap


# --- the measurement, with fake models --------------------------------------------------

class CoresStt(SttBackend):
    """Whisper on ``width`` cores: each utterance holds one for ``seconds``, so k at once
    queue as k / width batches (a lock shared by every call, as the real model's CPU)."""

    cores = threading.Semaphore(1)
    seconds = TURN_S
    calls = 0
    entered = threading.Event()

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        CoresStt.calls += 1
        CoresStt.entered.set()
        with CoresStt.cores:
            time.sleep(CoresStt.seconds)
        return Transcription(text="When do you open on Saturday?", language="en", ms=5)


class QuickLlm(LlmBackend):
    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        for word in ("We", "open", "at", "nine", "on", "Saturday.", "Anything", "else?"):
            if cancel.is_set():
                return
            time.sleep(0.002)
            yield TextDelta(word + " ")


class QuickTts(TtsBackend):
    rate = 16000

    def synthesize(self, text: str) -> bytes:
        return voiced(self.rate, 0.2 * len(text.split()))  # VADs take it for a voice


@pytest.fixture
def fakes(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.TOM_SESSION_BACKEND, settings.TOM_WARM_UP = "local", True
    settings.TOM_FEATURE_TOOLS = settings.TOM_FEATURE_RL = False
    settings.TOM_LANGUAGE = "en"
    settings.TOM_STT_BACKEND = f"{HERE}.CoresStt"
    settings.TOM_LLM_BACKEND = f"{HERE}.QuickLlm"
    settings.TOM_TTS_BACKEND = f"{HERE}.QuickTts"
    # The fake's cores decide what concurrency costs, not the stage's slots; one
    # transcription a turn (no preemptive one) keeps the sums exact.
    settings.TOM_STT_MAX_CONCURRENCY = 16
    settings.TOM_STT_PREEMPT_MS = 0
    settings.TOM_VAD_STOP_MS = round(STOP_S * 1000)
    settings.TOM_CAPACITY_CALLS, settings.TOM_CAPACITY_MEASURE = None, True
    settings.TOM_MAX_CONCURRENT_CALLS = 100
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.PENDING))
    monkeypatch.setattr(admission, "_measured", None)
    monkeypatch.setattr(CoresStt, "cores", threading.Semaphore(1))
    CoresStt.seconds, CoresStt.calls = TURN_S, 0
    CoresStt.entered.clear()
    yield
    admission.admission_capacity_publish()  # the gauge as the next test's settings say


def _question() -> bytes:
    """1.5 s of "speech" at 8 kHz, then the silence that ends the turn."""
    return voiced(8000, 1.5) + bytes(8000 * 2)


def _gauge(source: str) -> float | None:
    return REGISTRY.get_sample_value("tom_capacity_calls", {"source": source})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("cores", "hard_cap", "budget_s", "turns", "stopped"), [
    # One core: k turns at once wait 1..k x TURN_S for Whisper. k=2: p50 1.5x, worst 2x
    # (held); k=4: p50 2.5x (missed). Two turns: four calls.
    (1, 100, capacity.BUDGET_S, 2, "missed"),
    # As many cores as turns: every k holds, up to the hard cap's turns (12 calls: 6).
    (16, 12, capacity.BUDGET_S, 6, "cap"),
    # A budget too short for the k=2 round to say anything: k=1 is all that is known.
    (16, 100, 2.0, 1, "budget"),
])
async def test_the_measured_capacity_is_the_turns_the_models_hold_at_once_times_two(
        fakes: None, monkeypatch: pytest.MonkeyPatch, settings: Any,
        caplog: pytest.LogCaptureFixture, cores: int, hard_cap: int, budget_s: float,
        turns: int, stopped: str) -> None:
    monkeypatch.setattr(capacity, "BUDGET_S", budget_s)
    monkeypatch.setattr(CoresStt, "cores", threading.Semaphore(cores))
    settings.TOM_MAX_CONCURRENT_CALLS = hard_cap
    with caplog.at_level(logging.INFO, logger="voice.capacity"):
        measured = await capacity.capacity_at_start(question=_question(), language="en",
                                                    call_came=asyncio.Event())
    assert measured is not None, "not measured"
    figures = [r.as_dict() for r in measured.rounds]
    assert (measured.turns, measured.stopped) == (turns, stopped), figures
    assert measured.calls == turns * capacity.CALLS_PER_TURN
    # The base turn: the VAD's end-of-turn silence, the fake Whisper, a little overhead.
    assert STOP_S + TURN_S <= measured.rounds[0].p50_s < STOP_S + TURN_S + 0.2, figures
    assert [r.k for r in measured.rounds] == [k for k in capacity.LADDER
                                              if k <= measured.rounds[-1].k]
    assert measured.seconds < budget_s
    # In force, in /healthz, in the gauge and in the log, with every round's figures.
    status = admission.admission_capacity_status()
    assert status == Capacity(measured.calls, "measured", round(measured.rounds[0].p50_s
                                                                   * 1000))
    assert admission.admission_capacity() == measured.calls
    health = await health_status()
    assert health["capacity"] == {"calls": measured.calls, "source": "measured",
                                  "turn_p50_ms": status.turn_p50_ms}
    assert _gauge("measured") == measured.calls and _gauge("default") is None
    record = next(r for r in caplog.records if r.getMessage() == "voice.capacity_measured")
    assert record.calls == measured.calls and record.source == "measured"  # type: ignore[attr-defined]
    assert record.rounds == figures and record.stopped == stopped  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
async def test_a_single_turn_unanswered_in_time_leaves_the_default(
        fakes: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(capacity, "FIRST_ROUND_LIMIT_S", 0.5)
    CoresStt.seconds = 1.0  # a hung model, as far as the measurement can tell
    with caplog.at_level(logging.INFO, logger="voice.capacity"):
        measured = await capacity.capacity_at_start(question=_question(), language="en",
                                                    call_came=asyncio.Event())
    assert measured is not None and measured.calls is None and measured.turns == 0
    assert measured.stopped == "unanswered"
    assert admission.admission_capacity_status() == Capacity(
        admission.CALLS_PER_CPU * admission._cpus(), "default")
    record = next(r for r in caplog.records if r.getMessage() == "voice.capacity_unmeasured")
    assert record.rounds == [{"k": 1, "p50_ms": None, "max_ms": None}]  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
async def test_the_server_start_warms_up_then_measures_and_admission_uses_it(
        fakes: None, caplog: pytest.LogCaptureFixture) -> None:
    assert admission.admission_capacity_status().source == "default"  # until measured
    with caplog.at_level(logging.INFO):
        status = await warmup.voice_warm_up(measure=True)
    assert status.warm and not status.preempted
    assert admission.admission_capacity_status().calls == 4  # one core: two turns at once
    warm = next(r for r in caplog.records if r.getMessage() == "voice.warm")
    assert warm.capacity_calls == 4  # type: ignore[attr-defined]
    assert status.seconds is not None and status.seconds < capacity.BUDGET_S + 10


@pytest.mark.django_db(transaction=True)
async def test_a_configured_capacity_is_never_measured_nor_overridden(
        fakes: None, settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.TOM_CAPACITY_CALLS = 3
    with caplog.at_level(logging.INFO):
        status = await warmup.voice_warm_up(measure=True)
    assert status.warm
    assert not any(r.getMessage().startswith("voice.capacity") for r in caplog.records)
    assert admission.admission_capacity_status() == Capacity(3, "configured")
    assert _gauge("configured") == 3
    admission.admission_capacity_measured(calls=10, turn_p50_ms=900)  # however it came
    assert admission.admission_capacity() == 3
    assert (await health_status())["capacity"]["source"] == "configured"
    # Switched off: the default, unmeasured.
    settings.TOM_CAPACITY_CALLS, settings.TOM_CAPACITY_MEASURE = None, False
    admission.admission_capacity_measured(calls=None)
    assert await capacity.capacity_at_start(question=_question(), language="en",
                                            call_came=asyncio.Event()) is None
    assert admission.admission_capacity_status().source == "default"


@pytest.mark.django_db(transaction=True)
async def test_a_call_that_arrives_during_the_measurement_cancels_it(
        fakes: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    CoresStt.seconds = 1.0  # a k=2 round takes 2 s: the call must not wait for it
    second_round = asyncio.Event()
    real_round = capacity._round

    async def watched(**kwargs: Any) -> Round:
        if kwargs["k"] == 2:
            second_round.set()
        return await real_round(**kwargs)

    monkeypatch.setattr(capacity, "_round", watched)
    with caplog.at_level(logging.INFO, logger="voice.capacity"):
        warming = asyncio.ensure_future(warmup.voice_warm_up(measure=True))
        await asyncio.wait_for(second_round.wait(), 30)
        CoresStt.entered.clear()
        assert await asyncio.to_thread(CoresStt.entered.wait, 5)  # its turns are in Whisper
        await sync_to_async(call_services.call_start)(uuid="first-caller")
        came = time.perf_counter()
        status = await asyncio.wait_for(warming, 5)
        waited = time.perf_counter() - came
    assert waited < 0.5, waited  # the measurement was cancelled, not finished
    assert status.warm and not status.preempted  # the warm-up turn itself had run
    assert admission.admission_capacity_status().source == "default"
    record = next(r for r in caplog.records if r.getMessage() == "voice.capacity_unmeasured")
    assert record.stopped == "call" and record.source == "default"  # type: ignore[attr-defined]
    assert [r["k"] for r in record.rounds] == [1]  # type: ignore[attr-defined]



def test_tom_run_says_the_capacity_with_the_warmth() -> None:
    from tomsite.management.commands.tom_run import _warmth

    warm_up = {"state": "warm", "seconds": 31.2, "note": "", "preempted": False}
    assert _warmth({"warm_up": warm_up, "capacity": {
        "calls": 4, "source": "measured", "turn_p50_ms": 2286}}) == (
        "warm in 31.2 s (models loaded, one turn through them), capacity 4 calls (measured)")
    assert _warmth({"warm_up": warm_up, "capacity": {"calls": 0, "source": "configured"}}) \
        == "warm in 31.2 s (models loaded, one turn through them)"  # 0: no limit

# --- the real models, through the real server ------------------------------------------

@pytest.mark.models
@pytest.mark.slow
def test_a_real_server_measures_its_capacity_before_it_says_ready(
        live_server_process: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in models.required():
        models.assemble(name)
    log = tmp_path / "web.log"
    server = live_server_process(log=log, TOM_SESSION_BACKEND="local", TOM_WARM_UP="true",
                                 TOM_CAPACITY_MEASURE="true",
                                 TOM_LOG_LEVEL="INFO")  # returns at the first 200
    with urllib.request.urlopen(f"{server.http}/healthz", timeout=5) as response:
        health = json.loads(response.read())
    text = log.read_text()
    line = re.search(r"voice\.capacity_(measured|unmeasured) .*", text)
    assert line, "no voice.capacity line in the web log"
    with capsys.disabled():  # the figures, for the issue
        print(f"\n{line[0]}\n/healthz capacity: {health['capacity']}")  # noqa: T201
    assert line[1] == "measured", line[0]
    capacity_now = health["capacity"]
    assert capacity_now["source"] == "measured" and capacity_now["turn_p50_ms"] > 0
    assert capacity_now["calls"] >= capacity.CALLS_PER_TURN
    assert f"calls={capacity_now['calls']}" in line[0]
    seconds = re.search(r"\bseconds=([\d.]+)", line[0])
    assert seconds and float(seconds[1]) <= capacity.BUDGET_S + 3, line[0]
