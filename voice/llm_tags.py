"""Read tool calls out of a model's raw text stream, for backends whose model writes them
as text (llama.cpp in-process with a GGUF chat template).

Qwen and Hermes-style models wrap a call in ``<tool_call>{json}</tool_call>`` (the
closing tag is sometimes missing at the end of the stream). Small models also answer
with a bare ``{"name": .., "arguments": ..}`` object instead, or several, or one in a
```` ```json ```` fence, at the start of the reply or after a spoken sentence ("Let me
check. {...}"). Text is released as soon as it cannot be part of a call, so speech still
streams: only a partial ``<tool_c`` suffix, a partial fence, or an open JSON object that
starts where a call could start is held back until it is known what it is.
"""

from __future__ import annotations

import json
import re

from voice.llm_deltas import LlmDelta, TextDelta, ToolCallInvalid, tool_call_request

OPEN, CLOSE, FENCE = "<tool_call>", "</tool_call>", "```"
# A bare object may start a call only here: at the start, after whitespace, after a
# sentence or clause end, or right after another call ("}{", "</tool_call>{").
_BOUNDARY = frozenset(".!?:;,>}")
# What a JSON object's first characters look like ("{" alone is still undecided).
_OBJECT_START = re.compile(r'\{\s*(?:["}]|$)')
# A broken object that meant to be a call: reported as invalid, never spoken.
_CALL_START = re.compile(r'\{\s*"name"\s*:')
_FENCE_HEAD = re.compile(r"```[A-Za-z]*\s*")


def _json_end(text: str) -> int | None:
    """Index just past the JSON object ``text`` starts with; None while it is open."""
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _tagged_call(body: str) -> LlmDelta:
    """The call inside ``<tool_call>`` tags: whatever is there was meant as a call."""
    try:
        data = json.loads(body.strip())
    except ValueError as exc:
        return ToolCallInvalid(error=f"unparsable tool call: {exc}")
    if not isinstance(data, dict):
        return ToolCallInvalid(error="unparsable tool call: not an object")
    return tool_call_request(name=data.get("name"),
                             arguments=data.get("arguments", data.get("parameters", {})))


def _bare_call(text: str) -> LlmDelta | None:
    """A bare JSON object read as a call; None when it is no call (then it is text)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return (ToolCallInvalid(error=f"unparsable tool call: {exc}")
                if _CALL_START.match(text) else None)
    # {"name": "get_hours"} alone is a call without arguments; {"name": .., "age": ..} is
    # some other JSON the model chose to say.
    if not isinstance(data, dict) or "name" not in data or not (
            "arguments" in data or "parameters" in data or len(data) == 1):
        return None
    return tool_call_request(name=data["name"],
                             arguments=data.get("arguments", data.get("parameters")))


def _held_suffix(text: str, *, boundary: bool) -> int:
    """How many trailing characters may begin a tag (or, at a boundary, a fence)."""
    for size in range(min(len(text), len(CLOSE) - 1), 0, -1):
        tail = text[-size:]
        if OPEN.startswith(tail) or CLOSE.startswith(tail):
            return size
    if text.endswith("`"):
        ticks = len(text) - len(text.rstrip("`"))
        if ticks < len(FENCE) and boundary:
            return ticks
    return 0


class ToolTagParser:
    """Feed raw model text; get ``TextDelta``, ``ToolCallRequest`` and ``ToolCallInvalid``
    in stream order. ``flush`` at the end of the stream reads what is still held."""

    def __init__(self) -> None:
        self._raw = ""  # received, not yet released or read as a call
        self._prev = ""  # the last character consumed ("" at the start of the stream)
        self._fence_open = False  # a fenced call was read: drop the closing fence
        self._out: list[LlmDelta] = []

    def feed(self, text: str) -> list[LlmDelta]:
        self._raw += text
        return self._drain(final=False)

    def flush(self) -> list[LlmDelta]:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[LlmDelta]:
        while self._raw and self._step(final=final):
            pass
        out, self._out = self._out, []
        return out

    def _at_boundary(self, index: int) -> bool:
        prev = self._raw[index - 1] if index else self._prev
        return not prev or prev.isspace() or prev in _BOUNDARY

    def _text(self, size: int) -> None:
        text, self._raw = self._raw[:size], self._raw[size:]
        if not text:
            return
        self._prev = text[-1]
        if self._out and isinstance(self._out[-1], TextDelta):
            self._out[-1] = TextDelta(self._out[-1].text + text)
        else:
            self._out.append(TextDelta(text))

    def _call(self, delta: LlmDelta, size: int) -> None:
        self._prev, self._raw = "}", self._raw[size:]
        self._out.append(delta)

    def _step(self, *, final: bool) -> bool:
        """Consume what can be decided at the front of ``_raw``; False to wait for more."""
        if self._fence_open:
            rest = self._raw.lstrip()
            if not final and len(rest) < len(FENCE) and FENCE.startswith(rest):
                return False  # whitespace or part of the closing fence so far
            self._fence_open = False
            if rest.startswith(FENCE):
                self._raw = rest[len(FENCE):]
                return True
        for index in range(len(self._raw)):
            char = self._raw[index]
            if char not in "<{`":
                continue
            if self._raw.startswith((OPEN, CLOSE), index) or (
                    char != "<" and self._at_boundary(index)
                    and (char == "{" or self._raw.startswith(FENCE, index))):
                if index:
                    self._text(index)
                    return True
                return self._candidate(final=final)
        keep = 0 if final else _held_suffix(
            self._raw, boundary=self._at_boundary(len(self._raw.rstrip("`"))))
        self._text(len(self._raw) - keep)
        return False

    def _candidate(self, *, final: bool) -> bool:
        """``_raw`` starts with a tag, a fence or a ``{``: read it, or wait for more."""
        raw = self._raw
        if raw.startswith(CLOSE):  # a stray closing tag after a bare call: never spoken
            self._raw, self._prev = raw[len(CLOSE):], ">"
            return True
        if raw.startswith(OPEN):
            end = raw.find(CLOSE)
            if end < 0 and not final:
                return False
            body = raw[len(OPEN): end if end >= 0 else None]
            self._call(_tagged_call(body), len(raw) if end < 0 else end + len(CLOSE))
            return True
        if raw.startswith(FENCE):
            head = _FENCE_HEAD.match(raw)
            start = head.end() if head else len(FENCE)
            if start == len(raw) and not final:
                return False  # "```json" and nothing after it yet
            if raw[start:start + 1] != "{":
                self._text(len(FENCE))  # a fence around no call is just text
                return True
            return self._object(start, final=final, fenced=True)
        return self._object(0, final=final, fenced=False)

    def _object(self, start: int, *, final: bool, fenced: bool) -> bool:
        """A JSON object at ``start``: lift it as a call, or release it as text."""
        body = self._raw[start:]
        if not _OBJECT_START.match(body):
            self._text(start + 1)  # "{ok}": braces around words, no JSON
            return True
        end = _json_end(body)
        if end is None and not final:
            return False
        if end is None:  # the stream ended inside the object
            if _CALL_START.match(body):
                self._call(ToolCallInvalid(error="unclosed tool call"), len(self._raw))
            else:
                self._text(len(self._raw))
            return True
        delta = _bare_call(body[:end])
        if delta is None:
            self._text(start + end)
            return True
        self._call(delta, start + end)
        self._fence_open = fenced
        return True
