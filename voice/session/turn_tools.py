"""A turn's tool calls: the router's proposals before the LLM, and running the calls
(the router's or the model's) with a filler when they keep the caller waiting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

from tomsite.metrics import error_count
from voice import metrics
from voice import tools as tool_hooks
from voice.llm_deltas import ToolCallRequest
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

MAX_TOOL_CALLS = 3  # per turn; a model asking for more is looping


def tools_capped(*, calls: list[ToolCallRequest], turn: int) -> list[ToolCallRequest]:
    """The model's first ``MAX_TOOL_CALLS`` calls; the rest are refused, counted and
    logged, never dropped without a trace."""
    if len(calls) > MAX_TOOL_CALLS:
        metrics.TOOL_CALLS_REFUSED.labels(reason="over_cap").inc(len(calls) - MAX_TOOL_CALLS)
        logger.warning("session.tool_calls_capped", extra={
            "turn": turn, "tool_calls": len(calls), "cap": MAX_TOOL_CALLS})
    return calls[:MAX_TOOL_CALLS]


async def tools_route(*, hook: tool_hooks.ToolHook | None, text: str, language: str,
                      turn: int) -> list[ToolCallRequest]:
    """The tool calls the router proposes for the caller's words (none without a hook)."""
    if hook is None:
        return []
    try:
        return await hook.route(text=text, language=language)
    except Exception:  # a broken router must not cost the caller the answer
        error_count(component="toolhub")
        logger.exception("session.tool_route_failed", extra={"turn": turn})
        return []


async def tools_run(*, hook: tool_hooks.ToolHook | None, calls: list[ToolCallRequest],
                    language: str, call_id: int | None, speech: AgentSpeech,
                    say_filler: Callable[[], Awaitable[None]] | None,
                    ) -> list[tool_hooks.ToolOutcome]:
    """Run the turn's tool calls; ``say_filler`` if they take longer than the caller
    should wait in silence. Every call and result is kept for the turn's record."""
    if not calls or hook is None:
        return []
    started = time.perf_counter()
    runs = asyncio.gather(*(hook.call(c, language=language, call_id=call_id) for c in calls))
    try:
        outcomes = await asyncio.wait_for(asyncio.shield(runs),
                                          settings.TOM_TOOL_FILLER_AFTER_MS / 1000)
    except TimeoutError:
        if say_filler is not None:
            await say_filler()
        outcomes = await runs
    finally:
        if not runs.done():
            runs.cancel()
    speech.timings.setdefault("tools_ms", 0)
    speech.timings["tools_ms"] += round((time.perf_counter() - started) * 1000)
    speech.tool_calls.extend(o.record for o in outcomes)
    return list(outcomes)
