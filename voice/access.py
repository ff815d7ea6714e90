"""Address allow-lists for machine endpoints: fork tokens here, metrics in greenlights."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.http import HttpRequest


def client_in(request: HttpRequest, networks: Iterable[str]) -> bool:
    """Whether the request's peer address lies in one of ``networks`` (IPs or CIDRs).

    ``REMOTE_ADDR`` is the socket peer (daphne's ``--proxy-headers`` replaces it only
    when a trusted proxy sets X-Forwarded-For); malformed entries never match.
    """
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False
