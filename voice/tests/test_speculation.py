"""Speculation: on the transcript of the caller's pause, the lookups run and the LLM starts
before the turn begins; the turn keeps that work only when it asks exactly the same, and
nothing is said before the caller's silence has ended the turn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

from voice import metrics
from voice.llm_deltas import LlmDelta, TextDelta, ToolCallRequest
from voice.pipeline.context import ContextStage
from voice.pipeline.frames import (
    CallerText,
    CancelTurn,
    Clause,
    Direction,
    EarlyCallerText,
    LlmRequest,
    LlmText,
    SpeculativeRequest,
    SpeechContinued,
)
from voice.pipeline.llm_stage import LlmStage
from voice.pipeline.testing import StageHarness
from voice.protocols.metadata import CallStart
from voice.session.events import AgentAudio, AgentSpeech, Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tests.test_local_session import RATE, ScriptedTts, _feed

QUESTION = "Do you have brake pads for a Golf?"


def _speech(turn: int = 1, text: str = QUESTION) -> AgentSpeech:
    return AgentSpeech(turn=turn, text="", rate=8000, caller_text=text, caller_speech_end_at=0.0)


class _Hook:
    """The router proposes a parts lookup for every question; each call is counted."""

    def __init__(self) -> None:
        self.calls: list[ToolCallRequest] = []

    async def route(self, *, text: str, language: str) -> list[ToolCallRequest]:
        return [ToolCallRequest(name="parts_lookup", arguments={"part": text})]

    async def schemas(self) -> list[dict[str, Any]]:
        return []

    async def call(self, tool_call: ToolCallRequest, *, language: str,
                   call_id: int | None) -> Any:
        from voice.tools import ToolOutcome

        self.calls.append(tool_call)
        return ToolOutcome(name=tool_call.name, ok=True, text="TP-10098, 46.38 EUR",
                           record={"tool": tool_call.name, "ok": True})


async def _guessed(harness: StageHarness) -> SpeculativeRequest:
    """The speculative request, once the stage's own task has prepared it."""
    speculation = harness.stage._speculation  # type: ignore[attr-defined]
    async with asyncio.timeout(5):
        await asyncio.wait({speculation.task})
    [guess] = harness.of(SpeculativeRequest)
    return guess


def _context(hook: _Hook) -> ContextStage:
    return ContextStage(language="en", system_prompt=lambda: "You are TOM.", tools=hook,
                        call_id=None, fillers=False)


async def test_the_pause_transcript_prepares_the_exact_request_the_turn_makes() -> None:
    hook = _Hook()
    harness = StageHarness(_context(hook))
    await harness.run([EarlyCallerText(text=QUESTION, speculates=1)])
    guess = await _guessed(harness)
    assert guess.speculates == 1 and "46.38 EUR" in guess.messages[-1]["content"]
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])
    [request] = harness.of(LlmRequest)
    assert request.messages == guess.messages and request.tools == guess.tools
    assert len(hook.calls) == 1  # the lookup ran once, on the guess, and was reused
    assert speech.tool_calls == [{"tool": "parts_lookup", "ok": True}]
    assert {"routed", "tools_done", "llm_request"} <= set(speech.marks)
    await harness.close()


async def test_a_different_final_transcript_routes_again_and_the_guess_is_dropped() -> None:
    hook = _Hook()
    harness = StageHarness(_context(hook))
    await harness.run([EarlyCallerText(text="Do you have brake pads?", speculates=1)])
    guess = await _guessed(harness)
    await harness.run([CallerText(speech=_speech(), turn=1)])
    [request] = harness.of(LlmRequest)
    assert request.messages != guess.messages
    assert [c.arguments["part"] for c in hook.calls] == ["Do you have brake pads?", QUESTION]
    await harness.close()


