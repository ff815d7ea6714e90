"""The first text frame of a fork connection: who is calling, at what rate, in what form.

mod_audio_fork and mod_audio_stream send the dialplan's metadata argument verbatim as
the first text frame, only if it is non-empty, and build no JSON of their own
(drachtio ``lws_glue.cpp eventCallback()`` CONNECT_SUCCESS; amigniter
``audio_streamer_glue.cpp send_initial_metadata()``). jambonz's ``listen`` verb puts
``sampleRate``, ``mixType`` and call details (``callSid``, ``from``, ``to``,
``direction``) there. drachtio glues pending texts into one frame
(``audio_pipe.cpp bufferForSending()``), so ``{...}{...}`` is split here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from voice.dsp.pcm import ENCODINGS

SAMPLE_RATES = (8000, 16000, 24000)
MIX_TYPES = {"mono": 1, "mixed": 1, "stereo": 2}
# Nothing FreeSWITCH or jambonz sends nests deeper than a few levels; Python's json
# recurses per level and fails with RecursionError (not a ValueError) near 1,000.
MAX_JSON_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_KNOWN = {"uuid", "callSid", "call_sid", "caller", "from", "callee", "to", "sampleRate",
          "sample_rate", "mixType", "mix_type", "direction", "language", "encoding"}


class MetadataError(ValueError):
    """The first frame is not usable metadata; the message says why (no caller data)."""


class JsonDepthError(MetadataError):
    """A text frame nests JSON deeper than ``MAX_JSON_DEPTH``: hostile, not a module's."""


class JsonItemsError(MetadataError):
    """A text frame holds more JSON values than a module ever glues into one."""


@dataclass(frozen=True)
class CallStart:
    uuid: str
    sample_rate: int
    channels: int
    mix_type: str
    encoding: str
    direction: str = "inbound"
    language: str = ""
    caller: str = field(default="", repr=False)  # raw: hashed by calls.services, then dropped
    callee: str = field(default="", repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def json_depth_check(text: str, *, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` before the parser recurses into it.

    Brackets inside strings do not count; the scan stops at the first level too deep.
    """
    if text.count("{") + text.count("[") <= limit:
        return  # fewer openers than the limit cannot nest deeper (the common case)
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            raise JsonDepthError(f"JSON nested deeper than {limit} levels")


def split_json_texts(text: str, *, max_items: int | None = None) -> list[Any]:
    """Parse one text frame holding one or more JSON values back to back.

    Raises ``ValueError`` for invalid JSON, ``JsonDepthError`` for nesting deeper than
    ``MAX_JSON_DEPTH`` and ``JsonItemsError`` for more than ``max_items`` values (checked
    as they are parsed, so a frame of thousands stops at the first one too many).
    """
    json_depth_check(text)
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            break
        if max_items is not None and len(values) >= max_items:
            raise JsonItemsError(f"more than {max_items} JSON messages in one frame")
        try:
            value, index = decoder.raw_decode(text, index)
        except RecursionError:  # the pre-scan should have caught it; never a 1011
            raise JsonDepthError("JSON nested too deep") from None
        values.append(value)
    return values


def _pick(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if data.get(name) not in (None, ""):
            return data[name]
    return None


def parse_call_start(data: Any, *, default_rate: int, token_uuid: str | None = None,
                     encoding: str | None = None) -> CallStart:
    """Validate the metadata object; raise ``MetadataError`` with a reason otherwise."""
    if not isinstance(data, dict):
        raise MetadataError("metadata must be a JSON object")
    call_uuid = _pick(data, "uuid", "callSid", "call_sid") or token_uuid
    if not call_uuid or not isinstance(call_uuid, str) or len(call_uuid) > 64:
        raise MetadataError("metadata needs the call's uuid (or callSid), at most 64 characters")
    if token_uuid and call_uuid != token_uuid:
        raise MetadataError("metadata uuid differs from the token's call")
    raw_rate = str(_pick(data, "sampleRate", "sample_rate") or default_rate).strip().lower()
    try:  # "16k" as the dialplan writes it, or 16000
        rate = int(raw_rate[:-1]) * 1000 if raw_rate.endswith("k") else int(raw_rate)
    except ValueError:
        raise MetadataError("sampleRate must be a number") from None
    if rate not in SAMPLE_RATES:
        raise MetadataError(f"sampleRate must be one of {SAMPLE_RATES}")
    mix_type = str(_pick(data, "mixType", "mix_type") or "mono")
    if mix_type not in MIX_TYPES:
        raise MetadataError("mixType must be mono, mixed or stereo")
    coding = str(encoding or _pick(data, "encoding") or "l16").lower()
    if coding not in ENCODINGS:
        raise MetadataError(f"encoding must be one of {ENCODINGS}")
    direction = str(_pick(data, "direction") or "inbound").lower()
    if direction not in ("inbound", "outbound"):
        raise MetadataError("direction must be inbound or outbound")
    return CallStart(
        uuid=call_uuid,
        sample_rate=rate,
        channels=MIX_TYPES[mix_type],
        mix_type=mix_type,
        encoding=coding,
        direction=direction,
        language=str(_pick(data, "language") or "")[:16],
        caller=str(_pick(data, "caller", "from") or ""),
        callee=str(_pick(data, "callee", "to") or ""),
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )
