"""The security check's attacks reach TOM as calls: they are marked as TOM's own, so no
policy variant is charged for them."""

from __future__ import annotations

from typing import Any

import pytest

from calls.models import Call
from greenlights.models import GreenlightRun
from greenlights.services import greenlight_run_create, greenlight_run_execute

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_security_checks_attack_calls_are_synthetic(live_server_process: Any) -> None:
    server = live_server_process()
    run = greenlight_run_create(trigger=GreenlightRun.Trigger.COMMAND, only=["security"])
    assert run is not None
    run = greenlight_run_execute(run=run, web_url=server.http,
                                 ws_url=f"ws://{server.host}:{server.port}")
    result = run.results.get()
    attacks = list(Call.objects.filter(uuid__startswith="greenlight-attack-"))
    # The oversized frame and the flood got as far as a call.
    assert len(attacks) == 2, (result.state, result.summary)
    assert all(call.synthetic and not call.rewardable for call in attacks)
