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

from django.conf import settings

from voice import llm as llm_module
from voice import metrics
from voice.llm_deltas import TextDelta, ToolCallInvalid, ToolCallRequest
from voice.pipeline.frames import (
    Direction,
    Frame,
    LlmRequest,
    LlmRoundEnd,
    LlmText,
    StopGeneration,
    ToolRequests,
)
from voice.pipeline.stage import Stage
from voice.session.slots import thread_in_slot

logger = logging.getLogger(__name__)

_END = object()


class LlmStage(Stage):
    name = "llm"

    def __init__(self, *, backend: Callable[[], Awaitable[llm_module.LlmBackend]]) -> None:
        super().__init__()
        self._backend = backend
        self._stop: tuple[int, threading.Event] | None = None  # the generation running

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, StopGeneration):
            if self._stop is not None and self._stop[0] == frame.turn:
                self._stop[1].set()
        elif isinstance(frame, LlmRequest) and frame.turn is not None:
            await self._generate(frame, frame.turn)
        else:
            await self.push(frame, direction)

    async def _generate(self, request: LlmRequest, turn: int) -> None:
        model = await self._backend()
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()  # this generation's; set on cancel, stop or the end
        self._stop = (turn, stop)

        def generate() -> None:
            try:
                kwargs = {"tools": request.tools} if request.tools else {}
                for delta in model.stream(request.messages, cancel=stop, **kwargs):
                    loop.call_soon_threadsafe(deltas.put_nowait, delta)
            finally:
                loop.call_soon_threadsafe(deltas.put_nowait, _END)

        speech, started = request.speech, self.clock()
        calls: list[ToolCallRequest] = []
        said: list[str] = []
        # The slot is the generating thread's: freed when it returns, not when we stop.
        producer = await thread_in_slot(stage="llm", size=settings.TOM_LLM_MAX_CONCURRENCY,
                                        fn=generate)
        try:
            while (delta := await deltas.get()) is not _END:
                if isinstance(delta, str):  # a plain-text backend (scripted fakes)
                    delta = TextDelta(text=delta)
                if isinstance(delta, ToolCallRequest):
                    calls.append(delta)  # even after StopGeneration: a call is not talk
                elif stop.is_set():
                    continue  # text the thread sent before it saw the flag
                elif isinstance(delta, ToolCallInvalid):
                    logger.warning("session.tool_call_unparsable",
                                   extra={"turn": turn, "error": delta.error[:200]})
                elif isinstance(delta, TextDelta) and delta.text:
                    if "llm_first_token_ms" not in speech.timings:
                        speech.timings["llm_first_token_ms"] = round(
                            (self.clock() - started) * 1000)
                        metrics.LLM_LATENCY.observe(speech.timings["llm_first_token_ms"] / 1000)
                    said.append(delta.text)
                    await self.push(LlmText(speech=speech, turn=turn, text=delta.text))
        finally:
            stop.set()  # cancelled (barge-in) or failed: the thread stops at its next token
            self._stop = None
        await asyncio.shield(producer)
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
