"""A web process killed mid-call: the next one to start on the host ends its calls at once.

Through real daphne processes on the test database, with the fork client as FreeSWITCH.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calls.models import Call
from conftest import REPO
from voice.client import CallReport, ForkClient, Segment
from voice.tests.conftest import LiveServer, _database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RATE = 8000


class CallInBackground:
    """One fork call streaming silence for up to a minute, on a thread of its own."""

    def __init__(self, server: LiveServer) -> None:
        self.uuid = f"crash-{uuid.uuid4()}"
        self.client = ForkClient(url=server.fork_url(call_uuid=self.uuid),
                                 metadata={"uuid": self.uuid, "sampleRate": RATE}, rate=RATE,
                                 segments=[Segment(bytes(RATE * 2 * 60), pause_s=0)])
        self.report: CallReport | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.report = asyncio.run(self.client.run())

    def answered(self, timeout: float = 30) -> Call:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call = Call.objects.filter(uuid=self.uuid, status=Call.Status.ACTIVE).first()
            if call is not None:
                return call
            assert self.thread.is_alive(), "the call ended before it was answered"
            time.sleep(0.1)
        raise AssertionError("the call was not answered")


@pytest.fixture
def other_daphne(settings: Any) -> Iterator[Any]:
    """Start a plain daphne on another port, on the same database and host."""
    started: list[subprocess.Popen[bytes]] = []

    def start(log: Path) -> subprocess.Popen[bytes]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": _database_url(), "TOM_SESSION_BACKEND": "echo",
               "TOM_JWT_SECRET": settings.TOM_JWT_SECRET, "SECRET_KEY": settings.SECRET_KEY,
               "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY, "TOM_LOG_LEVEL": "INFO"}
        with log.open("ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                 "tomsite.asgi:application"], cwd=REPO, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                return server
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.2)
        raise AssertionError("daphne did not start")

    yield start
    for server in started:
        server.terminate()
        server.wait(10)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_calls_of_a_killed_web_process_end_when_the_next_one_starts(
        live_server_process: Any, other_daphne: Any, tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    first = CallInBackground(live_server_process(log=log, TOM_LOG_LEVEL="INFO"))
    call = first.answered()
    # The call names the daphne process carrying it, on this host.
    assert call.host == socket.gethostname() and call.pid is not None
    assert "daphne" in _cmdline(call.pid) and call.pid != os.getpid()
    assert call.process_start

    os.kill(call.pid, signal.SIGKILL)
    first.thread.join(30)
    assert first.report is not None and first.report.close_code == 1006  # dropped, no close
    call.refresh_from_db()
    assert call.status == Call.Status.ACTIVE  # nothing could end it as the process died

    # The next web process on this host (same port, same database) ends it as it starts.
    second_server = live_server_process(log=log, TOM_LOG_LEVEL="INFO")
    call.refresh_from_db()
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.PROCESS_DIED)
    assert f"web process {call.pid} " in call.status_detail and call.ended_at is not None
    assert "calls.orphans_ended" in log.read_text()

    # A call on a process that still runs is left alone by any process that starts later.
    second = CallInBackground(second_server)
    live_call = second.answered()
    other_daphne(tmp_path / "third.log")
    live_call.refresh_from_db()
    assert live_call.status == Call.Status.ACTIVE and live_call.pid != call.pid
