"""drachtio mod_audio_fork, file mode (``/ws/fork/?mode=file``): the reference protocol.

The module sends the dialplan's metadata verbatim, then the caller's audio as binary
frames; texts after it are what the dialplan relays with ``send_text`` (DTMF). TOM
answers with JSON text only: each clause a ``playAudio`` file the application plays in
order, ``killAudio`` to cut them (voice/protocols/SOURCES.md A; voice.protocols.outbound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voice.dsp.pcm import decode_inbound
from voice.protocols import outbound
from voice.protocols.adapters.base import Control, Dtmf, ForkProtocol, message_data
from voice.protocols.metadata import CallStart, parse_call_start
from voice.transport import FileOutbound

if TYPE_CHECKING:
    from voice.transport import Outbound, Send


class DrachtioFileProtocol(ForkProtocol):
    """drachtio mod_audio_fork: binary audio in, ``playAudio`` files out."""

    name = "drachtio_file"
    flavour = "fork"
    mode = "file"

    def parse_start(self, value: Any, *, default_rate: int, token_uuid: str | None) -> CallStart:
        return parse_call_start(value, default_rate=default_rate, token_uuid=token_uuid,
                                encoding=self.encoding)

    def decode(self, data: bytes, *, start: CallStart) -> bytes:
        return decode_inbound(data, encoding=start.encoding, channels=start.channels)

    def control(self, value: Any) -> Control:
        # The dialplan relays keys with ``uuid_audio_fork <uuid> send_text
        # {"type":"dtmf","data":{"digit":"5"}}``; the module itself sends no other text.
        if isinstance(value, dict) and value.get("type") == "dtmf":
            data = message_data(value)
            return Dtmf(digits=str(data.get("digit") or data.get("digits") or ""))
        return None

    def transport(self, *, send: Send, rate: int) -> Outbound:
        return FileOutbound(send=send, build=outbound.play_audio)

    def kill_audio(self) -> str:
        return outbound.kill_audio()

    def disconnect(self, reason: str) -> str:
        return outbound.disconnect(reason)

    def error(self, message: str) -> str:
        return outbound.error(message)

    def transcription(self, *, role: str, text: str, final: bool, turn: int) -> str:
        return outbound.transcription(role=role, text=text, final=final, turn=turn)
