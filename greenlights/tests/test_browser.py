"""The greenlights page in a real headless Chromium: log in, click "Run now", watch the
tiles change colour as results stream in from a real Celery worker, keep a screenshot
(var/test-artifacts/greenlights.png)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from calls import services as call_services
from conftest import REPO
from voice.tests.conftest import LiveServer, _database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = REPO / "var" / "test-artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are missing: deploy/local/test.sh "
                    "installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def supervisor_log_in(driver: Any, server: LiveServer, *, next_url: str, ready_id: str) -> None:
    """Log the "sue" supervisor in through the admin's login page, landing on
    ``next_url`` once the element ``ready_id`` is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, password = call_services.supervisor_ensure(username="sue")
    driver.get(f"{server.http}/admin/login/?next={next_url}")
    driver.find_element(By.ID, "id_username").send_keys("sue")
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, ready_id))


def page_text(driver: Any, css: str) -> str:
    """The text of the first element matching ``css`` ("" if none), read in one step in
    the page: htmx swaps elements as server-sent events arrive, and an element found first
    and read afterwards may have been replaced meanwhile (selenium's "stale element")."""
    return str(driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css))


def page_attrs(driver: Any, css: str, name: str) -> list[str | None]:
    """Attribute ``name`` of every element matching ``css``, read in one step (as above)."""
    return list(driver.execute_script(
        "var name = arguments[1]; return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(function (e) { return e.getAttribute(name); });", css, name))


@pytest.fixture
def worker_for(tmp_path: Path) -> Iterator[Any]:
    """A `celery worker` process checking the given live server, on the test database."""
    started: list[subprocess.Popen[bytes]] = []

    def start(server: LiveServer) -> None:
        env = dict(os.environ)
        env.update(DATABASE_URL=_database_url(), TOM_DATA_DIR=str(settings.TOM_DATA_DIR),
                   TOM_HOST=server.host, TOM_PORT=str(server.port),
                   TOM_JWT_SECRET=settings.TOM_JWT_SECRET, SECRET_KEY=settings.SECRET_KEY,
                   TOM_PHONE_HASH_KEY=settings.TOM_PHONE_HASH_KEY,
                   TOM_CELERY_METRICS_PORT="0", TOM_LOG_LEVEL="WARNING")
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        log = (tmp_path / "worker.log").open("ab")
        started.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tomsite", "worker", "--pool", "solo",
             "-Q", "celery", "-n", f"browser-{server.port}@%h", "-l", "WARNING"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))

    yield start
    for process in started:
        process.terminate()
        process.wait(20)


def test_run_now_in_chromium_colours_the_tiles_live(
        live_server_process: Any, worker_for: Any, browser: Any,
        supervisors_group: None) -> None:
    from selenium.webdriver.common.by import By

    server: LiveServer = live_server_process()
    worker_for(server)
    supervisor_log_in(browser, server, next_url="/greenlights/", ready_id="run-now")

    def states() -> list[str | None]:
        return page_attrs(browser, ".tile", "data-state")

    assert len(states()) == 12 and set(states()) == {"pending"}
    browser.find_element(By.ID, "run-now").click()
    seen: list[list[str | None]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        seen.append(states())
        status = page_text(browser, "#run-status")
        if status.startswith("run ") and ": " in status:
            break
        time.sleep(0.2)
    final = states()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "greenlights.png"))
    assert ": " in page_text(browser, "#run-status"), seen[-1]
    # Live: tiles were "running" after the click, then each took its colour as its
    # result arrived, some before others.
    assert any("running" in s for s in seen)
    assert any("running" in s and set(s) - {"running"} for s in seen), "no partial update"
    assert set(final) <= {"green", "yellow", "red"} and len(final) == 12
    assert (ARTIFACTS / "greenlights.png").stat().st_size > 10_000


def test_the_page_draws_each_checks_trend_over_the_last_runs(
        live_server_process: Any, browser: Any, supervisors_group: None) -> None:
    """Five earlier runs: each measured check's tile has a sparkline of its value and the
    latest value beside it; the screenshot (greenlights-trends.png) shows them."""
    from datetime import timedelta

    from django.utils import timezone
    from selenium.webdriver.common.by import By

    from greenlights.models import GreenlightResult, GreenlightRun, State

    for age, e2e in enumerate((1900, 1500, 1700, 1300, 1100)):
        run = GreenlightRun.objects.create(
            trigger=GreenlightRun.Trigger.SCHEDULE, state=State.GREEN,
            started_at=timezone.now() - timedelta(minutes=10 * (5 - age)),
            finished_at=timezone.now())
        for name, values in (("e2e_latency", {"client_ms": e2e}),
                             ("stt_latency", {"worst_ms": e2e // 4}),
                             ("barge_in", {"barge_in_ms": 40 + age})):
            GreenlightResult.objects.create(run=run, name=name, category="latency",
                                            state=State.GREEN, summary=f"{name} ok",
                                            values=values)
    server: LiveServer = live_server_process()
    supervisor_log_in(browser, server, next_url="/greenlights/", ready_id="run-now")
    tile = browser.find_element(By.ID, "tile-e2e_latency")
    points = tile.find_element(By.CSS_SELECTOR, "svg polyline").get_attribute("points")
    assert len(points.split()) == 5
    assert "1100" in tile.text  # the latest value printed beside its line
    assert browser.find_elements(By.CSS_SELECTOR, "#tile-barge_in svg polyline")
    assert not browser.find_elements(By.CSS_SELECTOR, "#tile-security svg polyline")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "greenlights-trends.png"))
