"""Celery tasks: a run started from the page, the minutely self-check, the nightly call."""

from __future__ import annotations

from celery import shared_task

# The self-check is the fast subset: services answer, metrics are exposed, tools work.
SELFCHECK = ["monitoring", "toolhub", "freeswitch_integration"]


@shared_task(name="greenlights.tasks.greenlight_run", acks_late=True, soft_time_limit=900,
             time_limit=960)
def greenlight_run(run_id: int) -> str:
    """Execute a run created by the page (idempotent: a finished run is left alone)."""
    from greenlights.models import GreenlightRun, State
    from greenlights.services import greenlight_run_execute

    run = GreenlightRun.objects.filter(pk=run_id, state=State.RUNNING).first()
    if run is None or run.results.exists():
        return "skipped"
    return str(greenlight_run_execute(run=run).state)


@shared_task(name="greenlights.tasks.selfcheck", ignore_result=True, expires=50,
             soft_time_limit=50, time_limit=55)
def selfcheck() -> str:
    from greenlights.models import GreenlightRun
    from greenlights.services import greenlight_run_create, greenlight_run_execute

    run = greenlight_run_create(trigger=GreenlightRun.Trigger.SCHEDULE, only=SELFCHECK)
    return "busy" if run is None else str(greenlight_run_execute(run=run).state)


@shared_task(name="greenlights.tasks.nightly", soft_time_limit=900, time_limit=960)
def nightly() -> str:
    """Every check, the synthetic call included; a red run counts in tom_errors_total."""
    from greenlights.models import GreenlightRun
    from greenlights.services import greenlight_run_create, greenlight_run_execute

    run = greenlight_run_create(trigger=GreenlightRun.Trigger.NIGHTLY)
    return "busy" if run is None else str(greenlight_run_execute(run=run).state)
