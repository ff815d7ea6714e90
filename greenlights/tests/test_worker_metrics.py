"""A real `celery worker` (prefork) exports its metrics, children's counts included."""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tomsite.celery import app

pytestmark = pytest.mark.slow


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return str(response.read().decode())


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_the_worker_exports_metrics_counted_in_its_children(
        python: str, clean_env: dict[str, str], free_port: int, tmp_path: Path) -> None:
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    env = {**clean_env, "TOM_CELERY_METRICS_PORT": str(free_port),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "TOM_DATA_DIR": str(settings.TOM_DATA_DIR), "TOM_LOG_LEVEL": "WARNING"}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    (tmp_path / "metrics").mkdir()
    worker = subprocess.Popen(
        [python, "-m", "celery", "-A", "tomsite", "worker", "--pool", "prefork",
         "--concurrency", "1", "-Q", queue, "-n", f"{queue}@%h", "-l", "WARNING"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                before = _scrape(free_port)
                break
            except OSError:
                assert worker.poll() is None, "the worker exited"
                assert time.monotonic() < deadline, "no metrics port"
                time.sleep(0.3)
        series = 'tom_errors_total{component="celery"}'
        # A task that fails in a child process: its error count must reach the exporter.
        app.send_task("toolhub.tasks.tool_source_check", args=["not-a-number"], queue=queue)
        while _value(_scrape(free_port), series) < _value(before, series) + 1:
            assert time.monotonic() < deadline + 30, "the child's count never arrived"
            time.sleep(0.3)
    finally:
        worker.terminate()
        worker.wait(20)
