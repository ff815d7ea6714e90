"""Context: the conversation history, the tools and their facts, and what the LLM is asked.

The caller's words arrive as ``CallerText``. The router's tool calls run first (their
results go into the caller's message as facts); then the LLM is asked. If the model
asks for tools itself (``ToolRequests``, upstream from the LLM), they run here and the
model is asked again, without tools so that it cannot loop, with what was already said
as its own words. History keeps what the caller heard: the reply's text when it was
complete (``AgentReplied``), the heard part when the caller cut it (``BargeInConfirmed``).

While the end-of-turn silence is still being waited out, ``EarlyCallerText`` (the pause's
transcript) is routed and its tools run, and the request the turn would make goes to the
LLM stage as a ``SpeculativeRequest``. The router proposes lookups only (parts, catalogs,
knowledge base), which change nothing, so running them on a guess is safe; the model's
own tool calls are never run early. The turn reuses the results when its text is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from voice import tools as tool_hooks
from voice.llm_deltas import ToolCallRequest
from voice.pipeline.frames import (
    AgentReplied,
    BargeInConfirmed,
    CallerText,
    CancelTurn,
    Clause,
    Direction,
    EarlyCallerText,
    Frame,
    LlmRequest,
    SpeculativeRequest,
    SpeechContinued,
    ToolRequests,
    TranscriptLine,
)
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech
from voice.session.turn_tools import tools_capped, tools_route, tools_run

HISTORY_TURNS = 6  # earlier exchanges are dropped: a phone call needs little memory

logger = logging.getLogger(__name__)


@dataclass
class _Prepared:
    """The routing and tool results for the pause's transcript, kept for its turn."""

    outcomes: list[tool_hooks.ToolOutcome]
    # A stand-in reply that collected the tools' records, time and stage marks.
    scratch: AgentSpeech


@dataclass
class _Speculation:
    text: str
    speculates: int
    task: asyncio.Task[_Prepared | None]
    claimed: bool = False  # the turn has begun and waits for it: no guess for the LLM


