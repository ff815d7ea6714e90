"""Server-sent events for the console, fed by the channel layer (voice.live publishes).

One stream per open page: it joins the layer's ``tom-console`` group on a channel of its
own, asks every web process for the state of its calls (``sync``), and yields what comes.
Django cancels the generator when the browser goes away (ASGI ``http.disconnect``), and
the ``finally`` leaves the group. A stream ends after ``STREAM_LIMIT_S``: the browser's
EventSource reconnects and is synced afresh, so no stream lives for ever on one layer
membership.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from channels.layers import get_channel_layer
from django.http import StreamingHttpResponse

from calls.console import channel

logger = logging.getLogger(__name__)

STREAM_LIMIT_S = 30 * 60.0
Item = dict[str, Any] | None  # None: nothing came for a tick


def sse(event: str, data: str) -> str:
    """One event; every line of ``data`` (HTML) is a ``data:`` line of its own."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


def sse_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx must not hold events back
    return response


async def console_messages(*, tick_s: float,
                           limit_s: float = STREAM_LIMIT_S) -> AsyncIterator[Item]:
    """The live calls' events from every web process, and ``None`` after each ``tick_s``
    without one (the caller redraws, or sends a keep-alive comment for proxies).

    Raises what the layer raises when it cannot be reached (the view says so).
    """
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # A name of its own, not a process-local "!" channel (voice.live.own_channel says why).
    name = f"tom-console.{uuid.uuid4().hex}"
    await layer.group_add(channel.GROUP, name)
    loop = asyncio.get_running_loop()
    ends = loop.time() + limit_s
    try:
        await channel.console_control_send(kind="sync")
        while (left := ends - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(name),
                                                 min(tick_s, left))
            except TimeoutError:
                yield None
                continue
            yield message
    finally:
        with contextlib.suppress(Exception):  # the layer may be what failed
            await asyncio.shield(layer.group_discard(channel.GROUP, name))
