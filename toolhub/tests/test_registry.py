"""The registry's contract: schemas from type hints, validation, timeouts, failures, metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

import pytest
from prometheus_client import REGISTRY

from toolhub import registry
from toolhub.models import ToolSource
from toolhub.services import ToolContext, tool_acall, tool_call, tools_available

KIND = "test-kind"


def _sample(name: str, tool: str) -> float:
    return REGISTRY.get_sample_value(name, {"tool": tool, "source": KIND}) or 0.0


@pytest.fixture
def test_tools(db: None) -> Iterator[None]:
    ToolSource.objects.create(name="test source", kind=KIND)

    @registry.tool(kind=KIND)
    def stock_check(*, context: ToolContext, part_number: str, quantity: int = 1,
                    unit: Literal["piece", "set"] = "piece") -> dict[str, object]:
        """Check whether a part is in stock.

        Args:
            part_number: The shop's part number, e.g. "TP-10098".
            quantity: How many the caller needs.
            unit: Pieces or axle sets.
        """
        return {"part_number": part_number, "quantity": quantity, "unit": unit,
                "language": context.language}

    @registry.tool(kind=KIND)
    def slow_tool(*, context: ToolContext, seconds: float) -> str:
        """Sleep, then answer.

        Args:
            seconds: How long to take.
        """
        time.sleep(seconds)
        return "done"

    @registry.tool(kind=KIND)
    def broken_tool(*, context: ToolContext) -> str:
        """Always fails."""
        raise ConnectionError("parts API unreachable")

    yield
    for name in ("stock_check", "slow_tool", "broken_tool"):
        registry.unregister(name)


def test_schema_comes_from_name_docstring_and_hints(test_tools: None) -> None:
    schema = registry.get("stock_check").schema()  # type: ignore[union-attr]
    assert schema == {"type": "function", "function": {
        "name": "stock_check",
        "description": "Check whether a part is in stock.",
        "parameters": {
            "type": "object", "additionalProperties": False, "required": ["part_number"],
            "properties": {
                "part_number": {"type": "string",
                                "description": 'The shop\'s part number, e.g. "TP-10098".'},
                "quantity": {"type": "integer", "default": 1,
                             "description": "How many the caller needs."},
                "unit": {"type": "string", "enum": ["piece", "set"], "default": "piece",
                         "description": "Pieces or axle sets."},
            }}}}


def test_registration_refuses_untyped_or_positional_parameters() -> None:
    with pytest.raises(TypeError, match="keyword-only"):
        @registry.tool(kind=KIND, name="positional")
        def positional(context: ToolContext, query: str) -> str:
            """Doc."""
            return query
    with pytest.raises(ValueError, match="docstring"):
        @registry.tool(kind=KIND, name="undocumented")
        def undocumented(*, context: ToolContext) -> str:
            return ""
    assert registry.get("positional") is None and registry.get("undocumented") is None


def test_a_valid_call_runs_with_coerced_defaults(test_tools: None) -> None:
    result = tool_call(name="stock_check", arguments={"part_number": "TP-1"},
                       context=ToolContext(language="de"))
    assert result.ok and result.content == {"part_number": "TP-1", "quantity": 1,
                                            "unit": "piece", "language": "de"}
    assert result.source == KIND and result.ms >= 0


@pytest.mark.parametrize(("arguments", "error"), [
    ({}, "part_number: Field required"),
    ({"part_number": "TP-1", "quantity": "many"}, "quantity: Input should be a valid integer"),
    ({"part_number": "TP-1", "unit": "litre"}, "unit: Input should be 'piece' or 'set'"),
    ({"part_number": "TP-1", "colour": "red"}, "colour: Extra inputs are not permitted"),
    (["TP-1"], "arguments must be a JSON object"),
])
def test_bad_arguments_get_a_tool_error_the_llm_can_read(
        test_tools: None, arguments: object, error: str) -> None:
    failed_before = _sample("tom_tool_calls_failed_total", "stock_check")
    result = tool_call(name="stock_check", arguments=arguments)
    assert not result.ok and error in result.error
    assert result.for_llm() == '{"error":"' + result.error.replace('"', '\\"') + '"}'
    assert _sample("tom_tool_calls_failed_total", "stock_check") == failed_before + 1


def test_schema_words_a_small_model_echoes_are_dropped(test_tools: None) -> None:
    result = tool_call(name="stock_check",
                       arguments={"part_number": "TP-1", "required": ["part_number"]})
    assert result.ok, result.error


def test_unknown_tool_names_the_available_ones(test_tools: None) -> None:
    result = tool_call(name="weather", arguments={})
    assert not result.ok and "unknown tool 'weather'" in result.error
    assert "stock_check" in result.error


def test_timeout_is_a_tool_error_and_counted(test_tools: None) -> None:
    calls_before = _sample("tom_tool_calls_total", "slow_tool")
    failed_before = _sample("tom_tool_calls_failed_total", "slow_tool")
    count_before = _sample("tom_tool_latency_ms_count", "slow_tool")
    started = time.perf_counter()
    result = tool_call(name="slow_tool", arguments={"seconds": 2}, timeout=0.2)
    assert time.perf_counter() - started < 1.0  # the caller is not kept waiting
    assert not result.ok and "took longer than 0.2 s" in result.error
    assert _sample("tom_tool_calls_total", "slow_tool") == calls_before + 1
    assert _sample("tom_tool_calls_failed_total", "slow_tool") == failed_before + 1
    assert _sample("tom_tool_latency_ms_count", "slow_tool") == count_before + 1
    assert _sample("tom_tool_latency_ms_sum", "slow_tool") > 0


def test_an_exception_in_a_tool_is_a_tool_error(test_tools: None) -> None:
    failed_before = _sample("tom_tool_calls_failed_total", "broken_tool")
    result = tool_call(name="broken_tool", arguments={})
    assert not result.ok
    assert result.error == "broken_tool failed: ConnectionError: parts API unreachable"
    assert _sample("tom_tool_calls_failed_total", "broken_tool") == failed_before + 1


@pytest.mark.django_db(transaction=True)
async def test_async_calls_time_out_without_blocking_the_loop(test_tools: None) -> None:
    result = await tool_acall(name="slow_tool", arguments={"seconds": 1.5}, timeout=0.2)
    assert not result.ok and "took longer" in result.error
    ok = await tool_acall(name="slow_tool", arguments={"seconds": 0})
    assert ok.ok and ok.content == "done"


def test_disabling_a_source_removes_its_tools_on_the_next_turn(test_tools: None) -> None:
    names = {t["function"]["name"] for t in tools_available()}
    assert {"stock_check", "slow_tool"} <= names
    ToolSource.objects.filter(kind=KIND).update(enabled=False)
    names = {t["function"]["name"] for t in tools_available()}
    assert "stock_check" not in names
    result = tool_call(name="stock_check", arguments={"part_number": "TP-1"})
    assert not result.ok and "switched off" in result.error
