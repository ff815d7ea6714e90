"""The run command and plain daphne work on the embedded default from nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _manage(python: str, env: dict[str, str], *args: str,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_tom_run_starts_web_worker_and_beat(python: str, clean_env: dict[str, str],
                                            free_port: int) -> None:
    assert _manage(python, clean_env, "migrate", "--no-input", "-v", "0").returncode == 0
    created = _manage(python, clean_env, "tom_supervisor")
    assert created.returncode == 0 and "password:" in created.stdout
    result = _manage(python, clean_env, "tom_run", "--port", str(free_port), "--exit-when-ready")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"daphne on http://127.0.0.1:{free_port}" in result.stdout
    assert "worker   ready  ran calls.tasks.calls_reap_stale via filesystem://" in result.stdout
    assert "beat     ready  DatabaseScheduler" in result.stdout
    assert f"TOM admin: http://127.0.0.1:{free_port}/admin/" in result.stdout


def test_tom_run_reports_a_process_that_cannot_start(python: str, clean_env: dict[str, str],
                                                     free_port: int) -> None:
    assert _manage(python, clean_env, "migrate", "--no-input", "-v", "0").returncode == 0
    # Something else holds the port: daphne dies, and the command says so instead of hanging.
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", free_port))
        blocker.listen()
        result = _manage(python, clean_env, "tom_run", "--port", str(free_port),
                         "--exit-when-ready", "--timeout", "60")
    assert result.returncode == 1
    assert "web exited" in result.stderr and "web.log" in result.stderr


def test_plain_daphne_serves_the_admin_after_migrate(python: str, clean_env: dict[str, str],
                                                     free_port: int) -> None:
    assert _manage(python, clean_env, "migrate", "--no-input", "-v", "0").returncode == 0
    daphne = subprocess.Popen(
        [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(free_port),
         "tomsite.asgi:application"],
        cwd=REPO, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, status, body = time.monotonic() + 60, None, ""
        while time.monotonic() < deadline and status is None:
            try:
                url = f"http://127.0.0.1:{free_port}/admin/login/"
                with urllib.request.urlopen(url, timeout=2) as response:
                    status, body = response.status, response.read().decode()
            except OSError:
                assert daphne.poll() is None, daphne.stdout.read().decode() if daphne.stdout else ""
                time.sleep(0.3)
        assert status == 200 and "TOM supervisor console" in body
        css = f"http://127.0.0.1:{free_port}/static/admin/css/base.css"
        with urllib.request.urlopen(css, timeout=5) as response:
            assert response.status == 200  # the admin is styled without collectstatic
    finally:
        os.killpg(daphne.pid, signal.SIGTERM)
        daphne.wait(10)
