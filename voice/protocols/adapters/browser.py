"""The console's test call (``/ws/console/call/``): a supervisor's browser speaks the
jambonz bidirectional stream protocol (binary L16 both ways, ``mark`` answered
``playout``/``cleared``, ``killAudio`` on barge-in, ``transcription`` texts), since a
browser plays paced PCM frames far more easily than ``playAudio`` files.

What the browser may say about the call is limited to its own audio (rate) and the
policy variant the supervisor chose: the call's uuid is the server's, it is always
synthetic, and it has no caller or callee number, whatever the metadata holds.
"""

from __future__ import annotations

import re
from typing import Any

from voice.protocols.adapters.jambonz import JambonzStreamProtocol
from voice.protocols.metadata import CallStart, MetadataError, parse_call_start

VARIANT_NAME = re.compile(r"[-a-zA-Z0-9_]{1,40}")  # PolicyVariant.name is a SlugField(40)
BROWSER_KEYS = ("sampleRate", "language")


class BrowserStreamProtocol(JambonzStreamProtocol):
    """A supervisor's browser: the jambonz stream protocol, with server-owned metadata."""

    name = "browser_stream"
    flavour = "browser"
    mode = "stream"

    def __init__(self, *, encoding: str | None = None) -> None:
        # The page's AudioWorklet sends L16 only; a ``?encoding=`` on the URL is ignored.
        super().__init__(encoding="l16")

    def parse_start(self, value: Any, *, default_rate: int, token_uuid: str | None) -> CallStart:
        if not isinstance(value, dict):
            raise MetadataError("metadata must be a JSON object")
        if not token_uuid:  # BrowserCallConsumer.authenticate names the call
            raise MetadataError("the server names a test call, and named none")
        variant = value.get("tomVariant")
        if variant not in (None, "") and not (
                isinstance(variant, str) and VARIANT_NAME.fullmatch(variant)):
            raise MetadataError("tomVariant must be a policy variant's name")
        trusted: dict[str, Any] = {key: value[key] for key in BROWSER_KEYS if key in value}
        trusted.update(uuid=token_uuid, mixType="mono", tomSynthetic=True)
        if variant:
            trusted["tomVariant"] = variant
        return parse_call_start(trusted, default_rate=default_rate, token_uuid=token_uuid,
                                encoding=self.encoding)
