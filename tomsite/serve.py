"""``python -m tomsite.serve``: daphne, with TOM's WebSocket size limit and an access log
that drops query strings.

Query strings may carry a fork token (``/ws/fork/?token=``) or a phone number a
supervisor typed into the admin search; daphne's own access log writes them out.

daphne lets autobahn accept WebSocket messages of 1 MiB (daphne >= 4.2.2; unlimited
before) and queues them for the consumer without bound, so frames far over
``TOM_MAX_FRAME_BYTES`` were read, buffered and queued before the consumer's own check.
Here autobahn refuses them from the frame header, before the payload is read (close
1009). Plain ``daphne tomsite.asgi:application`` reads up to 1 MiB, and the consumer's
check (voice/consumers.py) closes with 1009 only then; its ``--websocket-max-frame-size``
can lower that, but ``--websocket-max-message-size`` would also cap what TOM sends (one
``playAudio`` message of agent speech is often over 64 KiB). Arguments are daphne's own.
"""

from __future__ import annotations

from typing import Any

from daphne import cli
from daphne import server as daphne_server
from daphne.access import AccessLogGenerator
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol


class QuerylessAccessLog(AccessLogGenerator):
    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = str(details.get("path", ""))
        super().__call__(protocol, action, {**details, "path": path.split("?", 1)[0]})


def inbound_limit() -> int:
    """Largest WebSocket frame (and whole message) a peer may send, in bytes.

    Read when daphne starts serving, after it has imported the application (and so
    configured Django's settings).
    """
    from django.conf import settings

    return int(settings.TOM_MAX_FRAME_BYTES)


CLOSE_TOO_BIG = 1009


class BoundedWebSocketProtocol(WebSocketProtocol):
    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.wasMaxFramePayloadSizeExceeded or self.wasMaxMessagePayloadSizeExceeded:
            # The consumer ends the Call as frame_too_large on this code. The peer's reply
            # to our 1009 is often lost in the refused frame's unread payload (1006).
            code = CLOSE_TOO_BIG
        super().onClose(wasClean, code, reason)

    def sendMessage(self, *args: Any, **kwargs: Any) -> None:
        # autobahn applies maxMessagePayloadSize to what is sent too (protocol.py
        # sendMessage), but the limit is for what callers send: one playAudio message of
        # agent speech is larger than any inbound frame may be. The reactor is one thread.
        limit: int = self.maxMessagePayloadSize  # type: ignore[has-type]  # autobahn: untyped
        self.maxMessagePayloadSize = 0
        try:
            super().sendMessage(*args, **kwargs)
        finally:
            self.maxMessagePayloadSize = limit


class BoundedWebSocketFactory(WebSocketFactory):
    """daphne's factory with autobahn's frame and message limits at TOM_MAX_FRAME_BYTES."""

    protocol = BoundedWebSocketProtocol

    def setProtocolOptions(self, **options: Any) -> None:
        limit = inbound_limit()
        for name in ("maxMessagePayloadSize", "maxFramePayloadSize"):
            given = options.get(name) or 0  # 0: autobahn's "unlimited"
            options[name] = min(given, limit) if given else limit
        # Fail with a close frame (1009 and why) rather than a bare TCP reset, so the
        # peer, and the consumer through the echoed code, learn the reason (RFC 6455 7.1.7).
        options.setdefault("failByDrop", False)
        super().setProtocolOptions(**options)


def main() -> None:
    # daphne.cli builds its access log, and daphne.server its WebSocket factory, from
    # these module-level names; no other hook exists.
    cli.AccessLogGenerator = QuerylessAccessLog
    daphne_server.WebSocketFactory = BoundedWebSocketFactory
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
