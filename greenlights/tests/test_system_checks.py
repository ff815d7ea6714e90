"""The checks an attacker and an operator would run, against a real server (echo session)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps

from greenlights.models import GreenlightRun, State
from greenlights.services import greenlight_run_create, greenlight_run_execute
from toolhub import catalog, sampledocs
from toolhub.models import ToolSource
from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SYSTEM = ["security", "monitoring", "toolhub", "freeswitch_integration", "rl_policy",
          "rl_reward"]


def _parts_only() -> None:
    importlib.import_module("toolhub.migrations.0002_default_sources_and_categories").create(
        apps, None)
    ToolSource.objects.exclude(kind=ToolSource.Kind.PARTS).delete()
    catalog.parts_import_csv(text=(sampledocs.DATA / "sample_parts.csv").read_text())


def test_system_checks_against_the_live_server(live_server_process: Any,
                                               settings: Any) -> None:
    _parts_only()
    server: LiveServer = live_server_process()
    run = greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND, only=SYSTEM)
    assert run is not None
    run = greenlight_run_execute(run=run, web_url=server.http,
                                 ws_url=f"ws://{server.host}:{server.port}")
    results = {r.name: r for r in run.results.all()}
    assert set(results) == set(SYSTEM)
    security = results["security"]
    assert security.state == State.GREEN, security.summary
    assert security.values == {"missing_token": 403, "replayed_token": 403,
                               "fresh_token": 101, "oversized_frame": 1009, "flood": 1008}
    monitoring = results["monitoring"]
    # The attacks were calls too: the counter moved during the run.
    assert monitoring.state == State.GREEN, monitoring.summary
    assert monitoring.values["calls_now"] > (monitoring.values["calls_before"] or 0)
    assert results["toolhub"].state == State.GREEN
    assert results["toolhub"].values["Autoteilepilot parts"]["parts"] >= 300
    freeswitch = results["freeswitch_integration"]
    assert freeswitch.state == State.GREEN
    assert freeswitch.values["dialplan_audio_fork.xml"] == "forks to TOM"
    assert results["rl_policy"].state == State.YELLOW
    assert "not configured" in results["rl_reward"].summary
    assert run.state == State.YELLOW  # green but for the policy tables, not built yet


def test_a_closed_event_socket_is_red(live_server_process: Any, settings: Any,
                                      free_port: int) -> None:
    settings.FREESWITCH_ESL_HOST, settings.FREESWITCH_ESL_PORT = "127.0.0.1", free_port
    run = greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND,
                                only=["freeswitch_integration"])
    assert run is not None
    result = greenlight_run_execute(run=run, web_url="http://127.0.0.1:9").results.get()
    assert result.state == State.RED
    assert f"Event Socket 127.0.0.1:{free_port}" in result.summary


def test_the_selfcheck_command_runs_the_fast_subset(live_server_process: Any) -> None:
    import io
    import json

    from django.core.management import call_command

    from greenlights.tasks import SELFCHECK

    _parts_only()
    server: LiveServer = live_server_process()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("greenlights", "--selfcheck", "--json", "--url", server.http, stdout=out)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["check"] for r in results] == SELFCHECK
    run = GreenlightRun.objects.get()
    assert run.trigger == GreenlightRun.Trigger.SCHEDULE and run.only == SELFCHECK
    # Monitoring is yellow here (no call during the run), so the exit code says yellow.
    assert exited.value.code == {"green": 0, "yellow": 1, "red": 2}[run.state]
