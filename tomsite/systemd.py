"""systemd's notify protocol (``Type=notify``, sd_notify(3)): the web process says itself
when it is ready, rather than systemd guessing from a started PID or a polling script.

A datagram of ``KEY=value`` lines to the socket named by ``NOTIFY_SOCKET``; outside
systemd that is unset and nothing is sent. The protocol is stable and tiny, so no
dependency (python-systemd needs libsystemd headers to build).
"""

from __future__ import annotations

import logging
import os
import socket

from voice.warmup import WarmState, WarmStatus

logger = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd; False when not under systemd or the send failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:  # readiness is then systemd's timeout's call, as without notify
        logger.warning("systemd.notify_failed", extra={"error_type": type(exc).__name__})
        return False
    return True


def warm_status_notify(status: WarmStatus) -> None:
    """``READY=1`` once the web process may take calls; a status line at each step."""
    if status.ready and status.note:  # nothing to warm (the echo session, TOM_WARM_UP=false)
        sd_notify(f"READY=1\nSTATUS=ready: {status.note}")
    elif status.state is WarmState.WARMING:
        sd_notify("STATUS=warming up: loading the models, then one turn through them")
    elif status.state is WarmState.WARM:
        sd_notify(f"READY=1\nSTATUS=warm (models loaded, warm-up turn in {status.seconds} s)")
    elif status.state is WarmState.FAILED:
        # Never ready: systemd's TimeoutStartSec ends it and Restart= tries again.
        sd_notify(f"STATUS=warm-up failed ({status.error}): see the web log")
