"""The console's pages: the live board, a call's page, and what a supervisor does there.

Thin: reads come from calls.console.selectors, the live events from calls.console.sse,
and what a supervisor asks of a call in progress goes to the web process carrying it
through voice.live (the channel layer), which does it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from calls import selectors as call_selectors
from calls.console import channel, selectors, sse
from calls.console.waterfall import waterfall_svg
from calls.models import Call

logger = logging.getLogger(__name__)

BOARD_TICK_S = 0.5  # rows are redrawn at most this often, and only when something changed
KEEPALIVE_TICKS = 30  # ticks without an event before a keep-alive comment (proxies)


@staff_member_required
@permission_required("calls.view_call", raise_exception=True)
def board(request: HttpRequest) -> HttpResponse:
    rows, stale = selectors.board_rows(now=timezone.now())
    return render(request, "console/board.html", {
        **admin.site.each_context(request), "title": "Live calls", "rows": rows,
        "stale": stale,
        "can_close": request.user.has_perm("calls.change_call"),
    })


async def _staff_or_403(request: HttpRequest) -> HttpResponse | None:
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        return HttpResponseForbidden("staff only\n", content_type="text/plain")
    if not await sync_to_async(user.has_perm)("calls.view_call"):
        return HttpResponseForbidden("no permission to view calls\n", content_type="text/plain")
    return None


async def board_events(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The board's rows, redrawn as calls start, change and end (SSE ``calls``)."""
    if (refused := await _staff_or_403(request)) is not None:
        return refused
    return sse.sse_response(_board_stream())


async def _board_stream() -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    states: dict[str, dict[str, Any]] = {}
    # Redrawn after the first tick, from what the processes answered to the stream's
    # sync: rows drawn from the database that no process carries leave the board.
    dirty, drawn, quiet = True, 0.0, 0
    loop = asyncio.get_running_loop()
    try:
        async for message in sse.console_messages(tick_s=BOARD_TICK_S):
            if message is not None:
                quiet = 0
                kind, uuid = message.get("kind"), str(message.get("uuid", ""))
                if kind == "call.state":
                    states[uuid] = {k: v for k, v in message.items()
                                    if k not in ("type", "kind")}
                    dirty = True
                elif kind == "call.ended":
                    states.pop(uuid, None)
                    dirty = True
            else:
                quiet += 1
            if dirty and (message is None or loop.time() - drawn >= BOARD_TICK_S):
                dirty, drawn = False, loop.time()
                rows = [selectors.live_row(state) for state in
                        sorted(states.values(), key=lambda state: state["started_at"])]
                yield sse.sse("calls", render_to_string("console/_board_rows.html",
                                                        {"rows": rows}))
            elif quiet >= KEEPALIVE_TICKS:
                quiet = 0
                yield ": keep-alive\n\n"
    except Exception as exc:  # the layer is down: the page says so and the browser retries
        logger.warning("console.stream_failed", extra={"error": type(exc).__name__})
        yield sse.sse("calls", render_to_string("console/_board_rows.html",
                                                {"rows": [], "error": True}))


@staff_member_required
@permission_required("calls.view_call", raise_exception=True)
def call_page(request: HttpRequest, uuid: str) -> HttpResponse:
    call = get_object_or_404(Call.objects.select_related("variant"), uuid=uuid)
    turns = selectors.call_turns(call=call)
    user = request.user
    return render(request, "console/call.html", {
        **admin.site.each_context(request), "title": f"Call {call.uuid}", "call": call,
        "turns": turns,
        "waterfall": waterfall_svg(turns=[view.turn for view in turns]),
        "tool_count": sum(len(view.tool_calls) for view in turns),
        "live": not call.is_ended,
        "stale": not call.is_ended and call_selectors.call_is_stale(call=call,
                                                                    now=timezone.now()),
        "can_listen": bool(call.recording) and user.has_perm("calls.listen_recording"),
        "can_act": user.has_perm("calls.change_call"),
    })


