"""The reaper task runs in a real Celery worker through the configured broker.

In the PostgreSQL pass the broker is Redis; in the embedded pass it is the
filesystem broker the embedded default uses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.utils import timezone

from calls.models import Call
from calls.tasks import calls_reap_stale
from calls.tests.factories import call_create
from tomsite.celery import app


@pytest.fixture
def worker_queue() -> Iterator[str]:
    """A real worker thread consuming a queue of its own, so no other message interferes."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    app.amqp.queues.select_add(queue)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      queues=[queue], loglevel="WARNING"):
        yield queue


@pytest.mark.django_db(transaction=True)
def test_reaper_runs_in_a_real_worker(worker_queue: str) -> None:
    stale = call_create(started_at=timezone.now() - timedelta(
        minutes=settings.TOM_STALE_CALL_MINUTES + 5))
    fresh = call_create()
    calls_reap_stale.apply_async(queue=worker_queue)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stale.refresh_from_db()
        if stale.is_ended:
            break
        time.sleep(0.2)
    assert (stale.status, stale.end_reason) == (Call.Status.FAILED, Call.EndReason.STALE)
    fresh.refresh_from_db()
    assert fresh.status == Call.Status.ACTIVE


def test_broker_matches_the_pass() -> None:
    expected = settings.REDIS_URL or "filesystem://localhost//"
    assert app.conf.broker_url == expected


def test_beat_schedule_has_the_reaper() -> None:
    entry = app.conf.beat_schedule["calls.reap-stale"]
    assert entry["task"] == calls_reap_stale.name
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
