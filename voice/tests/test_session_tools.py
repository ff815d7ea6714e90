"""The tool hook in the voice loop, with scripted stages: routing, LLM tool calls,
the filler while a slow tool runs, what the history and the turn keep, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from voice.llm_deltas import LlmDelta, TextDelta, ToolCallRequest
from voice.protocols.metadata import CallStart
from voice.session.events import AgentAudio, Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.tests.test_local_session import RATE, ScriptedStt, ScriptedTts, _drain, _feed
from voice.tools import ToolOutcome

FACTS = "Golf VII: ATE brake pads, part number TP-10098, 46.38 EUR, 2 in stock"
ANSWER = "Yes, ATE brake pads, part number TP-10098, cost 46.38 euros."
LOOKUP = ToolCallRequest(name="parts_lookup", arguments={"vehicle": "Golf 7"})


class ScriptedHook:
    def __init__(self, *, route: list[ToolCallRequest], delay_s: float = 0.0) -> None:
        self.routed, self.delay_s = route, delay_s
        self.calls: list[ToolCallRequest] = []
        self.started, self.cancelled = asyncio.Event(), asyncio.Event()

    async def prepare(self) -> None:
        pass

    async def route(self, *, text: str, language: str) -> list[ToolCallRequest]:
        return self.routed

    async def schemas(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "parts_lookup"}}]

    async def vocabulary(self, *, language: str) -> Any:
        return None  # no catalog words: transcripts pass unchanged

    async def call(self, tool_call: ToolCallRequest, *, language: str,
                   call_id: int | None) -> ToolOutcome:
        self.calls.append(tool_call)
        self.started.set()
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return ToolOutcome(name=tool_call.name, ok=True, text=FACTS,
                           record={"tool": tool_call.name, "arguments": tool_call.arguments,
                                   "ok": True})


def _last_user(messages: list[dict[str, Any]]) -> str:
    return str(next(m["content"] for m in reversed(messages) if m["role"] == "user"))


class ToolAwareLlm:
    """Answers from facts when they are in the prompt; otherwise asks for the tool (as a
    backend yields it: how a model's text becomes a call is voice.llm_tags' part)."""

    def __init__(self) -> None:
        self.prompts: list[list[dict[str, Any]]] = []
        self.tools_offered: list[bool] = []

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[str | LlmDelta]:
        self.prompts.append([dict(m) for m in messages])
        self.tools_offered.append(bool(tools))
        if "TP-10098" not in _last_user(messages):
            yield LOOKUP
            return
        for word in ANSWER.split(" "):
            if cancel.is_set():
                return
            time.sleep(0.002)
            yield word + " "


def _session(llm: ToolAwareLlm, hook: ScriptedHook) -> LocalSession:
    call = CallStart(uuid="t", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    return LocalSession(call=call, stt_backend=ScriptedStt(), llm_backend=llm,  # type: ignore[arg-type]
                        tts_backend=ScriptedTts(), tool_hook=hook, call_id=7)


ROUTED = ToolCallRequest(name="parts_lookup",
                         arguments={"vehicle": "Golf 7", "part": "brake pads"})


async def test_a_routed_tool_runs_before_the_llm_and_its_facts_reach_the_prompt() -> None:
    llm, hook = ToolAwareLlm(), ScriptedHook(route=[ROUTED])
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    assert said == ["Yes, ATE brake pads,", "part number TP-10098, cost 46.38 euros."]
    assert hook.calls == [ROUTED] and llm.tools_offered == [False]
    prompt = llm.prompts[0][-1]["content"]
    assert prompt == f"Do you have brake pads?\n\n(Data from our system: parts_lookup: {FACTS})"
    speech = events[-2].speech
    assert speech.tool_calls == [{"tool": "parts_lookup", "ok": True,
                                  "arguments": ROUTED.arguments}]
    assert "tools_ms" in speech.timings
    await session.aclose()


async def test_a_slow_tool_gets_a_filler_first_which_history_leaves_out() -> None:
    llm, hook = ToolAwareLlm(), ScriptedHook(route=[ROUTED], delay_s=0.5)
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    assert said == ["One moment, let me check.", "Yes, ATE brake pads,",
                    "part number TP-10098, cost 46.38 euros."]
    assert session.history[-1] == {
        "role": "assistant",
        "content": "Yes, ATE brake pads, part number TP-10098, cost 46.38 euros."}
    assert events[-1].text.startswith("One moment, let me check. Yes,")  # what was spoken
    await session.aclose()


async def test_a_tool_the_llm_asks_for_is_run_and_never_spoken() -> None:
    llm, hook = ToolAwareLlm(), ScriptedHook(route=[])
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    assert said == ["Yes, ATE brake pads,", "part number TP-10098, cost 46.38 euros."]
    assert not any("{" in text for text in said)
    assert hook.calls == [LOOKUP]
    # Offered the tools the first time; answering from the result, no tools to loop on.
    assert llm.tools_offered == [True, False]
    assert "(Data from our system: parts_lookup:" in llm.prompts[1][-1]["content"]
    await session.aclose()


async def test_hanging_up_during_a_tool_cancels_it_and_leaves_nothing_running() -> None:
    llm, hook = ToolAwareLlm(), ScriptedHook(route=[ROUTED], delay_s=30)
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    await asyncio.wait_for(hook.started.wait(), 5)
    await session.aclose()
    await asyncio.wait_for(hook.cancelled.wait(), 2)
    assert llm.prompts == []  # the LLM never ran for the abandoned turn
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                and not t.done()]
    assert leftover == [], leftover


class VocabularyHook(ScriptedHook):
    async def vocabulary(self, *, language: str) -> Any:
        from toolhub.entities import Vocabulary

        # "volkswagon" as the catalog's make aliases have it: a catalog request.
        return Vocabulary(terms=["brake pads", "Volkswagen Golf"], hints=["Volkswagen"],
                          makes=frozenset({"volkswagen", "volkswagon"}))


class MishearingStt(ScriptedStt):
    def __init__(self) -> None:
        self.hints: list[dict[str, str]] = []

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Any:
        from voice.stt import Transcription

        self.hints.append({"hotwords": hotwords, "prompt": prompt})
        return Transcription(text="Do you have break pads for a Volkswagon Golf?",
                             language="en", ms=5)


async def _heard(stt: Any, hook: ScriptedHook, llm: ToolAwareLlm
                 ) -> tuple[LocalSession, list[Any]]:
    """A session with ``hook``'s catalog words hears one question through ``stt``."""
    call = CallStart(uuid="c", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    session = LocalSession(call=call, stt_backend=stt, llm_backend=llm,
                           tts_backend=ScriptedTts(), tool_hook=hook)
    await session.prepare()
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    return session, await _drain(session, Transcript)


UNBIASED = {"hotwords": "", "prompt": ""}
PROMPTED = {"hotwords": "", "prompt": "Car parts: Volkswagen."}


@pytest.mark.parametrize(("bias", "passes"), [
    # The default: unbiased, then again with the prompt because it reads as a catalog request.
    ("conditional", [UNBIASED, PROMPTED]),
    ("prompt", [PROMPTED]),
    ("hotwords", [{"hotwords": "Volkswagen", "prompt": ""}]),
    ("off", [UNBIASED]),
])
async def test_the_caller_text_is_corrected_and_the_raw_one_kept(
        settings: Any, bias: str, passes: list[dict[str, str]]) -> None:
    settings.TOM_STT_BIAS = bias
    llm, heard = ToolAwareLlm(), MishearingStt()
    session, events = await _heard(heard, VocabularyHook(route=[]), llm)
    caller = next(e for e in events if isinstance(e, Transcript) and e.role == "caller")
    assert caller.text == "Do you have brake pads for a Volkswagen Golf?"
    speech = next(e for e in events if isinstance(e, AgentAudio)).speech
    assert speech.caller_text == caller.text
    assert speech.caller_text_raw == "Do you have break pads for a Volkswagon Golf?"
    assert heard.hints == passes  # Whisper was biased as TOM_STT_BIAS says
    assert llm.prompts[0][-1]["content"].startswith("Do you have brake pads")
    await session.aclose()


class PreambleLlm(ToolAwareLlm):
    """Says a clause, then calls the tool, as Qwen 2.5 does when it announces what it is
    about to do."""

    def __init__(self, preamble: str = "Let me look that up.", *,
                 talks_on: bool = False) -> None:
        super().__init__()
        self.preamble, self.talks_on = preamble, talks_on

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[str | LlmDelta]:
        if "TP-10098" in _last_user(messages):
            yield from super().stream(messages, cancel=cancel, tools=tools)
            return
        self.prompts.append([dict(m) for m in messages])
        self.tools_offered.append(bool(tools))
        for word in self.preamble.split(" "):
            if cancel.is_set():
                return
            yield TextDelta(word + " ")
        # A model talking on is still generating when the stop comes: wait for the flag
        # (an event, not a guessed delay) where it would otherwise write the call.
        if self.talks_on and cancel.wait(timeout=10):
            return
        yield LOOKUP


@pytest.mark.parametrize("max_sentences", [2, 1])
async def test_a_tool_call_after_a_spoken_clause_runs_and_its_answer_follows(
        settings: Any, max_sentences: int) -> None:
    settings.TOM_MAX_SENTENCES = max_sentences  # 1: the clause alone fills the budget
    llm, hook = PreambleLlm(), ScriptedHook(route=[])
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    assert said[0] == "Let me look that up."
    assert said[1] == "Yes, ATE brake pads,"  # the answer from the tool's result
    assert not any("tool_call" in text or "{" in text for text in said)
    assert hook.calls == [LOOKUP]
    assert llm.tools_offered == [True, False]
    assert "(Data from our system: parts_lookup:" in llm.prompts[1][-2]["content"]
    # What the caller already heard is in the prompt, so the answer goes on from it.
    assert llm.prompts[1][-1] == {"role": "assistant", "content": "Let me look that up."}
    # The clause stays in the history as what was said, followed by the answer.
    assert session.history[-1]["content"].startswith("Let me look that up. Yes, ATE")
    speech = events[-2].speech
    assert speech.tool_calls == [{"tool": "parts_lookup", "ok": True,
                                  "arguments": {"vehicle": "Golf 7"}}]
    await session.aclose()


async def test_a_reply_that_talks_on_past_its_budget_stops_there(settings: Any) -> None:
    settings.TOM_MAX_SENTENCES = 1
    llm = PreambleLlm("Let me look that up. It takes a second.", talks_on=True)
    hook = ScriptedHook(route=[])
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    # One sentence is the variant's maximum: the model talked on, so generation stopped
    # before it reached the tool call (nothing after the budget is read or spoken).
    assert said == ["Let me look that up."]
    assert hook.calls == [] and llm.tools_offered == [True]
    await session.aclose()


class LoopingLlm(ToolAwareLlm):
    """Asks for the same tool five times in one reply (a small model looping)."""

    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[str | LlmDelta]:
        if "TP-10098" in _last_user(messages):
            yield from super().stream(messages, cancel=cancel, tools=tools)
            return
        self.prompts.append([dict(m) for m in messages])
        self.tools_offered.append(bool(tools))
        yield from [LOOKUP] * 5


async def test_tool_calls_over_the_cap_are_refused_with_a_log_and_a_metric(
        caplog: pytest.LogCaptureFixture) -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        return REGISTRY.get_sample_value("tom_session_tool_calls_refused_total",
                                         {"reason": "over_cap"}) or 0.0

    before = refused()
    llm, hook = LoopingLlm(), ScriptedHook(route=[])
    session = _session(llm, hook)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE * 2), 0.0)
    events = await _drain(session, Transcript)
    said = [e.text for e in events if isinstance(e, AgentAudio) and e.text]
    assert said == ["Yes, ATE brake pads,", "part number TP-10098, cost 46.38 euros."]
    assert len(hook.calls) == 3  # MAX_TOOL_CALLS
    assert refused() == before + 2
    assert "session.tool_calls_capped" in caplog.messages
    await session.aclose()


class PlainStt(MishearingStt):
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Any:
        from voice.stt import Transcription

        self.hints.append({"hotwords": hotwords, "prompt": prompt})
        return Transcription(text="Do you ship to Austria?", language="en", ms=5)


async def test_a_plain_question_is_heard_once_unbiased_and_left_uncorrected(
        settings: Any) -> None:
    settings.TOM_STT_BIAS = "conditional"
    heard = PlainStt()
    session, events = await _heard(heard, AstraHook(route=[]), ToolAwareLlm())
    caller = next(e for e in events if isinstance(e, Transcript) and e.role == "caller")
    assert caller.text == "Do you ship to Austria?"  # not "Astra": no correction
    assert heard.hints == [UNBIASED]  # one pass, no catalog prompt
    await session.aclose()


class AstraHook(ScriptedHook):
    async def vocabulary(self, *, language: str) -> Any:
        from toolhub.entities import Vocabulary

        # Correction alone would rewrite "Austria" as the catalog's "Astra".
        return Vocabulary(terms=["Opel Astra", "Astra"], hints=["Opel"],
                          makes=frozenset({"opel"}))
