"""jambonz mod_audio_fork, bidirectional stream mode (``/ws/fork/?mode=stream``).

jambonz's module is a fork of drachtio's: the same metadata, inbound audio and JSON
messages. What differs is playout: TOM sends paced binary L16 that the module mixes into
the call, and a ``mark`` after each reply that the module answers ``playout`` once it
was heard (or ``cleared`` after ``killAudio``) (voice/protocols/SOURCES.md B2, B3).
jambonz's ``listen`` verb relays DTMF in a form of its own (SOURCES.md B4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voice.protocols.adapters.base import Control, Dtmf, MarkAnswer, message_data
from voice.protocols.adapters.drachtio import DrachtioFileProtocol
from voice.transport import StreamOutbound

if TYPE_CHECKING:
    from voice.transport import Outbound, Send


class JambonzStreamProtocol(DrachtioFileProtocol):
    """jambonz mod_audio_fork: binary audio both ways, ``mark`` answers as playout reports."""

    name = "jambonz_stream"
    mode = "stream"

    def control(self, value: Any) -> Control:
        if isinstance(value, dict):
            if value.get("type") == "mark":
                # {"type": "mark", "data": {"name":"turn-1", "event": "playout"}}
                data = message_data(value)
                return MarkAnswer(name=str(data.get("name", "")), event=str(data.get("event", "")))
            if value.get("event") == "dtmf":  # listen.js _onDtmf(): {"event":"dtmf","dtmf":"5"}
                return Dtmf(digits=str(value.get("dtmf") or ""))
        return super().control(value)

    def transport(self, *, send: Send, rate: int) -> Outbound:
        return StreamOutbound(send=send, rate=rate)
