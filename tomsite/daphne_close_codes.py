"""Let daphne close WebSockets with the RFC 6455 status codes the fork contract uses.

Autobahn's ``sendClose`` admits only 1000 and 3000-4999 from application code, but
RFC 6455 §7.4.1 defines 1007 (invalid payload), 1008 (policy violation), 1009 (message
too big) and 1011 (internal error) for exactly the endpoint that detects them. Daphne
routes ASGI ``websocket.close`` through ``sendClose``, so a consumer asking for 1009
crashes instead. This sends those codes with autobahn's frame-level ``sendCloseFrame``,
which performs the same close handshake without the application-level filter.
"""

from __future__ import annotations

from typing import Any

from daphne.ws_protocol import WebSocketProtocol

# RFC 6455 §7.4.1 codes an endpoint may send; 1005/1006/1015 must never be sent.
ENDPOINT_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_original = WebSocketProtocol.serverClose


def _server_close(self: Any, code: int | None = None) -> None:
    if code in ENDPOINT_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        _original(self, code=code)


def install() -> None:
    """Idempotent: patch daphne's server-side close once per process."""
    if WebSocketProtocol.serverClose is not _server_close:
        WebSocketProtocol.serverClose = _server_close
