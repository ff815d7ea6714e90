"""The session's tool hook: what the voice loop asks ToolHub, and how answers come back.

``ToolhubHook`` is the production hook; tests pass their own object with the same three
coroutines. Nothing here blocks the event loop: routing and tool runs happen in
threads, and every result comes back as a ``ToolOutcome`` (failures included), so a
broken tool costs the caller a sentence, never the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from voice.llm_deltas import ToolCallRequest

# Said while a tool runs longer than TOM_TOOL_FILLER_AFTER_MS.
FILLERS = {"de": "Einen Moment, ich schaue nach.", "en": "One moment, let me check."}
# How tool results are put before the LLM: appended to the caller's words. A 0.5B model
# restated facts placed there and parroted JSON from tool messages (see toolhub.router).
FACTS_LABEL = {"de": "Daten aus unserem System", "en": "Data from our system"}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    name: str
    ok: bool
    text: str  # what the LLM reads
    record: dict[str, Any]  # what is stored with the turn


class ToolHook(Protocol):
    async def prepare(self) -> None: ...

    async def route(self, *, text: str, language: str) -> list[ToolCallRequest]: ...

    async def schemas(self) -> list[dict[str, Any]]: ...

    async def vocabulary(self, *, language: str) -> Any: ...

    async def call(self, tool_call: ToolCallRequest, *, language: str,
                   call_id: int | None) -> ToolOutcome: ...


class ToolhubHook:
    """Routes and runs tools through ``toolhub`` (router, registry, metrics, timeouts)."""

    async def prepare(self) -> None:
        """Load the embedding model and Chroma client before the first question."""
        from toolhub.services import toolhub_warm_up

        await database_sync_to_async(toolhub_warm_up)()

    async def route(self, *, text: str, language: str) -> list[ToolCallRequest]:
        if settings.TOM_TOOL_ROUTING == "llm":
            return []
        from toolhub.router import tool_route

        proposals = await database_sync_to_async(tool_route)(text=text, language=language)
        return [ToolCallRequest(name=name, arguments=args) for name, args in proposals]

    async def schemas(self) -> list[dict[str, Any]]:
        if settings.TOM_TOOL_ROUTING == "router":
            return []
        from toolhub.services import tools_available

        return await database_sync_to_async(tools_available)()

    async def vocabulary(self, *, language: str) -> Any:
        """The catalog's words for hotwords and correction (toolhub.entities.Vocabulary)."""
        from toolhub.catalog import catalog_vocabulary

        return await database_sync_to_async(catalog_vocabulary)(language=language)

    async def call(self, tool_call: ToolCallRequest, *, language: str,
                   call_id: int | None) -> ToolOutcome:
        from toolhub.services import ToolContext, tool_acall

        result = await tool_acall(name=tool_call.name, arguments=tool_call.arguments,
                                  context=ToolContext(language=language, call_id=call_id))
        return ToolOutcome(name=result.name, ok=result.ok, text=result.for_llm(),
                           record=result.as_record())


def default_hook() -> ToolHook | None:
    return ToolhubHook() if settings.TOM_FEATURE_TOOLS else None


def with_facts(text: str, outcomes: list[ToolOutcome], *, language: str) -> str:
    """The caller's words followed by what the tools found, for the LLM's prompt."""
    if not outcomes:
        return text
    label = FACTS_LABEL["de" if language.startswith("de") else "en"]
    facts = " ".join(f"{o.name}: {o.text}" if o.ok else f"{o.name} failed: {o.text}"
                     for o in outcomes)
    return f"{text}\n\n({label}: {facts})"


def filler(language: str) -> str:
    return FILLERS["de" if language.startswith("de") else "en"]
