"""The LLM stage of a turn: stream one reply, cut it into clauses, speak each as soon
as it is complete, and lift out the tool calls the model makes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from voice import llm as llm_module
from voice import metrics
from voice.chunker import Chunker, ToolCall
from voice.session.events import AgentSpeech
from voice.session.slots import thread_in_slot

logger = logging.getLogger(__name__)

Say = Callable[[str, list[str]], Awaitable[None]]  # (clause, clauses spoken so far)


def _said_enough(spoken: list[str], max_sentences: int) -> bool:
    sentences = sum(1 for clause in spoken if clause.rstrip().endswith((".", "!", "?")))
    return sentences >= max_sentences


async def reply_speak(*, model: llm_module.LlmBackend, messages: list[dict[str, Any]],
                      schemas: list[dict[str, Any]], cancel: threading.Event,
                      speech: AgentSpeech, max_sentences: int, say: Say) -> list[ToolCall]:
    """Stream one LLM reply into ``say``; return the tool calls it made as well.

    Generation runs in a worker thread holding an LLM slot until it returns; ``cancel``
    (the turn's) and this reply's own stop flag end it at its next token.
    """
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()  # this generation only; ``cancel`` is the whole turn's

    def generate() -> None:
        try:
            kwargs = {"tools": schemas} if schemas else {}
            for token in model.stream(messages, cancel=stop, **kwargs):
                loop.call_soon_threadsafe(tokens.put_nowait, token)
        finally:
            loop.call_soon_threadsafe(tokens.put_nowait, None)

    chunker, started = Chunker(), time.perf_counter()
    spoken: list[str] = []
    # The slot is the generating thread's: freed when it returns, not when we stop.
    producer = await thread_in_slot(stage="llm", size=settings.TOM_LLM_MAX_CONCURRENCY,
                                    fn=generate)
    try:
        enough = False
        while (token := await tokens.get()) is not None:
            if cancel.is_set():
                break
            if "llm_first_token_ms" not in speech.timings:
                speech.timings["llm_first_token_ms"] = round(
                    (time.perf_counter() - started) * 1000)
                metrics.LLM_LATENCY.observe(speech.timings["llm_first_token_ms"] / 1000)
            clauses = chunker.feed(token)
            if enough and (clauses or chunker.buffer.strip()):
                break  # said enough and talking on: a phone answer stays short
            for clause in [] if enough else clauses:
                await say(clause, spoken)
            # At the variant's maximum, read on only while nothing but a tool call
            # follows ("Let me check. <tool_call>..."), so that call is not lost.
            enough = _said_enough(spoken, max_sentences)
        else:
            clauses = chunker.flush()  # also reads a tool call left unclosed
            for clause in [] if enough else clauses:
                await say(clause, spoken)
    except BaseException:
        stop.set()  # cancelled (barge-in) or failed: do not wait for the thread here
        raise
    stop.set()
    await asyncio.shield(producer)
    for error in chunker.tool_errors:
        logger.warning("session.tool_call_unparsable", extra={"turn": speech.turn,
                                                              "error": error[:200]})
    if spoken and chunker.tool_calls:
        # "Let me check. <tool_call>…": the clause was said and stays said; the call runs
        # and its result leads to the rest of the answer (as Pipecat and LiveKit run a
        # function call that follows text in the same response).
        logger.info("session.tool_call_after_speech", extra={
            "turn": speech.turn, "tool_calls": len(chunker.tool_calls)})
    return chunker.tool_calls
