"""The fork modules' protocols as adapters, one picked per connection.

``fork_protocol_for`` is the one place that reads the route and the URL's ``?mode=`` and
``?encoding=``; everything after the handshake asks the adapter.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from django.conf import settings

from voice.protocols.adapters.audio_stream import AudioStreamProtocol
from voice.protocols.adapters.base import Control, Dtmf, ForkProtocol, MarkAnswer
from voice.protocols.adapters.drachtio import DrachtioFileProtocol
from voice.protocols.adapters.jambonz import JambonzStreamProtocol

# By (route, mode). A mode a route does not have is file mode, the one every module
# plays (mod_audio_stream ignores binary from the server: it has file mode only).
PROTOCOLS: dict[tuple[str, str], type[ForkProtocol]] = {
    (protocol.flavour, protocol.mode): protocol
    for protocol in (DrachtioFileProtocol, JambonzStreamProtocol, AudioStreamProtocol)
}


def fork_protocol_for(*, route_flavour: str, query: str | bytes,
                      default_mode: str | None = None) -> ForkProtocol:
    """The adapter for one connection, from its route and its URL's query string.

    Args:
        route_flavour: ``fork`` (``/ws/fork/``) or ``audio_stream`` (``/ws/audio-stream/``).
        query: the handshake's query string, as in the ASGI scope.
        default_mode: the mode when the URL names none; TOM_FORK_MODE if not given.

    Raises:
        ValueError: for a route that has no protocol (a routing mistake, not input).
    """
    if (route_flavour, "file") not in PROTOCOLS:
        raise ValueError(f"no fork protocol for route {route_flavour!r}")
    params = parse_qs(query.decode("latin-1") if isinstance(query, bytes) else query)
    mode = (params.get("mode") or [default_mode or settings.TOM_FORK_MODE])[0]
    protocol = PROTOCOLS.get((route_flavour, mode)) or PROTOCOLS[(route_flavour, "file")]
    encodings = params.get("encoding")
    return protocol(encoding=encodings[0] if encodings else None)


__all__ = [
    "PROTOCOLS", "AudioStreamProtocol", "Control", "DrachtioFileProtocol", "Dtmf",
    "ForkProtocol", "JambonzStreamProtocol", "MarkAnswer", "fork_protocol_for",
]
