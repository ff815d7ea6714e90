"""The admin's "check now" runs the health check in a real Celery worker (Redis in the
PostgreSQL pass, the filesystem broker in the embedded pass)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client
from django.urls import reverse

from calls import services as call_services
from tomsite.celery import app
from toolhub.catalog import ImportReport
from toolhub.models import CatalogDocument, ToolSource
from toolhub.pdf import pdf_write
from toolhub.services import tool_call

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


def test_a_catalog_uploaded_in_the_admin_is_indexed_by_the_worker(
        defaults: None, chroma_dir: Path, worker: None, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    _, password = call_services.supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    source = ToolSource.objects.get(kind=ToolSource.Kind.PDF_CATALOG)
    upload = io.BytesIO(pdf_write([["Cover"], ["Wiper blades: replace every six months."]]))
    upload.name = "wipers.pdf"
    response = client.post(reverse("admin:toolhub_catalogdocument_add"), {
        "source": source.pk, "title": "Wipers", "file": upload,
        "uploaded_at_0": "2026-11-25", "uploaded_at_1": "10:00:00"}, follow=True)
    assert response.status_code == 200
    document = CatalogDocument.objects.get(title="Wipers")
    deadline = time.monotonic() + 30
    while document.status == CatalogDocument.Status.PENDING and time.monotonic() < deadline:
        time.sleep(0.2)
        document.refresh_from_db()
    assert document.status == CatalogDocument.Status.INDEXED, document.error
    assert document.pages == 2
    result = tool_call(name="catalog_search", arguments={"query": "how often wiper blades"})
    assert result.ok and result.content["passages"][0]["page"] == 2
