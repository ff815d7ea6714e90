"""On-prem first: TOM talks to endpoints outside loopback/private networks only when
``ALLOW_EGRESS=true``."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from django.conf import settings


class EgressRefused(RuntimeError):
    """The endpoint is outside the local network and egress is not allowed."""


def endpoint_is_local(url: str) -> bool:
    """Whether every address ``url``'s host resolves to is loopback, private or link-local."""
    host = urlparse(url).hostname
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False  # unresolvable: treat as outside, so the refusal names it
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return bool(addresses) and all(a.is_loopback or a.is_private or a.is_link_local
                                   for a in addresses)


def check_endpoint(url: str) -> None:
    """Raise ``EgressRefused`` unless ``url`` is local or egress is allowed."""
    if settings.ALLOW_EGRESS or endpoint_is_local(url):
        return
    raise EgressRefused(f"{urlparse(url).hostname} is outside the local network and "
                        "ALLOW_EGRESS is false")
