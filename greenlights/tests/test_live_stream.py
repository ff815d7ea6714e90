"""From the page's "run now" through a real Celery worker to the Server-Sent Events the
page reads: all twelve results stream, and land in the database and the JSONL file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from celery.contrib.testing.worker import start_worker
from django.test import AsyncClient, Client
from django.urls import reverse

from calls import services as call_services
from greenlights import checks
from greenlights.checks import Check, Outcome, RunContext
from greenlights.models import GreenlightRun, State
from greenlights.services import jsonl_path
from tomsite.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def _fake(name: str) -> Check:
    def run(ctx: RunContext) -> Outcome:
        if name == "rl_reward":
            raise RuntimeError("policy table unreadable")
        return Outcome(state=State.GREEN, summary=f"{name} fine", values={"name": name})
    return Check(name=name, category="test", func=run, timeout_s=5)


@pytest.fixture
def fast_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The twelve real names, each answering at once (the plumbing is under test here)."""
    names = list(checks.REGISTRY)
    monkeypatch.setattr(checks, "REGISTRY", {n: _fake(n) for n in names})
    monkeypatch.setattr("greenlights.services.REGISTRY", checks.REGISTRY)
    return names


@pytest.fixture
def worker() -> Iterator[None]:
    app.amqp.queues.select_add("celery")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      queues=["celery"], loglevel="WARNING"):
        yield


async def test_run_now_streams_all_twelve_results(fast_checks: list[str], worker: None,
                                                   settings: Any, tmp_path: Path,
                                                   supervisors_group: None) -> None:
    settings.TOM_DATA_DIR = tmp_path  # this test's own JSONL file
    user, password = await sync_to_async(call_services.supervisor_ensure)(username="sue")
    client = Client()
    assert await sync_to_async(client.login)(username="sue", password=password)
    clicked = await sync_to_async(client.post)(reverse("greenlights:run"))
    run = await GreenlightRun.objects.aget()
    assert f'data-run-id="{run.pk}"' in clicked.content.decode()
    browser = AsyncClient()
    await browser.aforce_login(user)
    response = await browser.get(reverse("greenlights:stream", args=[run.pk]))
    assert response["Content-Type"] == "text/event-stream"
    events = []
    async for chunk in response.streaming_content:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        kind, data = text.split("\n")[:2]
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
        if events[-1][0] == "done":
            break
    results = [data for kind, data in events if kind == "result"]
    assert [r["check"] for r in results] == fast_checks
    crashed = next(r for r in results if r["check"] == "rl_reward")
    assert crashed["state"] == "red" and "policy table unreadable" in crashed["error"]
    assert events[-1] == ("done", {"run_id": run.pk, "state": "red"})
    await run.arefresh_from_db()
    assert run.state == State.RED
    assert await run.results.acount() == 12
    lines = [json.loads(line) for line in jsonl_path().read_text().splitlines()]
    assert len([x for x in lines if x["run_id"] == run.pk and x["event"] == "result"]) == 12
    page = await sync_to_async(client.get)(reverse("greenlights:page"))
    html = page.content.decode()
    assert 'id="tile-rl_reward"' in html and 'data-state="red"' in html
