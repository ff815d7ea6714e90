"""ASGI middleware: the client address behind trusted reverse proxies.

Wraps the whole application (HTTP and WebSocket), so Django's ``REMOTE_ADDR``, the
consumers and every log see the client rather than the proxy. Which hop is the client
is decided in ``voice.access.client_address_resolve``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from voice.access import address_in, address_parse, client_address_resolve

# Consumed here when the peer is trusted; left in place otherwise, so that allow-lists
# can tell a request that carries a forwarding header nobody vouched for.
_FORWARDING = (b"x-forwarded-for", b"forwarded")


def proxied_scope(*, scope: dict[str, Any], trusted: list[str]) -> dict[str, Any]:
    """``scope`` with ``client`` set to the real client when the peer is a trusted proxy.

    The forwarding headers are removed once they have been read, and the proxy's own
    address is kept as ``tom.proxy_peer``. Any other scope is returned unchanged.
    """
    client = scope.get("client")
    if not client or not address_in(address=address_parse(str(client[0])), networks=trusted):
        return scope
    headers = scope.get("headers") or []
    forwarded_for = [value.decode("latin-1") for name, value in headers
                     if name.lower() == b"x-forwarded-for"]
    resolved = client_address_resolve(peer=str(client[0]), forwarded_for=forwarded_for,
                                      trusted=trusted)
    return {
        **scope,
        # The client's port is not known behind a proxy; ASGI allows None for the client.
        "client": [resolved, 0] if resolved is not None else None,
        "headers": [(name, value) for name, value in headers
                    if name.lower() not in _FORWARDING],
        "tom.proxy_peer": list(client),
    }


class TrustedProxyMiddleware:
    """Apply ``proxied_scope`` to every HTTP and WebSocket connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] in ("http", "websocket"):
            scope = proxied_scope(scope=scope, trusted=settings.TOM_TRUSTED_PROXIES)
        return await self.app(scope, receive, send)
