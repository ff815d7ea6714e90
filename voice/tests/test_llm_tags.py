"""Tool calls read out of a model's raw text (voice.llm_tags), the way llama.cpp's Qwen
writes them: tags, bare JSON before or after speech, fences, any split into tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from voice import llm, models
from voice.llm_deltas import LlmDelta, TextDelta, ToolCallInvalid, ToolCallRequest
from voice.llm_tags import ToolTagParser

LOOKUP = '{"name": "parts_lookup", "arguments": {"query": "brake pads"}}'
CALL = ToolCallRequest(name="parts_lookup", arguments={"query": "brake pads"})


def _parse(tokens: list[str]) -> list[LlmDelta]:
    """Every delta in order, adjacent text joined (how it was split is not the point)."""
    parser, out = ToolTagParser(), []
    for token in tokens:
        out += parser.feed(token)
    out += parser.flush()
    joined: list[LlmDelta] = []
    for delta in out:
        if joined and isinstance(delta, TextDelta) and isinstance(joined[-1], TextDelta):
            joined[-1] = TextDelta(joined[-1].text + delta.text)
        else:
            joined.append(delta)
    return joined


def _chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize("split", [lambda text: [text], _chars])
def test_tags_are_lifted_and_the_text_around_them_kept(
        split: Callable[[str], list[str]]) -> None:
    text = f"Moment. <tool_call>\n{LOOKUP}\n</tool_call> Bis gleich."
    assert _parse(split(text)) == [TextDelta("Moment. "), CALL, TextDelta(" Bis gleich.")]


def test_an_unclosed_tag_at_the_end_is_still_a_call() -> None:
    tokens = ["<tool_call>", '{"name": "kb_search", "arguments": "{\\"q\\": \\"hours\\"}"}']
    assert _parse(tokens) == [ToolCallRequest(name="kb_search", arguments={"q": "hours"})]


def test_invalid_json_in_tags_is_an_invalid_call_never_text() -> None:
    out = _parse(["<tool_call>{not json</tool_call>", "Sorry."])
    assert isinstance(out[0], ToolCallInvalid) and "unparsable" in out[0].error
    assert out[1:] == [TextDelta("Sorry.")]
    missing = _parse(['<tool_call>{"arguments": {}}</tool_call>'])
    assert len(missing) == 1 and isinstance(missing[0], ToolCallInvalid)


def test_bare_json_at_the_start() -> None:
    assert _parse([LOOKUP]) == [CALL]
    assert _parse(["  ", LOOKUP, "\n"]) == [TextDelta("  "), CALL, TextDelta("\n")]


def test_bare_json_after_spoken_text_is_a_call_not_speech() -> None:
    # The bug: the object followed a spoken sentence, so it was read out loud.
    out = _parse(["Let me check.", " ", LOOKUP])
    assert out == [TextDelta("Let me check. "), CALL]


def test_several_bare_calls_and_a_fence() -> None:
    two = LOOKUP + '{"name": "kb_search", "arguments": {"q": "hours"}}'
    assert _parse([two]) == [CALL, ToolCallRequest(name="kb_search", arguments={"q": "hours"})]
    fenced = f"```json\n{LOOKUP}\n```"
    assert _parse([fenced]) == [CALL]
    assert _parse(_chars(f"Gern. {fenced} Sonst noch etwas?")) == [
        TextDelta("Gern. "), CALL, TextDelta(" Sonst noch etwas?")]


def test_a_call_split_into_tiny_deltas_streams_the_text_before_it_at_once() -> None:
    parser = ToolTagParser()
    released = "".join(d.text for d in parser.feed("Let me check. ") if isinstance(d, TextDelta))
    assert released == "Let me check. "  # nothing held: no call has started yet
    out: list[LlmDelta] = []
    for char in LOOKUP[:-1]:
        out += parser.feed(char)
    assert out == []  # an open object that may be a call: held, not spoken
    assert parser.feed("}") == [CALL]
    assert parser.flush() == []


def test_only_a_partial_tag_is_held_back() -> None:
    parser = ToolTagParser()
    assert parser.feed("Sure <tool_c") == [TextDelta("Sure ")]
    assert parser.feed("all>" + LOOKUP) == []  # open tag: the call may go on
    assert parser.feed("</tool_call>") == [CALL]
    assert _parse(["Less", " than", " <", " five", "."]) == [TextDelta("Less than < five.")]


@pytest.mark.parametrize("text", [
    "Say {ok} now.",
    'The code is {"a": 1} exactly.',
    "Braces { and } apart.",
    "No{space} here.",
    "```python\nprint()\n```",
])
def test_text_that_only_contains_braces_is_spoken(text: str) -> None:
    assert _parse([text]) == [TextDelta(text)]
    assert _parse(_chars(text)) == [TextDelta(text)]


def test_braces_without_json_are_released_before_they_close() -> None:
    parser = ToolTagParser()
    assert parser.feed("Say {o") == [TextDelta("Say {o")]  # "o": no JSON object starts so


def test_a_broken_bare_call_is_invalid_and_an_unclosed_object_at_the_end_too() -> None:
    out = _parse(['Moment. {"name": "parts_lookup", "arguments": {query}}'])
    assert out[0] == TextDelta("Moment. ") and isinstance(out[1], ToolCallInvalid)
    out = _parse(['{"name": "parts_lookup", "arguments": {"query": "br'])
    assert len(out) == 1 and isinstance(out[0], ToolCallInvalid)
    assert _parse(['Es ist {"a": 1']) == [TextDelta('Es ist {"a": 1')]


PARTS_TOOL = {"type": "function", "function": {
    "name": "parts_lookup", "description": "Find car parts in the shop's catalog.",
    "parameters": {"type": "object", "required": ["part"], "properties": {
        "vehicle": {"type": "string"}, "part": {"type": "string"}}}}}


@pytest.mark.models
def test_the_real_llama_cpp_model_yields_its_tool_call_as_a_request() -> None:
    models.assemble("qwen2.5-0.5b")
    backend = llm.LlamaCppLlm(str(models.llm_model_path()))
    messages = [{"role": "system", "content": llm.system_prompt(language="en")},
                {"role": "user", "content": "Do you have brake pads for a VW Golf 7?"}]
    out = list(backend.stream(messages, cancel=threading.Event(), tools=[PARTS_TOOL]))
    calls = [d for d in out if isinstance(d, ToolCallRequest)]
    assert [c.name for c in calls] == ["parts_lookup"], out
    assert "brake" in str(calls[0].arguments).lower()
    spoken = "".join(d.text for d in out if isinstance(d, TextDelta))
    assert "{" not in spoken and "tool_call" not in spoken, spoken
