"""Cut the LLM's token stream into speakable clauses, and lift out tool calls.

The first clause goes to TTS as soon as it is complete (a comma after a few words is
enough), later ones at sentence ends, so the caller hears the answer start while the
rest is generated. Qwen/Hermes-style ``<tool_call>{json}</tool_call>`` blocks are never
spoken; they are parsed (tolerating a missing closing tag at the end of the stream) and
handed to the tool hook. Small models also answer with a bare ``{"name": ..,
"arguments": ..}`` object (or several, or one in a ```json fence) instead of the tags:
a reply that starts with ``{`` is held until the object closes and read the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
FIRST_CLAUSE_MIN_WORDS = 4
_SENTENCE_END = re.compile(r"[.!?…](?=[\s\"')\]]|$)")  # not "3.5" or "z.B.x"
_CLAUSE_END = re.compile("[,;:\u2014\u2013](?=\\s)")  # comma, semicolon, colon, dashes
# Abbreviations whose period ends no sentence (English and German callers).
_ABBREVIATIONS = ("z.B.", "z. B.", "u.a.", "bzw.", "ca.", "Nr.", "Dr.", "Mr.", "Mrs.", "e.g.",
                  "i.e.", "etc.", "St.", "Str.", "inkl.", "evtl.", "ggf.")


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


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Chunker:
    """Feed tokens; take clauses and tool calls out as they complete."""

    buffer: str = ""
    emitted: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_errors: list[str] = field(default_factory=list)
    _raw: str = ""

    def feed(self, token: str) -> list[str]:
        self._raw += token
        self._lift_tool_calls(final=False)
        return self._clauses(final=False)

    def flush(self) -> list[str]:
        self._lift_tool_calls(final=True)
        return self._clauses(final=True)

    def _lift_bare_json(self, *, final: bool) -> bool:
        """Take leading bare JSON tool calls out of ``_raw``; False while one is open."""
        while not self.buffer.strip() and self.emitted == 0:
            stripped = self._raw.lstrip()
            fenced = stripped.startswith("```")
            if fenced:
                stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
            if not stripped.startswith("{"):
                # A fence, or the first backticks of one: wait for what follows.
                return final or not (fenced or self._raw.strip() in {"`", "``"})
            end = _json_end(stripped)
            if end is None:
                if final:
                    self._parse_tool_call(stripped)
                    self._raw = ""
                return final
            self._parse_tool_call(stripped[:end])
            rest = stripped[end:].lstrip()
            self._raw = rest[3:] if rest.startswith("```") else rest
        return True

    def _lift_tool_calls(self, *, final: bool) -> None:
        if not self._lift_bare_json(final=final):
            return
        while True:
            start = self._raw.find(OPEN)
            if start < 0:
                # Hold back a partial "<tool_c" at the end until we know what it is.
                keep = next((i for i in range(len(OPEN) - 1, 0, -1)
                             if self._raw.endswith(OPEN[:i])), 0) if not final else 0
                cut = len(self._raw) - keep
                self.buffer += self._raw[:cut]
                self._raw = self._raw[cut:]
                return
            self.buffer += self._raw[:start]
            end = self._raw.find(CLOSE, start)
            if end < 0 and not final:
                self._raw = self._raw[start:]
                return
            body = self._raw[start + len(OPEN): end if end >= 0 else None]
            self._raw = self._raw[end + len(CLOSE):] if end >= 0 else ""
            self._parse_tool_call(body)

    def _parse_tool_call(self, body: str) -> None:
        try:
            data = json.loads(body.strip())
            name = data["name"]
            arguments = data.get("arguments", data.get("parameters", {}))
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise TypeError("name must be a string and arguments an object")
        except (ValueError, KeyError, TypeError) as exc:
            self.tool_errors.append(f"unparsable tool call: {exc}")
            return
        self.tool_calls.append(ToolCall(name=name, arguments=arguments))

    def _clauses(self, *, final: bool) -> list[str]:
        out = []
        while True:
            cut = self._boundary(final=final)
            if cut is None:
                break
            clause, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:]
            if clause:
                out.append(clause)
                self.emitted += 1
        if final and self.buffer.strip():
            out.append(self.buffer.strip())
            self.emitted += 1
            self.buffer = ""
        return out

    def _boundary(self, *, final: bool) -> int | None:
        for match in _SENTENCE_END.finditer(self.buffer):
            head = self.buffer[: match.end()]
            if match.end() == len(self.buffer) and not final:
                break  # "49." may continue as "49.90": wait for the next token
            if head.endswith(_ABBREVIATIONS):
                continue
            return match.end()
        if self.emitted == 0:
            for match in _CLAUSE_END.finditer(self.buffer):
                if len(self.buffer[: match.end()].split()) >= FIRST_CLAUSE_MIN_WORDS:
                    return match.end()
        return None
