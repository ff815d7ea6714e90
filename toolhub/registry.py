"""Tools the LLM may call: typed functions registered with ``@tool``.

A tool's name, docstring and type hints are its contract. The first paragraph of the
docstring describes the tool to the LLM, an ``Args:`` section describes each
parameter, and the hints become a JSON Schema (OpenAI's "tools" format, which
llama.cpp, Ollama and vLLM accept) and the validator its arguments must pass.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import pydantic

from toolhub import metrics


@dataclass(frozen=True)
class Tool:
    name: str
    kind: str  # the ToolSource kind that provides it
    description: str
    func: Callable[..., Any]
    arguments: type[pydantic.BaseModel]

    def schema(self) -> dict[str, Any]:
        """The tool as the LLM sees it (OpenAI "tools" entry)."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": _clean_schema(self.arguments.model_json_schema())}}


_REGISTRY: dict[str, Tool] = {}


def tool(*, kind: str, name: str | None = None) -> Callable[[Callable[..., Any]],
                                                            Callable[..., Any]]:
    """Register ``func`` as a tool provided by sources of ``kind``.

    Every parameter must be keyword-only and typed; the first one may be ``context``
    (a ``ToolContext``), which the hub passes and the LLM never sees.
    """
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or func.__name__
        if tool_name in _REGISTRY and _REGISTRY[tool_name].func is not func:
            raise ValueError(f"tool {tool_name!r} is registered twice")
        description, params = _parse_docstring(inspect.getdoc(func) or "")
        if not description:
            raise ValueError(f"tool {tool_name!r} needs a docstring: it is its description")
        hints = get_type_hints(func)
        fields: dict[str, Any] = {}
        for param in inspect.signature(func).parameters.values():
            if param.name == "context":
                continue
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TypeError(f"{tool_name}: parameter {param.name!r} must be keyword-only")
            if param.name not in hints:
                raise TypeError(f"{tool_name}: parameter {param.name!r} needs a type hint")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints[param.name], pydantic.Field(
                default, description=params.get(param.name)))
        model = pydantic.create_model(
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"),
            **fields)
        _REGISTRY[tool_name] = Tool(name=tool_name, kind=kind, description=description,
                                    func=func, arguments=model)
        # Every tool's series exist from the start at zero, so dashboards, alerts and the
        # monitoring check see them before the first call.
        for metric in (metrics.TOOL_CALLS, metrics.TOOL_CALLS_FAILED, metrics.TOOL_LATENCY_MS):
            metric.labels(tool=tool_name, source=kind)
        return func
    return register


def unregister(name: str) -> None:
    """Remove a tool (tests that register their own)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Tool | None:
    return _REGISTRY.get(name)


def tools() -> list[Tool]:
    return sorted(_REGISTRY.values(), key=lambda t: t.name)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google-style docstring."""
    parts = re.split(r"\n\s*Args:\s*\n", doc, maxsplit=1)
    description = " ".join(parts[0].split("\n\n")[0].split())
    params: dict[str, str] = {}
    if len(parts) == 2:
        current = None
        for line in parts[1].splitlines():
            match = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?:\s*(.*)", line)
            if match and (current is None or not line.startswith("        ")):
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}"
            elif not line.strip():
                current = None
    return description, params


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles: small models read them as part of the schema's meaning."""
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if isinstance(value, dict):
            value = _clean_schema(value) if key != "properties" else {
                k: _clean_schema(v) for k, v in value.items()}
        cleaned[key] = value
    return cleaned
