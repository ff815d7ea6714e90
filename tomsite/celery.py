"""The Celery app. Configuration comes from Django settings under the ``CELERY_`` prefix."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")

app = Celery("tomsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_cli_worker = False


@signals.worker_init.connect
def _check_before_working(**_: Any) -> None:
    _startup_checks(component="worker")


@signals.beat_init.connect
def _check_before_scheduling(**_: Any) -> None:
    _startup_checks(component="beat")


def _startup_checks(*, component: str) -> None:
    # A misconfigured worker or beat must not start: StartupRefused is a SystemExit, which
    # Celery's signal dispatch does not swallow (it catches Exception only).
    import sys

    import django
    from django.apps import apps

    if not apps.ready:  # django.setup() again would rebuild the log handlers on beat's
        django.setup()  # sys.stderr, which Celery has swapped for a logging proxy by now

    from tomsite.startup import StartupRefused, startup_checks_run

    try:
        startup_checks_run(component=component)
    except StartupRefused as refused:
        # Python prints a SystemExit's message on sys.stderr, which beat has redirected
        # into its logger by now: write it where the operator sees it.
        print(refused.code, file=sys.__stderr__)
        raise SystemExit(1) from None


@signals.celeryd_init.connect
def _mark_cli_worker(**_: Any) -> None:
    # Only `celery worker` sends this (not the in-process workers of the tests): only it
    # gets a metrics port.
    global _cli_worker
    _cli_worker = True


@signals.worker_ready.connect
def _start_metrics_exporter(**_: Any) -> None:
    if _cli_worker:
        from django.conf import settings

        from tomsite.metrics import worker_exporter_start

        worker_exporter_start(port=settings.TOM_CELERY_METRICS_PORT,
                              address=settings.TOM_CELERY_METRICS_ADDRESS)


@signals.task_failure.connect
def _count_task_failure(**_: Any) -> None:
    from tomsite.metrics import error_count

    error_count(component="celery")


@signals.worker_process_shutdown.connect
def _forget_dead_child(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