async def test_the_caller_going_on_discards_a_guess_still_being_prepared() -> None:
    hook = _Hook()
    entered, release = asyncio.Event(), asyncio.Event()
    route = hook.route

    async def slow_route(*, text: str, language: str) -> list[ToolCallRequest]:
        entered.set()
        await release.wait()
        return await route(text=text, language=language)

    hook.route = slow_route  # type: ignore[method-assign]
    harness = StageHarness(_context(hook))
    await harness.send(EarlyCallerText(text=QUESTION, speculates=1))  # in work ...
    await entered.wait()
    await harness.send(EarlyCallerText(text=QUESTION + " Or", speculates=1))  # ... queued
    await harness.send(SpeechContinued())
    release.set()
    await harness.stage.idle()
    await asyncio.sleep(0.05)
    assert harness.of(SpeculativeRequest) == []
    assert harness.of(SpeechContinued)  # passed on, for the LLM stage
    await harness.close()


class _Llm:
    """Counts its generations; each yields the reply word by word until cancelled."""

    def __init__(self) -> None:
        self.runs: list[list[dict[str, Any]]] = []
        self.cancelled = threading.Event()

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        self.runs.append(messages)
        for word in ("Yes,", "TP-10098", "costs", "46.38", "EUR."):
            if cancel.is_set():
                self.cancelled.set()
                return
            time.sleep(0.01)
            yield TextDelta(word + " ")


def _llm_stage(llm: _Llm) -> StageHarness:
    async def backend() -> Any:
        return llm

    return StageHarness(LlmStage(backend=backend))


MESSAGES = [{"role": "system", "content": "You are TOM."}, {"role": "user", "content": QUESTION}]


async def test_the_turn_adopts_a_generation_started_on_the_same_request() -> None:
    llm = _Llm()
    harness = _llm_stage(llm)
    used = metrics.LLM_SPECULATION.labels(outcome="used")._value.get()
    await harness.run([SpeculativeRequest(messages=MESSAGES, tools=[], speculates=1)])
    await asyncio.sleep(0.08)  # the model runs on the guess; nothing goes down yet
    assert llm.runs == [MESSAGES] and harness.of(LlmText) == []
    speech = _speech()
    await harness.run([LlmRequest(speech=speech, turn=1, messages=list(MESSAGES))])
    assert len(llm.runs) == 1  # not asked again
    assert "".join(f.text for f in harness.of(LlmText)) == "Yes, TP-10098 costs 46.38 EUR. "
    assert all(f.turn == 1 for f in harness.of(LlmText))
    # The first text was produced before the turn asked for it, and the waterfall says so.
    assert speech.marks["llm_speculated"] <= speech.marks["llm_first_text"]
    assert metrics.LLM_SPECULATION.labels(outcome="used")._value.get() == used + 1
    await harness.close()


async def test_a_different_request_cancels_the_guess_and_asks_anew() -> None:
    llm = _Llm()
    harness = _llm_stage(llm)
    await harness.run([SpeculativeRequest(messages=MESSAGES, tools=[], speculates=1)])
    other = [MESSAGES[0], {"role": "user", "content": "Do you have wipers?"}]
    await harness.run([LlmRequest(speech=_speech(), turn=1, messages=other)])
    assert llm.runs == [MESSAGES, other]
    assert "".join(f.text for f in harness.of(LlmText)) == "Yes, TP-10098 costs 46.38 EUR. "
    await harness.close()


async def test_the_caller_going_on_or_a_cancel_stops_the_guess() -> None:
    for stopper in (SpeechContinued(), CancelTurn(upto=1, reason="barge_in")):
        llm = _Llm()
        harness = _llm_stage(llm)
        await harness.run([SpeculativeRequest(messages=MESSAGES, tools=[], speculates=1)])
        await harness.send(stopper)
        await asyncio.sleep(0.1)
        assert llm.cancelled.is_set(), stopper
        assert harness.of(LlmText) == []
        await harness.close()


