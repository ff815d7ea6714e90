"""Who is asking: client addresses behind trusted proxies, and the allow-lists of the
machine endpoints (fork tokens here, metrics in greenlights).

TOM reads ``X-Forwarded-For`` itself (``tomsite.proxy``), never daphne: daphne's
``--proxy-headers`` takes the left-most address of the header from any peer, and the
left-most address is whatever the client wrote. Here the header counts only when the
socket peer is in ``TOM_TRUSTED_PROXIES``, and the client is the right-most hop that is
not a trusted proxy: every proxy appends the address it saw, so that hop is the last one
written by a machine we trust (MDN "X-Forwarded-For", section "Selecting an IP address").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers a proxy uses to name the client. Left in a request, they were not consumed by
# tomsite.proxy (the peer is no trusted proxy), so whoever sent them may have written them.
FORWARDED_META = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")


def address_parse(value: str) -> Address | None:
    """An IP address from a header or a socket peer, or None when it is not one.

    IPv4-mapped IPv6 (``::ffff:127.0.0.1``, what a dual-stack socket reports) counts as
    the IPv4 address, so allow-lists written in IPv4 match it.
    """
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    parsed = []
    for entry in entries:
        try:
            parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # malformed entries never match; tomsite.E009 reports them
    return tuple(parsed)


def networks_malformed(*, entries: Iterable[str]) -> list[str]:
    """The entries of an allow-list or proxy list that are no IP address or CIDR."""
    bad = []
    for entry in entries:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            bad.append(entry)
    return bad


def address_in(*, address: Address | None, networks: Iterable[str]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (IPs or CIDRs)."""
    if address is None:
        return False
    return any(address in network for network in _networks(tuple(networks)))


def client_address_resolve(*, peer: str, forwarded_for: Sequence[str],
                           trusted: Sequence[str]) -> str | None:
    """The client's address, given the socket ``peer`` and the ``X-Forwarded-For`` values.

    Unless the peer is a trusted proxy the header is ignored and the peer is the client.
    Otherwise the hops are walked from the right; trusted proxies are skipped and the
    first other hop is the client. If every hop is trusted, the left-most one is (a
    request from a proxy's own host). A malformed hop before the client is found means
    the chain cannot be read: None, which no allow-list matches.
    """
    peer_address = address_parse(peer)
    if not address_in(address=peer_address, networks=trusted):
        return str(peer_address) if peer_address is not None else None
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer_address
    for hop in reversed(hops):
        client = address_parse(hop)
        if client is None:
            return None
        if not address_in(address=client, networks=trusted):
            break
    return str(client)


def client_in(request: HttpRequest, networks: Iterable[str]) -> bool:
    """Whether the request's client may use an address-allow-listed endpoint.

    Never behind a proxy (``TOM_BEHIND_PROXY`` or ``TOM_TRUSTED_PROXIES``): there the
    endpoints need their secret, because an address says little once a proxy relays.
    Never when the request still carries a forwarding header: it came from a peer that
    is no trusted proxy, and under daphne's ``--proxy-headers`` ``REMOTE_ADDR`` may
    already be the address that header claims.
    """
    if settings.TOM_BEHIND_PROXY:
        return False
    if any(name in request.META for name in FORWARDED_META):
        return False
    return address_in(address=address_parse(request.META.get("REMOTE_ADDR") or ""),
                      networks=networks)
