"""Starting and running greenlight runs. The page, the command and Celery all come here.

A run is a row that only one of them can hold at a time (the database's partial unique
constraint on ``state='running'``). Each check runs in a thread of its own with its own
timeout: a check that raises or hangs is recorded red with the reason and the run goes
on. Every event is also appended to ``TOM_DATA_DIR/greenlights/runs.jsonl``, one JSON
object per line, for log shippers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from greenlights.checks import REGISTRY, Check, Outcome, RunContext
from greenlights.checks.system import scrape
from greenlights.models import SEVERITY, GreenlightResult, GreenlightRun, State
from tomsite.metrics import error_count

logger = logging.getLogger(__name__)


def jsonl_path() -> Path:
    return Path(settings.TOM_DATA_DIR) / "greenlights" / "runs.jsonl"


def _append(event: dict[str, Any]) -> None:
    path = jsonl_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"ts": timezone.now().isoformat(), **event}, default=str)
                     + "\n")


def greenlight_run_create(*, trigger: str, only: list[str] | None = None
                          ) -> GreenlightRun | None:
    """A new run, or ``None`` while another is running."""
    unknown = sorted(set(only or []) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(REGISTRY))}")
    stale = timezone.now() - timedelta(seconds=settings.TOM_GREENLIGHTS_STALE_S)
    GreenlightRun.objects.filter(state=State.RUNNING, started_at__lt=stale).update(
        state=State.RED, finished_at=timezone.now(), error="abandoned: its worker stopped")
    try:
        with transaction.atomic():
            run = GreenlightRun.objects.create(trigger=trigger, only=list(only or []))
    except IntegrityError:
        return None
    _append({"event": "run_started", "run_id": run.pk, "trigger": trigger, "only": run.only})
    logger.info("greenlights.run_started", extra={"run_id": run.pk, "trigger": trigger})
    return run


def _run_check(item: Check, ctx: RunContext) -> tuple[Outcome, str]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = item.func(ctx)
        except Exception as exc:  # a crashing check is a red result, not a crashed run
            box["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            close_old_connections()

    worker = threading.Thread(target=target, name=f"greenlight-{item.name}", daemon=True)
    worker.start()
    worker.join(item.timeout_s)
    if worker.is_alive():
        return Outcome(state=State.RED, summary=f"timed out after {item.timeout_s:g} s"), \
            f"the check did not finish within {item.timeout_s:g} s"
    if "error" in box:
        return Outcome(state=State.RED, summary=box["error"][:200]), box["error"]
    outcome: Outcome = box["outcome"]
    return outcome, ""


def greenlight_run_execute(*, run: GreenlightRun, web_url: str | None = None,
                           ws_url: str | None = None,
                           checks: dict[str, Check] | None = None) -> GreenlightRun:
    """Run the run's checks in order, saving each result as it comes."""
    base = f"{settings.TOM_HOST}:{settings.TOM_PORT}"
    ctx = RunContext(web_url=web_url or f"http://{base}", ws_url=ws_url or f"ws://{base}")
    try:
        ctx.metrics_before = scrape(ctx.web_url)
    except OSError:
        ctx.metrics_before = None
    registry = checks if checks is not None else REGISTRY
    selected = [c for name, c in registry.items() if not run.only or name in run.only]
    worst = State.GREEN
    for item in selected:
        started = time.perf_counter()
        outcome, error = _run_check(item, ctx)
        result = GreenlightResult.objects.create(
            run=run, name=item.name, category=item.category, state=outcome.state,
            summary=outcome.summary[:200], values=outcome.values, error=error,
            ms=round((time.perf_counter() - started) * 1000), call_id=outcome.call_id)
        _append({"event": "result", "run_id": run.pk, "check": item.name,
                 "state": result.state, "summary": result.summary, "values": result.values,
                 "error": error, "ms": result.ms, "call_id": result.call_id})
        if SEVERITY[State(outcome.state)] > SEVERITY[State(worst)]:
            worst = State(outcome.state)
    run.state, run.finished_at = worst, timezone.now()
    run.save(update_fields=["state", "finished_at"])
    if worst == State.RED and run.trigger == GreenlightRun.Trigger.NIGHTLY:
        error_count(component="greenlights")
    _append({"event": "run_finished", "run_id": run.pk, "state": worst})
    logger.info("greenlights.run_finished", extra={"run_id": run.pk, "state": worst})
    return run