async def test_an_earlier_turns_follow_up_leaves_the_guess_alone() -> None:
    llm = _Llm()
    harness = _llm_stage(llm)
    await harness.run([SpeculativeRequest(messages=MESSAGES, tools=[], speculates=2)])
    follow_up = [MESSAGES[0], {"role": "user", "content": "earlier"}]
    await harness.run([LlmRequest(speech=_speech(turn=1), turn=1, messages=follow_up,
                                  may_call_tools=False)])
    await harness.run([LlmRequest(speech=_speech(turn=2), turn=2, messages=list(MESSAGES))])
    assert llm.runs == [MESSAGES, follow_up]  # turn 2 used the guess
    await harness.close()


# --- a whole session, on scripted models ------------------------------------------------------
class _FixedStt(SttBackend):
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        time.sleep(0.02)
        return Transcription(text=QUESTION if len(pcm) > 20000 else "Do you have",
                             language="en", ms=20)


def _session(llm: _Llm) -> LocalSession:
    call = CallStart(uuid="s", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    return LocalSession(call=call, stt_backend=_FixedStt(), llm_backend=llm,  # type: ignore[arg-type]
                        tts_backend=ScriptedTts())


def _silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


async def _agent_audio(session: LocalSession, wait_s: float) -> list[Any]:
    out: list[Any] = []
    with_deadline = asyncio.timeout(wait_s)
    try:
        async with with_deadline:
            while True:
                event = await session.events.get()
                out.append(event)
                if isinstance(event, Transcript) and event.role == "agent":
                    return out
    except TimeoutError:
        return out


async def test_a_session_speaks_only_after_the_turn_and_asks_the_model_once(
        settings: Any) -> None:
    settings.TOM_STT_PREEMPT_MS, settings.TOM_VAD_STOP_MS = 150, 450
    settings.TOM_LLM_SPECULATE = True
    llm = _Llm()
    session = _session(llm)
    t = await _feed(session, voiced(RATE, 1.5) + _silence(300), 0.0)
    await asyncio.sleep(0.3)  # the guess is heard, looked up and generated meanwhile
    assert len(llm.runs) == 1 and session.turns.turn == 0
    early = [e for e in await _agent_audio(session, 0.2) if isinstance(e, AgentAudio)]
    assert early == []  # the caller has not finished: nothing said yet
    await _feed(session, _silence(400), t)
    events = await _agent_audio(session, 5.0)
    assert any(isinstance(e, AgentAudio) for e in events)
    assert len(llm.runs) == 1  # the turn adopted the guess
    await session.aclose()


async def test_a_caller_who_goes_on_after_the_pause_gets_an_answer_to_all_of_it(
        settings: Any) -> None:
    settings.TOM_STT_PREEMPT_MS, settings.TOM_VAD_STOP_MS = 150, 450
    settings.TOM_LLM_SPECULATE = True
    llm = _Llm()
    session = _session(llm)
    dropped = metrics.LLM_SPECULATION.labels(outcome="dropped")._value.get()
    t = await _feed(session, voiced(RATE, 0.5) + _silence(300), 0.0)  # "Do you have" ...
    await asyncio.sleep(0.3)
    assert len(llm.runs) == 1 and "Do you have" in str(llm.runs[0][-1])
    t = await _feed(session, voiced(RATE, 1.0) + _silence(500), t)  # ... the rest
    events = await _agent_audio(session, 5.0)
    # The guess on half a question was thrown away, not spoken.
    assert metrics.LLM_SPECULATION.labels(outcome="dropped")._value.get() == dropped + 1
    assert any(isinstance(e, AgentAudio) for e in events)
    assert QUESTION in str(llm.runs[-1][-1])
    caller = [e.text for e in events if isinstance(e, Transcript) and e.role == "caller"]
    assert caller == [QUESTION]
    await session.aclose()


async def test_the_turn_waits_for_slow_early_lookups_with_the_filler() -> None:
    hook = _Hook()
    call = hook.call

    async def slow_call(tool_call: ToolCallRequest, *, language: str,
                        call_id: int | None) -> Any:
        await asyncio.sleep(0.6)
        return await call(tool_call, language=language, call_id=call_id)

    hook.call = slow_call  # type: ignore[method-assign]
    stage = ContextStage(language="en", system_prompt=lambda: "You are TOM.", tools=hook,
                         call_id=None, fillers=True)
    harness = StageHarness(stage)
    await harness.run([EarlyCallerText(text=QUESTION, speculates=1)])
    speech = _speech()
    await harness.run([CallerText(speech=speech, turn=1)])  # the lookup is still running
    [filler] = harness.of(Clause)
    assert filler.filler and filler.turn == 1
    [request] = harness.of(LlmRequest)
    assert "46.38 EUR" in request.messages[-1]["content"] and len(hook.calls) == 1
    assert harness.of(SpeculativeRequest) == []  # the turn had begun: no guess needed
    await harness.close()


# --- a caller who goes on after the turn began ------------------------------------------------
def _frames16(pcm: bytes, start: float) -> list[Any]:
    from voice.pipeline.frames import AudioFrame

    return [AudioFrame(pcm=pcm[i:i + 640], at=start + i / 640 * 0.02)
            for i in range(0, len(pcm) - 639, 640)]


async def test_speech_before_any_reply_was_heard_joins_the_half_question() -> None:
    from voice.pipeline.frames import Utterance
    from voice.pipeline.turns import JOIN_GAP_S, TurnStage

    harness = StageHarness(TurnStage(stop_ms=300, barge_in_ms=None, mixed=False,
                                     preempt_ms=0))
    first, second = voiced(16000, 0.6), voiced(16000, 0.8)
    quiet = bytes(2 * 16000 // 2)  # 0.5 s: past the stop, the turn begins
    t = len(first + quiet) / 32000
    await harness.run(_frames16(first + quiet, 0.0))
    await harness.run(_frames16(second + quiet, t))  # "... Golf seven?" 0.2 s later
    half, whole = harness.of(Utterance)
    cancel = harness.of(CancelTurn)[0]  # then "superseded", as every new turn sends
    assert cancel.reason == "caller_went_on" and cancel.upto == half.turn == 1
    assert whole.turn == 2 and whole.pcm.startswith(half.pcm)
    gap_and_second = len(whole.pcm) - len(half.pcm)
    assert 2 * 16000 * (JOIN_GAP_S + 0.7) <= gap_and_second <= 2 * 16000 * (JOIN_GAP_S + 1.0)
    await harness.close()


async def test_speech_after_the_reply_began_is_a_turn_of_its_own() -> None:
    from voice.pipeline.frames import AgentStarted, Utterance
    from voice.pipeline.turns import TurnStage

    harness = StageHarness(TurnStage(stop_ms=300, barge_in_ms=None, mixed=False,
                                     preempt_ms=0))
    quiet = bytes(2 * 16000 * 3)  # 3 s: the reply began and ended
    await harness.run(_frames16(voiced(16000, 0.6) + quiet, 0.0))
    [half] = harness.of(Utterance)
    speech = _speech(turn=half.turn)
    speech.first_sent_at, speech.complete = 1.5, True
    await harness.send(AgentStarted(speech=speech), Direction.UP)
    await harness.run(_frames16(voiced(16000, 0.8) + quiet[:16000], 3.6))
    second = harness.of(Utterance)[-1]
    assert second.turn == 2 and not second.pcm.startswith(half.pcm)
    assert [c.reason for c in harness.of(CancelTurn)] == ["superseded"]
    await harness.close()


async def test_the_context_forgets_the_half_question_it_was_asked() -> None:
    stage = _context(_Hook())
    harness = StageHarness(stage)
    await harness.run([CallerText(speech=_speech(text="Do you have brake pads for a"), turn=1)])
    assert stage.history[-1]["role"] == "user"
    await harness.send(CancelTurn(upto=1, reason="caller_went_on"))
    assert stage.history == []
    await harness.run([CallerText(speech=_speech(turn=2), turn=2)])
    assert [m["role"] for m in stage.history] == ["user"]
    assert stage.history[0]["content"].startswith(QUESTION)
    await harness.close()
