"""Calling tools: the one way the voice session (and anything else) runs a tool.

A call never raises into the caller's conversation. Unknown tools, bad arguments,
timeouts and errors come back as a ``ToolResult`` with ``ok=False`` and an error text
written for the LLM to read and recover from ("missing argument vehicle"), and are
counted in ``tom_tool_calls_failed_total``.

Tools are synchronous (they query the ORM or Chroma) and run in a small thread pool of
their own, so a slow one cannot hold the event loop or exhaust the default executor.
A timed-out tool's thread finishes in the background; its result is discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pydantic
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from tomsite.metrics import error_count
from toolhub import metrics, registry
from toolhub.models import ToolSource

logger = logging.getLogger(__name__)

RESULT_MAX_CHARS = 2000  # what goes back into a 2k-token context must stay small
_SCHEMA_WORDS = frozenset({"required", "type", "properties", "description",
                           "additionalProperties"})
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="toolhub")


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool knows about the call it serves (never a phone number)."""

    language: str = "en"
    call_id: int | None = None


@dataclass(slots=True)
class ToolResult:
    name: str
    arguments: dict[str, Any]
    ok: bool
    content: Any = None
    error: str = ""
    ms: int = 0
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def for_llm(self) -> str:
        """What the LLM reads next: the tool's summary where it wrote one, else compact
        JSON, capped in size."""
        if self.ok and isinstance(self.content, dict) and self.content.get("summary"):
            return str(self.content["summary"])[:RESULT_MAX_CHARS]
        payload = {"result": self.content} if self.ok else {"error": self.error}
        text = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
        return text if len(text) <= RESULT_MAX_CHARS else text[:RESULT_MAX_CHARS - 3] + "..."

    def as_record(self) -> dict[str, Any]:
        """What is stored with the turn."""
        return {"tool": self.name, "arguments": self.arguments, "ok": self.ok,
                "error": self.error, "ms": self.ms, "source": self.source,
                "result": self.for_llm()}


def enabled_kinds() -> set[str]:
    return set(ToolSource.objects.filter(enabled=True).values_list("kind", flat=True))


