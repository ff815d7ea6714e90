"""Context: the conversation history, the tools and their facts, and what the LLM is asked.

The caller's words arrive as ``CallerText``. The router's tool calls run first (their
results go into the caller's message as facts); then the LLM is asked. If the model
asks for tools itself (``ToolRequests``, upstream from the LLM), they run here and the
model is asked again, without tools so that it cannot loop, with what was already said
as its own words. History keeps what the caller heard: the reply's text when it was
complete (``AgentReplied``), the heard part when the caller cut it (``BargeInConfirmed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from voice import tools as tool_hooks
from voice.llm_deltas import ToolCallRequest
from voice.pipeline.frames import (
    AgentReplied,
    BargeInConfirmed,
    CallerText,
    Clause,
    Direction,
    Frame,
    LlmRequest,
    ToolRequests,
    TranscriptLine,
)
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech
from voice.session.turn_tools import tools_capped, tools_route, tools_run

HISTORY_TURNS = 6  # earlier exchanges are dropped: a phone call needs little memory


class ContextStage(Stage):
    name = "context"

    def __init__(self, *, language: str, system_prompt: Callable[[], str],
                 tools: tool_hooks.ToolHook | None, call_id: int | None,
                 fillers: bool) -> None:
        super().__init__()
        self.language, self.tools, self.call_id = language, tools, call_id
        self._system_prompt, self.fillers = system_prompt, fillers
        self.history: list[dict[str, str]] = []

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, CallerText) and frame.turn is not None:
            await self._caller(frame.speech, frame.turn)
        elif isinstance(frame, ToolRequests) and frame.turn is not None:
            await self._tool_requests(frame, frame.turn)
        elif isinstance(frame, AgentReplied):
            self._replied(frame)
        elif isinstance(frame, BargeInConfirmed):
            self._cut(frame.heard)
            await self.push(frame, direction)
        else:
            await self.push(frame, direction)

    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self._system_prompt()},
                *self.history[-HISTORY_TURNS * 2:]]

    async def _caller(self, speech: AgentSpeech, turn: int) -> None:
        text = speech.caller_text
        await self.push(TranscriptLine(role="caller", text=text, final=True, line_turn=turn))
        routed = await tools_route(hook=self.tools, text=text, language=self.language,
                                   turn=turn)
        outcomes = await self._run_tools(routed, speech, turn, spoken="")
        self.history.append({"role": "user", "content": tool_hooks.with_facts(
            text, outcomes, language=self.language)})
        schemas = await self.tools.schemas() if self.tools and not outcomes else []
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
