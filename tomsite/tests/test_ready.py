"""Ready means warm, as systemd and tom_run see it: READY=1 (sd_notify) and tom_run's
readiness line come only when /healthz turns 200, and a web process that cannot warm up
never says ready and tom_run says why. No models here: the warm-up with them is
voice/tests/test_warm_start.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from conftest import REPO
from tomsite.systemd import sd_notify
from voice.tests.conftest import _database_url

pytestmark = pytest.mark.slow


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[socket.socket, str]]:
    """A socket standing in for systemd's (abstract: no path length limit to meet)."""
    name = f"@tom-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(60)
        yield sock, name


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m tomsite.serve``, as the systemd unit starts it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tomsite.serve", "-b", "127.0.0.1", "-p", str(port),
             "tomsite.asgi:application"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT)


def _messages_until(sock: socket.socket, last: str) -> list[str]:
    """What the web process told systemd, up to the message holding ``last``."""
    told: list[str] = []
    while not told or last not in told[-1]:
        told.append(sock.recv(4096).decode())
    return told


def test_sd_notify_sends_to_the_socket_systemd_names(
        notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, name = notify_socket
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False  # not under systemd: nothing to tell
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert sd_notify("READY=1\nSTATUS=warm") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=warm"


@pytest.fixture
def server_env(transactional_db: None, settings: Any) -> dict[str, str]:
    connections.close_all()
    return {**os.environ, "DATABASE_URL": _database_url(), "TOM_LOG_LEVEL": "WARNING",
            "TOM_JWT_SECRET": settings.TOM_JWT_SECRET, "SECRET_KEY": settings.SECRET_KEY,
            "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY, "TOM_WARM_UP": "true"}


def test_the_web_process_tells_systemd_it_is_ready_once_healthz_is_200(
        server_env: dict[str, str], notify_socket: tuple[socket.socket, str],
        free_port: int, tmp_path: Path) -> None:
    sock, name = notify_socket
    env = {**server_env, "NOTIFY_SOCKET": name, "TOM_SESSION_BACKEND": "echo"}
    server = _serve(env, free_port, tmp_path / "web.log")
    try:
        told = _messages_until(sock, "READY=1")
        # Said from the loop daphne serves on, after its socket is bound: it answers now.
        status, body = _health(free_port)
        assert status == 200 and body["warm"] is True, body
        assert told == ["READY=1\nSTATUS=ready: the echo session loads no models"]
    finally:
        server.terminate()
        server.wait(10)


def test_a_web_process_without_its_models_never_says_ready(
        server_env: dict[str, str], notify_socket: tuple[socket.socket, str],
        free_port: int, tmp_path: Path) -> None:
    sock, name = notify_socket
    env = {**server_env, "NOTIFY_SOCKET": name, "TOM_SESSION_BACKEND": "local",
           "TOM_DATA_DIR": str(tmp_path / "data")}  # a data folder with no models
    server = _serve(env, free_port, tmp_path / "web.log")
    try:
        told = _messages_until(sock, "warm-up failed")
        status, body = _health(free_port)
    finally:
        server.terminate()
        server.wait(10)
    assert told[0].startswith("STATUS=warming up") and not any("READY=1" in m for m in told)
    assert told[-1] == "STATUS=warm-up failed (ModelError): see the web log"
    assert status == 503 and body["warm"] is False
    assert body["warm_up"]["state"] == "failed" and body["warm_up"]["error"] == "ModelError"
    assert "voice.warm_failed" in (tmp_path / "web.log").read_text()


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def test_tom_run_waits_for_warmth_and_says_why_a_process_cannot_warm_up(
        clean_env: dict[str, str], free_port: int) -> None:
    env = {**clean_env, "TOM_LOG_LEVEL": "WARNING"}
    assert _manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
    # From nothing (no tom_models): the web process starts but can answer no call.
    cold = _manage(env, "tom_run", "--port", str(free_port), "--exit-when-ready",
                   "--timeout", "120")
    assert cold.returncode == 1, cold.stdout + cold.stderr
    assert "the web process cannot answer calls: its warm-up failed (ModelError); see " \
           in cold.stderr and "web.log" in cold.stderr
    # The echo session is warm at once, and the readiness line says so.
    echo = _manage({**env, "TOM_SESSION_BACKEND": "echo"}, "tom_run", "--port",
                   str(free_port), "--exit-when-ready")
    assert echo.returncode == 0, echo.stdout + echo.stderr
    assert f"daphne on http://127.0.0.1:{free_port}   warm (the echo session loads no " \
           "models)" in echo.stdout
