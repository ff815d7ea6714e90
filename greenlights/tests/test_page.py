"""The greenlights page in the admin's look, and each check's sparkline: its measured
value over the last runs, scaled to their min and max, with the latest printed beside it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from greenlights import selectors
from greenlights.models import GreenlightResult, GreenlightRun, State

pytestmark = pytest.mark.django_db


def _run(minutes_ago: int, results: dict[str, dict[str, Any]]) -> GreenlightRun:
    run = GreenlightRun.objects.create(
        trigger=GreenlightRun.Trigger.SCHEDULE, state=State.GREEN,
        started_at=timezone.now() - timedelta(minutes=minutes_ago))
    for name, values in results.items():
        GreenlightResult.objects.create(run=run, name=name, category="latency",
                                        state=State.GREEN, summary=f"{name} ok", values=values,
                                        ms=4321)
    return run


def test_the_sparkline_follows_the_measured_value_of_the_last_runs() -> None:
    # Created out of order: the line runs oldest first whatever the insertion order.
    runs = [_run(10, {"stt_latency": {"stt_ms": [200, 300], "worst_ms": 300},
                      "security": {"checked": 7}}),
            _run(30, {"stt_latency": {"stt_ms": [100], "worst_ms": 100}}),
            _run(20, {"stt_latency": {"worst_ms": None}}),  # no turn measured: no point
            _run(5, {"stt_latency": {"worst_ms": 200},
                     "e2e_latency": {"client_ms": [640, 900], "server_ms": [600]}}),
            _run(1, {"e2e_latency": {"client_ms": [700]}})]
    trends = selectors.check_trends(runs=runs)
    stt = trends["stt_latency"]
    assert stt.values == [100.0, 300.0, 200.0]  # the value, not how long the check took
    # 120 x 24 box: the lowest at the bottom (y 23), the highest at the top (y 1).
    assert stt.points == "0.0,23.0 60.0,1.0 120.0,12.0"
    assert stt.latest == "200 ms"
    assert stt.title == "worst STT, last 3 runs: min 100 ms, max 300 ms, latest 200 ms"
    assert stt.last_point == ("120.0", "12.0")
    assert trends["e2e_latency"].values == [640.0, 700.0]  # the first reply of each call
    assert "security" not in trends  # a verdict, not a measure
    # Only the runs asked for count, and one point draws no line.
    assert selectors.check_trends(runs=runs[:2])["stt_latency"].values == [100.0, 300.0]
    assert "stt_latency" not in selectors.check_trends(runs=runs[2:])


def test_a_flat_series_lies_on_the_floor_and_values_keep_their_units() -> None:
    assert selectors.sparkline([5.0, 5.0]) == "0.0,23.0 120.0,23.0"
    runs = [_run(3, {"audio_quality": {"wer": 0.125}}), _run(2, {"audio_quality": {"wer": 0.05}})]
    trend = selectors.check_trends(runs=runs)["audio_quality"]
    assert trend.latest == "0.05" and "max 0.125" in trend.title
    assert selectors.trend_value(name="barge_in", values={"barge_in_ms": True}) is None
    assert selectors.trend_value(name="barge_in", values={"barge_in_ms": 180}) == 180.0


def test_the_page_is_drawn_in_the_admin_look_with_tiles_and_sparklines(
        admin_client: Client) -> None:
    for minutes, ms in ((30, 400), (20, 800), (10, 600)):
        _run(minutes, {"llm_latency": {"worst_ms": ms}})
    response = admin_client.get(reverse("greenlights:page"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "TOM supervisor console" in html  # the admin's header
    assert 'class="breadcrumbs"' in html and f'href="{reverse("admin:index")}"' in html
    assert "console/htmx-2.0.4.min.js" in html and "greenlights/greenlights.css" in html
    assert 'id="run-now"' in html and 'id="run-status"' in html
    assert 'id="tile-llm_latency"' in html and 'data-state="green"' in html
    assert 'id="tile-security"' in html and 'data-state="pending"' in html
    assert html.count('class="tile"') == 12
    assert '<polyline points="0.0,23.0 60.0,1.0 120.0,12.0"/>' in html
    assert '<span class="latest" data-values="3">600 ms</span>' in html
    assert "<title>worst LLM first token, last 3 runs: min 400 ms, max 800 ms, latest 600 ms" \
        in html
    assert reverse("greenlights:stream", args=[0]) in html  # the SSE follow script
    assert reverse("console:board") in html


def test_the_admin_index_links_the_console_and_the_greenlights(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'id="link-live-calls" href="{reverse("console:board")}"' in html
    assert f'id="link-greenlights" href="{reverse("greenlights:page")}"' in html
    assert 'id="content-main"' in html and "app-calls" in html  # the app list is still there


def test_the_live_calls_link_needs_the_view_permission() -> None:
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user(username="ops", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="link-greenlights"' in html and 'id="link-live-calls"' not in html
