"""What an LLM backend's ``stream`` yields: spoken text and tool calls, already typed.

Providers with structured tool calls (OpenAI-compatible servers, Ollama) build
``ToolCallRequest`` straight from them; only a backend whose model writes its calls as
text (llama.cpp in-process) reads them out of the text (voice.llm_tags). Everything
downstream sees the same three kinds, whichever backend answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply meant to be spoken."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A tool the model (or the router) asks to run, with its parsed arguments."""

    name: str
    arguments: dict[str, Any]
    id: str = ""  # the provider's call id, where it gives one


@dataclass(frozen=True, slots=True)
class ToolCallInvalid:
    """A tool call the model made that could not be read; logged, never spoken."""

    error: str


LlmDelta: TypeAlias = TextDelta | ToolCallRequest | ToolCallInvalid


def tool_call_request(*, name: Any, arguments: Any,
                      call_id: str = "") -> ToolCallRequest | ToolCallInvalid:
    """A request from a call's name and arguments (an object or a JSON string of one).

    Small models and some servers send the arguments JSON-encoded twice; both forms are
    read. Anything else is a ``ToolCallInvalid`` saying why, without the arguments.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return ToolCallInvalid(error=f"tool call arguments are not JSON: {exc}")
    if not isinstance(name, str) or not name:
        return ToolCallInvalid(error="tool call without a name")
    if not isinstance(arguments, dict):
        return ToolCallInvalid(error="tool call arguments are not an object")
    return ToolCallRequest(name=name, arguments=arguments, id=call_id)
