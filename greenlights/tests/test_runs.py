"""Greenlight runs: results persisted and appended as JSON lines, crashing and hanging
checks turn red without stopping the others, one run at a time, the beat schedule."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from calls import services as call_services
from greenlights.checks import REGISTRY, Check, Outcome, RunContext
from greenlights.models import GreenlightRun, State
from greenlights.services import greenlight_run_create, greenlight_run_execute, jsonl_path
from tomsite.celery import app

pytestmark = pytest.mark.django_db


def _ok(ctx: RunContext) -> Outcome:
    return Outcome(state=State.GREEN, summary="fine", values={"ms": 12})


def _crash(ctx: RunContext) -> Outcome:
    raise ConnectionError("model server gone")


def _hang(ctx: RunContext) -> Outcome:
    time.sleep(30)
    return _ok(ctx)


def _yellow(ctx: RunContext) -> Outcome:
    return Outcome(state=State.YELLOW, summary="not configured")


SCRIPTED = {
    "first": Check("first", "test", _ok, 5), "crash": Check("crash", "test", _crash, 5),
    "hang": Check("hang", "test", _hang, 0.3), "yellow": Check("yellow", "test", _yellow, 5),
    "last": Check("last", "test", _ok, 5),
}


def test_there_are_twelve_checks_with_categories() -> None:
    assert sorted(REGISTRY) == sorted([
        "stt_latency", "llm_latency", "tts_latency", "e2e_latency", "barge_in",
        "audio_quality", "rl_policy", "rl_reward", "freeswitch_integration", "monitoring",
        "security", "toolhub"])
    assert all(c.category and c.timeout_s > 0 for c in REGISTRY.values())


def test_a_crashing_or_hanging_check_is_red_and_the_run_goes_on(settings: Any,
                                                                 tmp_path: Any) -> None:
    settings.TOM_DATA_DIR = tmp_path
    run = greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND)
    assert run is not None
    started = time.perf_counter()
    run = greenlight_run_execute(run=run, web_url="http://127.0.0.1:9", checks=SCRIPTED)
    assert time.perf_counter() - started < 5
    results = {r.name: r for r in run.results.all()}
    assert list(results) == ["first", "crash", "hang", "yellow", "last"]
    assert results["crash"].state == State.RED
    assert results["crash"].error == "ConnectionError: model server gone"
    assert results["hang"].state == State.RED and "timed out after 0.3 s" in results["hang"].summary
    assert results["last"].state == State.GREEN and results["last"].values == {"ms": 12}
    assert run.state == State.RED and run.finished_at is not None
    lines = [json.loads(line) for line in jsonl_path().read_text().splitlines()]
    mine = [line for line in lines if line["run_id"] == run.pk]
    assert len(mine) == len(lines)
    assert [m["event"] for m in mine] == ["run_started", *["result"] * 5, "run_finished"]
    assert mine[2]["check"] == "crash" and mine[2]["state"] == "red"
    assert mine[-1]["state"] == "red"


def test_only_one_run_at_a_time_and_abandoned_runs_are_cleared(settings: Any) -> None:
    first = greenlight_run_create(trigger=GreenlightRun.Trigger.PAGE)
    assert first is not None
    assert greenlight_run_create(trigger=GreenlightRun.Trigger.SCHEDULE) is None
    settings.TOM_GREENLIGHTS_STALE_S = 0
    time.sleep(0.01)
    second = greenlight_run_create(trigger=GreenlightRun.Trigger.PAGE)
    assert second is not None
    first.refresh_from_db()
    assert first.state == State.RED and "abandoned" in first.error


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND, only=["stt_latncy"])


def test_two_run_now_clicks_start_one_run() -> None:
    _, password = call_services.supervisor_ensure(username="sue")
    client = Client()
    assert client.login(username="sue", password=password)
    first = client.post(reverse("greenlights:run"))
    second = client.post(reverse("greenlights:run"))
    assert GreenlightRun.objects.count() == 1
    run = GreenlightRun.objects.get()
    assert f'data-run-id="{run.pk}"' in first.content.decode()
    assert "already in progress" in second.content.decode()
    assert f'data-run-id="{run.pk}"' in second.content.decode()


def test_the_page_is_for_staff_only() -> None:
    response = Client().get(reverse("greenlights:page"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Client().get(reverse("greenlights:stream", args=[1])).status_code == 403


def test_beat_runs_the_selfcheck_every_minute_and_the_nightly_call_at_3_15() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    selfcheck, nightly = schedule["greenlights.selfcheck"], schedule["greenlights.nightly"]
    assert selfcheck["task"] == "greenlights.tasks.selfcheck"
    assert str(selfcheck["schedule"]) == "<crontab: * * * * * (m/h/dM/MY/d)>"
    assert nightly["task"] == "greenlights.tasks.nightly"
    assert str(nightly["schedule"]) == "<crontab: 15 3 * * * (m/h/dM/MY/d)>"
    assert {"greenlights.tasks.selfcheck", "greenlights.tasks.nightly",
            "greenlights.tasks.greenlight_run"} <= set(app.tasks)


def test_the_rl_checks_read_the_policy_tables() -> None:
    from calls import policy
    from calls.models import PolicyVariant
    from greenlights.checks.system import rl_policy, rl_reward

    ctx = RunContext(web_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    assert rl_policy(ctx).state == State.YELLOW and rl_reward(ctx).state == State.YELLOW
    base = PolicyVariant.objects.create(name="base", is_default=True)
    calm = PolicyVariant.objects.create(name="calm")
    outcome = rl_policy(ctx)
    assert outcome.state == State.GREEN and outcome.values["live"] == ["calm"]
    policy.policy_variant_blacklist(variant=calm, reason="test")
    outcome = rl_policy(ctx)
    assert outcome.state == State.RED and "all calls go to the default" in outcome.summary
    assert base.is_default
