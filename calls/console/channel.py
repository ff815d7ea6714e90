"""The contract on the channel layer between the web processes carrying calls
(voice.live publishes and obeys) and the console (calls.console reads and asks).

``tom-console``: every change of a call in progress, as ``{"type": "console.event",
"kind": "call.state" | "call.line" | "call.turn" | "call.ended", "uuid": ..., ...}``.
``tom-control``: what the console asks, as ``{"type": "console.control", "kind": "sync" |
"hangup" | "recording_stop", "uuid": ..., "by": username}``; the process carrying the call
does it, the others ignore it (``sync``: every process publishes its calls' states).
"""

from __future__ import annotations

from channels.layers import get_channel_layer

GROUP = "tom-console"
CONTROL_GROUP = "tom-control"


async def console_control_send(*, kind: str, uuid: str = "", by: str = "") -> None:
    """Ask the process carrying call ``uuid`` (every process, for ``sync``) to act.

    Raises what the layer raises when it cannot be reached: the supervisor is told.
    """
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    await layer.group_send(CONTROL_GROUP, {"type": "console.control", "kind": kind,
                                           "uuid": uuid, "by": by})