class ContextStage(Stage):
    name = "context"

    def __init__(self, *, language: str, system_prompt: Callable[[], str],
                 tools: tool_hooks.ToolHook | None, call_id: int | None,
                 fillers: bool) -> None:
        super().__init__()
        self.language, self.tools, self.call_id = language, tools, call_id
        self._system_prompt, self.fillers = system_prompt, fillers
        self.history: list[dict[str, str]] = []
        self._speculation: _Speculation | None = None
        self._asked: int | None = None  # the turn whose question is in history, unanswered

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, CallerText) and frame.turn is not None:
            await self._caller(frame.speech, frame.turn)
        elif isinstance(frame, ToolRequests) and frame.turn is not None:
            await self._tool_requests(frame, frame.turn)
        elif isinstance(frame, EarlyCallerText):
            await self._speculate(frame)
        elif isinstance(frame, SpeechContinued):
            self._drop_speculation()
            self.discard(lambda queued: isinstance(queued, EarlyCallerText))
            await self.push(frame, direction)
        elif isinstance(frame, AgentReplied):
            self._replied(frame)
        elif isinstance(frame, BargeInConfirmed):
            self._cut(frame.heard)
            await self.push(frame, direction)
        else:
            await self.push(frame, direction)

    def messages(self, history: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
        history = self.history if history is None else history
        return [{"role": "system", "content": self._system_prompt()},
                *history[-HISTORY_TURNS * 2:]]

    async def on_cancel(self, frame: CancelTurn) -> None:
        if self._speculation is not None and self._speculation.speculates <= frame.upto:
            self._drop_speculation()
        if self._asked is None or self._asked > frame.upto:
            return
        if frame.reason == "caller_went_on" and self.history \
                and self.history[-1]["role"] == "user":
            self.history.pop()  # half a question: the whole one comes with the next turn
        self._asked = None

    async def aclose(self) -> None:
        self._drop_speculation()

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.task.cancel()

    async def _speculate(self, frame: EarlyCallerText) -> None:
        self._drop_speculation()
        speculation = _Speculation(text=frame.text, speculates=frame.speculates,
                                   task=asyncio.Future())  # type: ignore[arg-type]
        speculation.task = asyncio.create_task(self._prepare(speculation),
                                               name=f"context-speculate-{frame.speculates}")
        self._speculation = speculation

    async def _prepare(self, speculation: _Speculation) -> _Prepared | None:
        """Route the pause's transcript and run its lookups; then ask the LLM stage to
        start on the request the turn would make. Any failure costs the guess only."""
        turn, scratch = speculation.speculates, AgentSpeech(turn=speculation.speculates,
                                                            text="", rate=0)
        try:
            routed = await tools_route(hook=self.tools, text=speculation.text,
                                       language=self.language, turn=turn)
            scratch.mark("routed", self.clock())
            outcomes = await tools_run(hook=self.tools, calls=routed, language=self.language,
                                       call_id=self.call_id, speech=scratch, say_filler=None)
            if outcomes:
                scratch.mark("tools_done", self.clock())
            user = {"role": "user", "content": tool_hooks.with_facts(
                speculation.text, outcomes, language=self.language)}
            schemas = await self.tools.schemas() if self.tools and not outcomes else []
        except Exception:  # a guess that fails is not the turn's failure: it redoes it
            logger.warning("pipeline.speculation_failed", exc_info=True, extra={"turn": turn})
            return None
        if not speculation.claimed and self._speculation is speculation:
            await self.push(SpeculativeRequest(messages=self.messages([*self.history, user]),
                                               tools=schemas, speculates=turn))
        return _Prepared(outcomes=outcomes, scratch=scratch)

    async def _prepared(self, text: str, speech: AgentSpeech, turn: int) -> _Prepared | None:
        """The speculation's results if it heard ``text`` for this turn. Lookups still
        running are waited for as the turn's own would be: with the filler when slow."""
        speculation, self._speculation = self._speculation, None
        if speculation is None:
            return None
        if speculation.text != text or speculation.speculates != turn:
            speculation.task.cancel()
            return None
        speculation.claimed = True
        task = speculation.task
        try:
            # wait() neither raises for the task nor cancels it: only this turn's cancel does.
            done, _ = await asyncio.wait({task}, timeout=settings.TOM_TOOL_FILLER_AFTER_MS / 1000)
            if not done:
                if settings.TOM_FEATURE_FILLERS and self.fillers:
                    await self.push(Clause(speech=speech, turn=turn,
                                           text=tool_hooks.filler(self.language), filler=True))
                await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()  # the turn was cancelled: so is what it waits for
            raise
        return None if task.cancelled() else task.result()

    async def _caller(self, speech: AgentSpeech, turn: int) -> None:
        text = speech.caller_text
        await self.push(TranscriptLine(role="caller", text=text, final=True, line_turn=turn))
        prepared = await self._prepared(text, speech, turn)
        if prepared is not None:  # heard the same after the pause: its lookups stand
            outcomes = prepared.outcomes
            speech.tool_calls.extend(prepared.scratch.tool_calls)
            speech.timings.update(prepared.scratch.timings)
            for name, at in prepared.scratch.marks.items():
                speech.mark(name, at)
        else:
            routed = await tools_route(hook=self.tools, text=text, language=self.language,
                                       turn=turn)
            speech.mark("routed", self.clock())
            outcomes = await self._run_tools(routed, speech, turn, spoken="")
            if outcomes:
                speech.mark("tools_done", self.clock())
        self.history.append({"role": "user", "content": tool_hooks.with_facts(
            text, outcomes, language=self.language)})
        self._asked = turn
        schemas = await self.tools.schemas() if self.tools and not outcomes else []
        speech.mark("llm_request", self.clock())
        await self.push(LlmRequest(speech=speech, turn=turn, messages=self.messages(),
                                   tools=schemas))

    async def _tool_requests(self, frame: ToolRequests, turn: int) -> None:
        """The model asked for tools (instead of answering, or after "Let me check."):
        run them, then let it answer from their results."""
        speech = frame.speech
        outcomes = await self._run_tools(tools_capped(calls=frame.calls, turn=turn), speech, turn,
                                   spoken=frame.spoken)
        if self.history and self.history[-1]["role"] == "user":
            self.history[-1]["content"] = tool_hooks.with_facts(
                speech.caller_text, outcomes, language=self.language)
        messages = self.messages()
        if frame.spoken.strip():  # the caller heard "Let me check.": go on, not again
            messages.append({"role": "assistant", "content": frame.spoken.strip()})
        await self.push(LlmRequest(speech=speech, turn=turn, messages=messages,
                                   may_call_tools=False), Direction.DOWN)

    async def _run_tools(self, calls: list[ToolCallRequest], speech: AgentSpeech, turn: int, *,
                   spoken: str) -> list[tool_hooks.ToolOutcome]:
        async def say_filler() -> None:
            await self.push(Clause(speech=speech, turn=turn,
                                   text=tool_hooks.filler(self.language), filler=True))

        # A filler only before anything was said: after "Let me check." it would repeat.
        wants_filler = settings.TOM_FEATURE_FILLERS and self.fillers and not spoken.strip()
        return await tools_run(hook=self.tools, calls=calls, language=self.language,
                               call_id=self.call_id, speech=speech,
                               say_filler=say_filler if wants_filler else None)

    def _replied(self, frame: AgentReplied) -> None:
        self._asked = None
        if frame.apology:
            # The apology asks the caller to say it again: the unanswered question leaves
            # the history, and the apology stays out of it. Kept, the 0.5B model read
            # "user: question / assistant: Sorry, I need a moment" and answered the
            # repeated question with the apology again (seen after a kill -9 of the LLM).
            if self.history and self.history[-1]["role"] == "user":
                self.history.pop()
            return
        self.history.append({"role": "assistant", "content": frame.text})

    def _cut(self, heard: str) -> None:
        if self.history and self.history[-1]["role"] == "assistant":
            self.history[-1]["content"] = heard
        elif heard:
            self.history.append({"role": "assistant", "content": heard})
