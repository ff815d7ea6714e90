"""The admin's "check now" runs the health check in a real Celery worker (Redis in the
PostgreSQL pass, the filesystem broker in the embedded pass)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client
from django.urls import reverse

from calls import services as call_services
from tomsite.celery import app
from toolhub.catalog import ImportReport
from toolhub.models import ToolSource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.models]


@pytest.fixture
def worker() -> Iterator[None]:
    app.amqp.queues.select_add("celery")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      queues=["celery"], loglevel="WARNING"):
        yield


def _wait_checked(source: ToolSource, timeout: float = 30) -> ToolSource:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source.refresh_from_db()
        if source.last_checked_at is not None:
            return source
        time.sleep(0.2)
    raise AssertionError(f"{source} was not checked within {timeout} s")


def test_check_now_records_health_from_the_worker(
        sample_parts: ImportReport, chroma_dir: Path, worker: None) -> None:
    _, password = call_services.supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    parts = ToolSource.objects.get(kind=ToolSource.Kind.PARTS)
    knowledge = ToolSource.objects.get(kind=ToolSource.Kind.KNOWLEDGE_BASE)
    response = client.post(reverse("admin:toolhub_toolsource_changelist"), {
        "action": "check_now", "_selected_action": [parts.pk, knowledge.pk]}, follow=True)
    assert "Checking 2 source(s)" in response.content.decode()
    parts, knowledge = _wait_checked(parts), _wait_checked(knowledge)
    assert parts.health == ToolSource.Health.OK and parts.last_error == ""
    assert parts.last_detail["parts"] == sample_parts.created
    assert parts.last_detail["vehicles"] == sample_parts.vehicles_created
    # An empty knowledge base is reported, with the reason, not hidden.
    assert knowledge.health == ToolSource.Health.FAILING
    assert "no indexed articles" in knowledge.last_error
    page = client.get(reverse("admin:toolhub_toolsource_changelist")).content.decode()
    assert "Failing" in page and "no indexed articles" in page