async def call_events(request: HttpRequest, uuid: str) -> HttpResponse | StreamingHttpResponse:
    """One call's new transcript lines (``line``), its state (``state``), its turns
    redrawn when one is recorded (``turns``), and its end (``ended``)."""
    if (refused := await _staff_or_403(request)) is not None:
        return refused
    return sse.sse_response(_call_stream(uuid))


def _turns_html(uuid: str) -> str:
    call = Call.objects.get(uuid=uuid)
    turns = selectors.call_turns(call=call)
    return render_to_string("console/_turns.html", {
        "call": call, "turns": turns, "tool_count": sum(len(view.tool_calls) for view in turns),
        "waterfall": waterfall_svg(turns=[view.turn for view in turns])})


async def _call_stream(uuid: str) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    quiet = 0
    try:
        async for message in sse.console_messages(tick_s=BOARD_TICK_S):
            if message is None:
                quiet += 1
                if quiet >= KEEPALIVE_TICKS:
                    quiet = 0
                    yield ": keep-alive\n\n"
                continue
            if str(message.get("uuid", "")) != uuid:
                continue
            kind = message.get("kind")
            if kind == "call.line":
                yield sse.sse("line", render_to_string("console/_line.html", {"line": message}))
            elif kind == "call.state":
                yield sse.sse("state", render_to_string(
                    "console/_call_state.html", {"row": selectors.live_row(message)}))
            elif kind == "call.turn":
                yield sse.sse("turns", await sync_to_async(_turns_html)(uuid))
            elif kind == "call.ended":
                yield sse.sse("ended", render_to_string("console/_ended.html",
                                                        {"reason": message.get("reason")}))
                return
    except Exception as exc:
        logger.warning("console.stream_failed", extra={"error": type(exc).__name__})
        yield sse.sse("state", "<p class='errornote'>The live view lost the channel layer; "
                               "retrying.</p>")


@staff_member_required
@permission_required("calls.change_call", raise_exception=True)
@require_http_methods(["GET", "POST"])
async def hang_up(request: HttpRequest, uuid: str) -> HttpResponse:
    """GET: the confirm step. POST: TOM says goodbye and the module gets ``disconnect``."""
    call = await Call.objects.filter(uuid=uuid).afirst()
    if call is None or call.is_ended:
        return HttpResponse("<p>This call has already ended.</p>", status=409)
    if request.method == "GET":
        return await sync_to_async(render)(request, "console/_hangup_confirm.html",
                                           {"call": call})
    return await _control(request, call=call, kind="hangup",
                          done="Hanging up: TOM says goodbye, then the line is closed.")


@staff_member_required
@permission_required("calls.change_call", raise_exception=True)
@require_POST
async def recording_stop(request: HttpRequest, uuid: str) -> HttpResponse:
    """Nothing the caller says from now on is recorded (what was is kept)."""
    call = await Call.objects.filter(uuid=uuid).afirst()
    if call is None or call.is_ended:
        return HttpResponse("<p>This call has already ended.</p>", status=409)
    return await _control(request, call=call, kind="recording_stop",
                          done="Recording stopped for the rest of this call.")


async def _control(request: HttpRequest, *, call: Call, kind: str, done: str) -> HttpResponse:
    user = await request.auser()
    try:
        await channel.console_control_send(kind=kind, uuid=call.uuid, by=user.get_username())
    except Exception as exc:
        logger.warning("console.control_failed", extra={"call_id": call.pk, "action": kind,
                                                        "error": type(exc).__name__})
        return HttpResponse("<p class='errornote'>TOM's web processes cannot be reached "
                            "(channel layer down); try again.</p>", status=503)
    logger.info("console.control_sent", extra={"call_id": call.pk, "action": kind})
    return HttpResponse(f"<p class='console-done'>{done}</p>")
