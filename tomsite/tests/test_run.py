"""The run command and plain daphne work on the embedded default from nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from tomsite import runner

pytestmark = pytest.mark.slow


@pytest.fixture
def clean_env(clean_env: dict[str, str]) -> dict[str, str]:
    # A fresh data folder holds no models, so the web process could never warm up and
    # tom_run would stop at its readiness (test_ready.py; with models, test_warm_start.py).
    return {**clean_env, "TOM_WARM_UP": "false"}


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


def _wait_for(what: str, predicate: Any, *, timeout: float, output: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; output:\n{output.read_text()}")


def test_tom_run_restarts_a_killed_web_process_and_gives_up_on_a_crash_loop(
        python: str, clean_env: dict[str, str], free_port: int, tmp_path: Path) -> None:
    assert _manage(python, clean_env, "migrate", "--no-input", "-v", "0").returncode == 0
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        run = subprocess.Popen(
            [python, "manage.py", "tom_run", "--port", str(free_port), "--max-restarts", "1"],
            cwd=REPO, env=clean_env, stdout=stdout, stderr=stderr, start_new_session=True)
    admin = f"http://127.0.0.1:{free_port}/admin/login/"
    try:
        first = int(_wait_for("supervision", lambda: re.search(
            r"supervising web \(pid (\d+)\)", out.read_text()), timeout=180, output=out)[1])
        os.kill(first, signal.SIGKILL)
        # The runner says why, restarts it after its back-off, and the admin answers again.
        second = int(_wait_for("the restart", lambda: re.search(
            r"web restarted: pid (\d+) \(restart 1\)", out.read_text()), timeout=30,
            output=out)[1])
        assert re.search(r"web killed by SIGKILL \(killed: usually the kernel's "
                         r"out-of-memory killer \(see `dmesg`\) or a kill -9\); "
                         r"restarting in 1 s \(restart 1; 1 of at most 1 within 300 s\); "
                         r"see \S+web\.log", out.read_text())
        assert second != first and "tomsite.serve" in Path(
            f"/proc/{second}/cmdline").read_bytes().decode()
        _wait_for("the admin after the restart", lambda: runner.http_ok(admin), timeout=60,
                  output=out)
        web_log = Path(clean_env["TOM_DATA_DIR"]) / "log" / "web.log"
        assert "[runner] web killed by SIGKILL" in web_log.read_text()
        assert "runner.child_died" in err.read_text()  # the runner's own log (stderr)

        # A second death within the window is a crash loop: stop everything, exit non-zero.
        os.kill(second, signal.SIGKILL)
        assert run.wait(30) == 1
        assert ("web killed by SIGKILL (killed: usually the kernel's out-of-memory killer "
                "(see `dmesg`) or a kill -9); it died 2 "
                "times within 300 s: a crash loop, giving up") in err.read_text()
        assert "stopped web, worker and beat" in out.read_text()
        assert not runner.http_ok(admin)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(30)


def _child(tmp_path: Path, code: str) -> runner.Child:
    return runner.Child("web", [sys.executable, "-c", code], tmp_path / "web.log")


def test_supervisor_says_why_backs_off_and_gives_up(tmp_path: Path) -> None:
    """A virtual clock (``now=``) drives the back-off; the children are real processes."""
    child = _child(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    said: list[str] = []
    supervisor = runner.Supervisor([child], cwd=REPO, say=said.append, policy=runner.RestartPolicy(
        max_restarts=2, window_s=60, first_backoff_s=1, max_backoff_s=30))
    child.start(cwd=REPO, detach=False)

    def died_at(now: float) -> None:
        assert child.process is not None
        child.process.wait(10)
        supervisor.poll(now=now)

    died_at(100.0)
    assert said == ["web killed by SIGILL (illegal instruction: a compiled library uses CPU "
                    "instructions this CPU cannot run (built for another CPU, e.g. "
                    "-march=native, AVX-512 or AMX)); restarting in 1 s (restart 1; 1 of at "
                    "most 2 within 60 s); "
                    f"see {tmp_path / 'web.log'}"]
    dead = child.process
    supervisor.poll(now=100.9)  # still backing off
    assert child.process is dead and len(said) == 1
    supervisor.poll(now=101.0)
    assert child.process is not dead and said[-1].startswith("web restarted: pid ")
    died_at(101.5)
    assert "restarting in 2 s (restart 2; 2 of at most 2 within 60 s)" in said[-1]
    supervisor.poll(now=103.5)
    with pytest.raises(runner.RunnerError, match="died 3 times within 60 s: a crash loop, "
                                                 "giving up"):
        died_at(104.0)
    log = (tmp_path / "web.log").read_text()
    assert log.count("[runner] web killed by SIGILL") == 3 and "restarted as pid" in log
    child.stop()


def test_deaths_outside_the_window_are_forgiven(tmp_path: Path) -> None:
    child = _child(tmp_path, "raise SystemExit(3)")
    said: list[str] = []
    supervisor = runner.Supervisor([child], cwd=REPO, say=said.append, policy=runner.RestartPolicy(
        max_restarts=1, window_s=10))
    child.start(cwd=REPO, detach=False)
    for now in (100.0, 120.0, 140.0):  # one death per 20 s: never two within 10 s
        assert child.process is not None
        child.process.wait(10)
        supervisor.poll(now=now)
        assert said[-1].startswith("web exited with code 3; restarting in 1 s")
        supervisor.poll(now=now + 1)
    assert supervisor.restarts == {"web": 3}
    child.stop()


def test_exit_reasons_in_words() -> None:
    # A shell between the runner and the process reports a signal as 128 + its number,
    # as run.sh did for the SIGILL in the issue (code 132).
    shell = subprocess.run(["sh", "-c", "sh -c 'kill -ILL $$'; exit $?"], check=False)
    assert shell.returncode == 132
    assert runner.exit_reason(shell.returncode) == (
        "exited with code 132 (128 + SIGILL) (illegal instruction: a compiled library uses "
        "CPU instructions this CPU cannot run (built for another CPU, e.g. -march=native, "
        "AVX-512 or AMX))")
    assert runner.exit_reason(-signal.SIGTERM) == (
        "killed by SIGTERM (terminated: another process asked it to stop)")
    assert runner.exit_reason(1) == "exited with code 1"
    assert runner.exit_reason(0) == "exited with code 0"
    assert runner.exit_reason(255) == "exited with code 255"  # 128 + 127 is no signal


def test_tom_run_refuses_a_bad_restart_policy(python: str, clean_env: dict[str, str]) -> None:
    result = _manage(python, clean_env, "tom_run", "--max-restarts", "-1")
    assert result.returncode == 1
    assert "--max-restarts must be 0 or more" in result.stderr


@pytest.mark.parametrize("database", ["unmigrated", "unreachable"])
def test_plain_daphne_starts_when_open_calls_cannot_be_checked(
        python: str, clean_env: dict[str, str], free_port: int, database: str) -> None:
    """Ending a dead process's calls at startup never keeps the server from starting."""
    env = dict(clean_env)
    if database == "unreachable":
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{closed.getsockname()[1]}/x"
    daphne = subprocess.Popen(
        [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(free_port),
         "tomsite.asgi:application"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert _wait_for_http(f"http://127.0.0.1:{free_port}/healthz", daphne) is not None
    finally:
        os.killpg(daphne.pid, signal.SIGTERM)
        output = daphne.communicate(timeout=10)[0].decode()
    assert "calls.orphans_not_checked" in output, output
    assert "Traceback" not in output


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> int | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code  # it answered: a 503 from a health check is an answer too
        except OSError:
            assert process.poll() is None, "daphne exited"
            time.sleep(0.3)
    return None
