"""X-Forwarded-For counts only from trusted proxies: through a real daphne, and the
middleware's scope rewriting on its own."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import pytest

from tomsite.proxy import TrustedProxyMiddleware, proxied_scope
from tomsite.tests.daphne import daphne_running

# Linux routes all of 127.0.0.0/8 to loopback: a client bound to 127.0.0.2 reaches a
# server on 127.0.0.1 from an address outside the default allow-lists (127.0.0.1, ::1).
OUTSIDER = "127.0.0.2"
FORK_SECRET = "fork-secret-" + "f" * 40
METRICS_TOKEN = "metrics-token-" + "m" * 40


def _get(port: int, path: str, *, source: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.slow
def test_spoofed_forwarded_for_opens_nothing_under_daphne_proxy_headers(
        clean_env: dict[str, str], free_port: int, tmp_path: Path) -> None:
    """daphne --proxy-headers makes REMOTE_ADDR the header's left-most address; TOM must
    not let that address pass its allow-lists (on the code before this change: 200)."""
    log = tmp_path / "daphne.log"
    with daphne_running(env=clean_env, port=free_port, log=log,
                        extra=("--proxy-headers",)) as server:
        for path in ("/fork/token?uuid=abc", "/metrics"):
            # Loopback itself is allowed: the server works and the allow-list is in force.
            assert _get(server.port, path, source="127.0.0.1") == 200, path
            assert _get(server.port, path, source=OUTSIDER) == 403, path
            for spoof in ("127.0.0.1", "127.0.0.1, 127.0.0.1", "::1"):
                status = _get(server.port, path, source=OUTSIDER,
                              headers={"X-Forwarded-For": spoof})
                assert status == 403, (path, spoof)
            # Even from loopback a forwarding header nobody vouched for passes no allow-list.
            assert _get(server.port, path, source="127.0.0.1",
                        headers={"X-Forwarded-For": "127.0.0.1"}) == 403, path
    # The startup checks told the operator the flag is ignored.
    assert "tomsite.W003" in log.read_text()


@pytest.mark.slow
def test_behind_a_trusted_proxy_the_endpoints_need_their_secret(
        clean_env: dict[str, str], free_port: int, tmp_path: Path) -> None:
    env = {**clean_env, "TOM_TRUSTED_PROXIES": OUTSIDER, "TOM_FORK_TOKEN_SECRET": FORK_SECRET,
           "TOM_METRICS_TOKEN": METRICS_TOKEN}
    with daphne_running(env=env, port=free_port, log=tmp_path / "daphne.log") as server:
        relayed = {"X-Forwarded-For": "127.0.0.1"}  # what a proxy relaying a loopback client sends
        for path in ("/fork/token?uuid=abc", "/metrics"):
            assert _get(server.port, path, source=OUTSIDER, headers=relayed) == 403, path
            # Straight from loopback, past the proxy: the allow-list no longer opens it either.
            assert _get(server.port, path, source="127.0.0.1") == 403, path
        assert _get(server.port, "/fork/token?uuid=abc", source=OUTSIDER,
                    headers={**relayed, "X-Tom-Token-Secret": FORK_SECRET}) == 200
        assert _get(server.port, "/metrics", source=OUTSIDER,
                    headers={**relayed, "Authorization": f"Bearer {METRICS_TOKEN}"}) == 200


def _scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "client": [peer, 40000],
            "headers": [(b"host", b"tom"), *headers]}


def test_scope_from_an_untrusted_peer_is_left_alone() -> None:
    scope = _scope("203.0.113.9", (b"x-forwarded-for", b"127.0.0.1"))
    assert proxied_scope(scope=scope, trusted=["10.0.0.0/8"]) is scope
    assert proxied_scope(scope=scope, trusted=[]) is scope


def test_scope_from_a_trusted_proxy_names_the_right_most_untrusted_hop() -> None:
    scope = _scope("10.0.0.1", (b"X-Forwarded-For", b"127.0.0.1, 198.51.100.4"),
                   (b"x-forwarded-for", b"10.0.0.7"), (b"forwarded", b"for=127.0.0.1"))
    out = proxied_scope(scope=scope, trusted=["10.0.0.0/8"])
    # 10.0.0.7 and the peer are proxies; 198.51.100.4 is who connected to the first one;
    # 127.0.0.1 was written by that client and is not believed.
    assert out["client"] == ["198.51.100.4", 0]
    assert out["tom.proxy_peer"] == ["10.0.0.1", 40000]
    # Consumed: nothing downstream can mistake them for unvouched headers, or re-read them.
    assert out["headers"] == [(b"host", b"tom")]


def test_scope_with_an_unreadable_chain_has_no_client() -> None:
    out = proxied_scope(scope=_scope("10.0.0.1", (b"x-forwarded-for", b"bogus, 10.0.0.8")),
                        trusted=["10.0.0.0/8"])
    assert out["client"] is None


async def test_middleware_rewrites_http_and_websocket_scopes_only() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    from django.test import override_settings

    with override_settings(TOM_TRUSTED_PROXIES=["127.0.0.1"]):
        middleware = TrustedProxyMiddleware(app)
        for kind in ("http", "websocket"):
            await middleware({**_scope("127.0.0.1", (b"x-forwarded-for", b"192.0.2.5")),
                              "type": kind}, None, None)
        await middleware({"type": "lifespan"}, None, None)
    assert [s.get("client") for s in seen] == [["192.0.2.5", 0], ["192.0.2.5", 0], None]
