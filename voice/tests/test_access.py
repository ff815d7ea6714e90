"""Client addresses behind trusted proxies, and who passes an address allow-list."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from voice.access import client_address_resolve, client_in, networks_malformed

TRUSTED = ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), [
    # Not from a trusted proxy: the header is whatever the client wrote, ignored.
    ("203.0.113.9", ["127.0.0.1"], "203.0.113.9"),
    # One proxy: the hop it appended is the client; what the client wrote before is not.
    ("10.0.0.1", ["127.0.0.1, 198.51.100.4"], "198.51.100.4"),
    # Two proxies: skip every trusted hop from the right.
    ("10.0.0.1", ["198.51.100.4, 10.0.0.7"], "198.51.100.4"),
    ("10.0.0.1", ["6.6.6.6, 198.51.100.4, 192.0.2.1"], "198.51.100.4"),
    # Several header lines are one list, in order.
    ("10.0.0.1", ["198.51.100.4", "10.0.0.7"], "198.51.100.4"),
    # A trusted proxy that adds nothing: it is the client (e.g. its own health check).
    ("10.0.0.1", [], "10.0.0.1"),
    # Only proxies in the chain: the left-most one.
    ("10.0.0.1", ["10.9.9.9, 10.0.0.7"], "10.9.9.9"),
    # Malformed hops are only read if the walk gets that far.
    ("10.0.0.1", ["bogus, 198.51.100.4"], "198.51.100.4"),
    ("10.0.0.1", ["198.51.100.4, bogus"], None),
    # IPv6, and IPv4-mapped peers of a dual-stack socket.
    ("2001:db8::1", ["2001:db8::2, 2a00:1450::5"], "2a00:1450::5"),
    ("::ffff:10.0.0.1", ["198.51.100.4"], "198.51.100.4"),
    ("unix-socket", ["127.0.0.1"], None),
])
def test_right_most_untrusted_hop(peer: str, forwarded_for: list[str],
                                  client: str | None) -> None:
    assert client_address_resolve(peer=peer, forwarded_for=forwarded_for,
                                  trusted=TRUSTED) == client


def test_without_trusted_proxies_the_header_never_counts() -> None:
    assert client_address_resolve(peer="127.0.0.1", forwarded_for=["198.51.100.4"],
                                  trusted=[]) == "127.0.0.1"


def test_malformed_list_entries_are_named() -> None:
    assert networks_malformed(entries=["10.0.0.0/8", "nginx", "::1", "10.0.0.300"]) == [
        "nginx", "10.0.0.300"]


@override_settings(TOM_BEHIND_PROXY=False)
def test_allow_list_refuses_requests_carrying_forwarding_headers() -> None:
    factory = RequestFactory()
    allowed = ["127.0.0.1", "::1"]
    assert client_in(factory.get("/", REMOTE_ADDR="127.0.0.1"), allowed)
    assert client_in(factory.get("/", REMOTE_ADDR="::ffff:127.0.0.1"), allowed)
    assert not client_in(factory.get("/", REMOTE_ADDR="203.0.113.9"), allowed)
    assert not client_in(factory.get("/", REMOTE_ADDR=""), allowed)
    # daphne --proxy-headers put the header's address into REMOTE_ADDR: still refused.
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED"):
        assert not client_in(factory.get("/", REMOTE_ADDR="127.0.0.1", **{header: "x"}), allowed)


@override_settings(TOM_BEHIND_PROXY=True)
def test_allow_list_opens_nothing_behind_a_proxy() -> None:
    assert not client_in(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1"), ["127.0.0.1"])
