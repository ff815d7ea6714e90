"""LLM: one generation per ``LlmRequest``, its typed deltas pushed on as they come.

Text goes down as ``LlmText`` for the clause stage; tool-call requests are collected and,
when the generation ends, go up to the context stage (which runs them and asks again).
The model runs in a worker thread that holds an LLM slot until it returns; a cancelled
turn, or ``StopGeneration`` from the clause stage, ends it at its next token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from voice import llm as llm_module
from voice import metrics
from voice.llm_deltas import TextDelta, ToolCallInvalid, ToolCallRequest
from voice.pipeline.frames import (
    CancelTurn,
    Direction,
    Frame,
    LlmRequest,
    LlmRoundEnd,
    LlmText,
    SpeculativeRequest,
    SpeechContinued,
    StopGeneration,
    ToolRequests,
)
from voice.pipeline.stage import Stage
from voice.session.slots import stage_semaphore, thread_in_slot

logger = logging.getLogger(__name__)

_END = object()


class _Generation:
    """One run of the model in a worker thread holding an LLM slot, its deltas queued for
    whoever reads them. A speculative one starts before its turn and is read only if the
    turn's request turns out the same (``LlmStage.adopt``)."""

    def __init__(self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 clock: Callable[[], float], speculates: int = 0) -> None:
        self.messages, self.tools, self.clock = messages, tools, clock
        self.started, self.speculates = clock(), speculates
        # (when the thread produced it, delta): an adopted generation's first text may
        # predate its turn, and the waterfall should say so.
        self.deltas: asyncio.Queue[object] = asyncio.Queue()
        self.stop = threading.Event()  # set on cancel, stop or the end
        self.producer: asyncio.Future[None] | None = None

    async def start(self, model: llm_module.LlmBackend) -> None:
        loop = asyncio.get_running_loop()

        def generate() -> None:
            try:
                kwargs = {"tools": self.tools} if self.tools else {}
                for delta in model.stream(self.messages, cancel=self.stop, **kwargs):
                    loop.call_soon_threadsafe(self.deltas.put_nowait, (self.clock(), delta))
            finally:
                loop.call_soon_threadsafe(self.deltas.put_nowait, _END)

        # The slot is the generating thread's: freed when it returns, not when we stop.
        self.producer = await thread_in_slot(stage="llm", size=settings.TOM_LLM_MAX_CONCURRENCY,
                                             fn=generate)

    def matches(self, request: LlmRequest) -> bool:
        return self.messages == request.messages and self.tools == request.tools

    def cancel(self) -> None:
        self.stop.set()


class LlmStage(Stage):
    name = "llm"

    def __init__(self, *, backend: Callable[[], Awaitable[llm_module.LlmBackend]]) -> None:
        super().__init__()
        self._backend = backend
        self._stop: tuple[int, threading.Event] | None = None  # the generation running
        self._speculative: _Generation | None = None

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, StopGeneration):
            if self._stop is not None and self._stop[0] == frame.turn:
                self._stop[1].set()
        elif isinstance(frame, SpeculativeRequest):
            await self._speculate(frame)
        elif isinstance(frame, SpeechContinued):
            self._drop_speculation()  # the caller went on: that guess is stale
            self.discard(lambda queued: isinstance(queued, SpeculativeRequest))
            await self.push(frame, direction)
        elif isinstance(frame, LlmRequest) and frame.turn is not None:
            await self._generate(frame, frame.turn)
        else:
            await self.push(frame, direction)

    async def on_cancel(self, frame: CancelTurn) -> None:
        if self._speculative is not None and self._speculative.speculates <= frame.upto:
            self._drop_speculation()

    async def _speculate(self, frame: SpeculativeRequest) -> None:
        """Start the model on the early transcript's request while the caller's silence
        is still being waited out, unless every LLM slot is taken: a guess must not make
        another caller's turn wait."""
        self._drop_speculation()
        if stage_semaphore(stage="llm", size=settings.TOM_LLM_MAX_CONCURRENCY).locked():
            return
        generation = _Generation(messages=frame.messages, tools=frame.tools,
                                 clock=self.clock, speculates=frame.speculates)
        await generation.start(await self._backend())
        self._speculative = generation
        metrics.LLM_SPECULATION.labels(outcome="started").inc()

    def _drop_speculation(self) -> None:
        generation, self._speculative = self._speculative, None
        if generation is not None:
            generation.cancel()
            metrics.LLM_SPECULATION.labels(outcome="dropped").inc()

    def _adopt(self, request: LlmRequest, turn: int) -> _Generation | None:
        """The speculative generation, if it was asked exactly what the turn asks. An
        earlier turn's request (the answer after a tool ran) leaves it be."""
        generation = self._speculative
        if generation is None or turn < generation.speculates:
            return None
        self._speculative = None
        if turn == generation.speculates and generation.matches(request) \
                and not generation.stop.is_set():
            metrics.LLM_SPECULATION.labels(outcome="used").inc()
            return generation
        generation.cancel()
        metrics.LLM_SPECULATION.labels(outcome="dropped").inc()
        return None

    async def _generate(self, request: LlmRequest, turn: int) -> None:
        generation = self._adopt(request, turn)
        if generation is None:
            generation = _Generation(messages=request.messages, tools=request.tools,
                                     clock=self.clock)
            await generation.start(await self._backend())
        else:
            request.speech.mark("llm_speculated", generation.started)
        stop, deltas = generation.stop, generation.deltas
        self._stop = (turn, stop)
        speech, started = request.speech, generation.started
        calls: list[ToolCallRequest] = []
        said: list[str] = []
        try:
            while (item := await deltas.get()) is not _END:
                at: float
                delta: object
                at, delta = item  # type: ignore[misc]
                if isinstance(delta, str):  # a plain-text backend (scripted fakes)
                    delta = TextDelta(text=delta)
                if isinstance(delta, ToolCallRequest):
                    speech.mark("llm_tool_call", at)
                    calls.append(delta)  # even after StopGeneration: a call is not talk
                elif stop.is_set():
                    continue  # text the thread sent before it saw the flag
                elif isinstance(delta, ToolCallInvalid):
                    logger.warning("session.tool_call_unparsable",
                                   extra={"turn": turn, "error": delta.error[:200]})
                elif isinstance(delta, TextDelta) and delta.text:
                    speech.mark("llm_first_text", at)
                    if "llm_first_token_ms" not in speech.timings:
                        speech.timings["llm_first_token_ms"] = round((at - started) * 1000)
                        metrics.LLM_LATENCY.observe(speech.timings["llm_first_token_ms"] / 1000)
                    said.append(delta.text)
                    await self.push(LlmText(speech=speech, turn=turn, text=delta.text))
        finally:
            stop.set()  # cancelled (barge-in) or failed: the thread stops at its next token
            self._stop = None
        if generation.producer is not None:
            await asyncio.shield(generation.producer)
        more = bool(calls) and request.may_call_tools
        await self.push(LlmRoundEnd(speech=speech, turn=turn, final=not more))
        if more:
            if said:
                # "Let me check. <tool_call>…": the clause stays said; the call runs and
                # its result leads to the rest (as Pipecat and LiveKit run a function
                # call that follows text in the same response).
                logger.info("session.tool_call_after_speech",
                            extra={"turn": turn, "tool_calls": len(calls)})
            await self.push(ToolRequests(speech=speech, turn=turn, calls=calls,
                                         spoken="".join(said)), Direction.UP)