def tools_available(*, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI-format schemas of the tools whose source is enabled now."""
    from toolhub import tools as _tools  # noqa: F401  (registers the built-in tools)

    kinds = enabled_kinds() if kinds is None else kinds
    return [t.schema() for t in registry.tools() if t.kind in kinds]


def _prepare(name: str, arguments: Any) -> tuple[registry.Tool | None, dict[str, Any], str]:
    from toolhub import tools as _tools  # noqa: F401

    tool = registry.get(name)
    args = arguments if isinstance(arguments, dict) else {}
    if tool is None:
        known = ", ".join(t.name for t in registry.tools())
        return None, args, f"unknown tool {name!r}; available tools: {known}"
    if not isinstance(arguments, dict):
        return tool, args, "arguments must be a JSON object"
    # Small models echo JSON-Schema words into the arguments ({"query": .., "required":
    # ["query"]}): those are dropped; any other unknown argument is still an error.
    fields = tool.arguments.model_fields
    arguments = {k: v for k, v in arguments.items() if k in fields or k not in _SCHEMA_WORDS}
    args = arguments
    if not ToolSource.objects.filter(kind=tool.kind, enabled=True).exists():
        return tool, args, f"tool {name!r} is switched off"
    try:
        validated = tool.arguments.model_validate(arguments)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in exc.errors(include_url=False))
        return tool, args, f"invalid arguments for {name}: {problems}"
    return tool, validated.model_dump(), ""


def _run(tool: registry.Tool, args: dict[str, Any], context: ToolContext) -> Any:
    close_old_connections()
    try:
        return tool.func(context=context, **args)
    finally:
        close_old_connections()


def _finish(result: ToolResult, started: float) -> ToolResult:
    result.ms = round((time.perf_counter() - started) * 1000)
    labels = {"tool": result.name if result.source else "unknown",
              "source": result.source or "none"}
    metrics.TOOL_CALLS.labels(**labels).inc()
    metrics.TOOL_LATENCY_MS.labels(**labels).observe(result.ms)
    if not result.ok:
        metrics.TOOL_CALLS_FAILED.labels(**labels).inc()
        logger.warning("toolhub.call_failed", extra={**labels, "ms": result.ms,
                                                     "error": result.error[:200]})
    return result


def _submit(name: str, arguments: Any, context: ToolContext,
            started: float) -> tuple[ToolResult, Future[Any] | None]:
    tool, args, error = _prepare(name, arguments)
    result = ToolResult(name=name, arguments=args, ok=False, error=error,
                        source=tool.kind if tool else "")
    if error or tool is None:
        return result, None
    return result, _executor.submit(_run, tool, args, context)


def _settle(result: ToolResult, outcome: Any, exc: BaseException | None,
            timeout: float) -> None:
    if isinstance(exc, TimeoutError | FutureTimeout):
        result.error = f"{result.name} took longer than {timeout:g} s; try again later"
    elif exc is not None:
        error_count(component="toolhub")
        logger.error("toolhub.tool_crashed", exc_info=exc, extra={"tool": result.name})
        result.error = f"{result.name} failed: {type(exc).__name__}: {exc}"[:300]
    else:
        result.ok, result.content = True, outcome


def tool_call(*, name: str, arguments: Any, context: ToolContext | None = None,
              timeout: float | None = None) -> ToolResult:
    """Run tool ``name`` with ``arguments`` (as the LLM gave them) and wait for it."""
    started, timeout = time.perf_counter(), timeout or settings.TOM_TOOL_TIMEOUT_S
    result, future = _submit(name, arguments, context or ToolContext(), started)
    if future is not None:
        try:
            _settle(result, future.result(timeout=timeout), None, timeout)
        except Exception as exc:
            _settle(result, None, exc, timeout)
    return _finish(result, started)


async def tool_acall(*, name: str, arguments: Any, context: ToolContext | None = None,
                     timeout: float | None = None) -> ToolResult:  # noqa: ASYNC109
    """``tool_call`` for the event loop: validation and the tool run off the loop."""
    started, timeout = time.perf_counter(), timeout or settings.TOM_TOOL_TIMEOUT_S
    # database_sync_to_async: the lookup runs in a worker thread whose connection must be
    # closed after it, as channels does for consumers.
    result, future = await database_sync_to_async(_submit)(name, arguments,
                                                           context or ToolContext(), started)
    if future is not None:
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            _settle(result, outcome, None, timeout)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            _settle(result, None, exc, timeout)
    return _finish(result, started)


def tool_source_check(*, source: ToolSource) -> ToolSource:
    """Run the source's health check and store what it found."""
    from toolhub import health

    started = time.perf_counter()
    try:
        detail = health.check(source)
        source.health, source.last_error = ToolSource.Health.OK, ""
    except Exception as exc:
        detail = {}
        source.health = ToolSource.Health.FAILING
        source.last_error = f"{type(exc).__name__}: {exc}"[:1000]
    detail["ms"] = round((time.perf_counter() - started) * 1000)
    source.last_detail, source.last_checked_at = detail, timezone.now()
    source.save(update_fields=["health", "last_error", "last_detail", "last_checked_at"])
    logger.info("toolhub.source_checked", extra={"source_id": source.pk,
                                                 "health": source.health})
    return source


def toolhub_warm_up() -> None:
    """Load the embedding model and open Chroma, so the first caller does not wait for
    it (~0.7 s here). A missing model is logged, not raised: the parts tool still works."""
    from toolhub import vectorstore

    if not ToolSource.objects.filter(enabled=True).exclude(
            kind=ToolSource.Kind.PARTS).exists():
        return
    try:
        vectorstore.collection(ToolSource.Kind.KNOWLEDGE_BASE).query(query_texts=["warm up"],
                                                                     n_results=1)
    except Exception:
        logger.exception("toolhub.warm_up_failed")
