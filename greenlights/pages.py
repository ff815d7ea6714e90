"""The live greenlights page: tiles, "run now", and the run's results as Server-Sent Events.

The stream is an async generator under daphne: it polls the run's results (the run
executes in a Celery worker, another process) and sends each new one as an event, so a
page opened mid-run, or reloaded, catches up from the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_POST

from greenlights import selectors, services, tasks
from greenlights.models import GreenlightResult, GreenlightRun, State

POLL_S = 0.25
STREAM_LIMIT_S = 20 * 60


@staff_member_required
def page(request: HttpRequest) -> HttpResponse:
    # The admin's context (site header, user tools, nav sidebar): the page is drawn in
    # the admin's look, from console/base.html.
    return render(request, "greenlights/page.html", {
        **admin.site.each_context(request), "title": "Greenlights", **selectors.page_state()})


@staff_member_required
@require_POST
def run_now(request: HttpRequest) -> HttpResponse:
    """Start a run in the worker; a second click while one runs joins that run instead."""
    run = services.greenlight_run_create(trigger=GreenlightRun.Trigger.PAGE)
    started = run is not None
    if run is None:
        run = GreenlightRun.objects.filter(state=State.RUNNING).first()
    else:
        run_id = run.pk
        transaction.on_commit(lambda: tasks.greenlight_run.delay(run_id))
    return render(request, "greenlights/run_status.html", {"run": run, "started": started})


def _sse(event: str, data: dict[str, object]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _poll(run_id: int, after: int) -> tuple[list[dict[str, object]], int, str | None]:
    # State first: a run is marked finished only after its last result is written, so a
    # finished state read before the results cannot hide that result (read the other way
    # round, the last tile was lost when the run finished between the two queries).
    state = GreenlightRun.objects.filter(pk=run_id).values_list("state", flat=True).first()
    results = list(GreenlightResult.objects.filter(run_id=run_id, id__gt=after).order_by("id"))
    events = [selectors.result_event(r) for r in results]
    return events, (results[-1].pk if results else after), state


async def _events(run_id: int) -> AsyncIterator[str]:
    after, waited = 0, 0.0
    yield _sse("run", {"run_id": run_id})
    while waited < STREAM_LIMIT_S:
        events, after, state = await sync_to_async(_poll)(run_id, after)
        for event in events:
            yield _sse("result", event)
        if state is None or state not in (State.RUNNING, State.PENDING):
            yield _sse("done", {"run_id": run_id, "state": state})
            return
        await asyncio.sleep(POLL_S)
        waited += POLL_S
    yield _sse("done", {"run_id": run_id, "state": "timeout"})


async def stream(request: HttpRequest, run_id: int) -> HttpResponse | StreamingHttpResponse:
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        return HttpResponseForbidden("staff only\n", content_type="text/plain")
    response = StreamingHttpResponse(_events(run_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx must not hold events back
    return response
