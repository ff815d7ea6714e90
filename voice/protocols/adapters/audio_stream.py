"""amigniter mod_audio_stream (``/ws/audio-stream/``).

The same metadata and inbound audio as mod_audio_fork (L16, or G.711 by ``?encoding=``;
mono, mixed or stereo). Out, each clause is a ``streamAudio`` file the application plays
(the module only writes it). The community edition knows no ``killAudio`` or other
command: any other JSON reaches the application as a ``mod_audio_stream::json`` event,
so TOM's ``killAudio`` there becomes the application's ``uuid_break``
(voice/protocols/SOURCES.md C3). Binary from TOM would be ignored, so there is no stream
mode here whatever the URL says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice.protocols import outbound
from voice.protocols.adapters.drachtio import DrachtioFileProtocol
from voice.transport import FileOutbound

if TYPE_CHECKING:
    from voice.transport import Outbound, Send


class AudioStreamProtocol(DrachtioFileProtocol):
    """amigniter mod_audio_stream: binary audio in, ``streamAudio`` files out."""

    name = "audio_stream"
    flavour = "audio_stream"
    mode = "file"

    def transport(self, *, send: Send, rate: int) -> Outbound:
        return FileOutbound(send=send, build=outbound.stream_audio)
