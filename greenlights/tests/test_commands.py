"""The self-check and synthetic-call commands the systemd timers run."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from voice.tests.conftest import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_selfcheck_passes_when_everything_answers(live_server_process: Any) -> None:
    server: LiveServer = live_server_process()
    out = io.StringIO()
    call_command("tom_selfcheck", "--url", server.http, stdout=out)
    status = json.loads(out.getvalue())
    assert status["ok"] is True
    assert [p["name"] for p in status["probes"]] == ["database", "channel_layer", "broker",
                                                     "web"]


def test_selfcheck_fails_with_the_probe_that_failed(free_port: int) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError, match="unhealthy: web"):
        call_command("tom_selfcheck", "--url", f"http://127.0.0.1:{free_port}", stdout=out)
    web = json.loads(out.getvalue())["probes"][-1]
    assert web["name"] == "web" and web["ok"] is False and web["detail"] == "URLError"


def test_synthetic_call_against_no_server_fails_clearly(free_port: int) -> None:
    with pytest.raises(CommandError, match="could not reach"):
        call_command("tom_synthetic_call", "--url", f"ws://127.0.0.1:{free_port}")
