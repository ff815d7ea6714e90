"""A Redis restart in the middle of a call, through a real daphne server: calls do not
depend on Redis once they are connected (fork consumers use no channel layer)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calls.models import Call
from voice.client import ForkClient, Segment
from voice.tests.conftest import voiced
from voice.tests.test_bridge_live import ended_call

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="needs the redis-server binary")]


class RedisProcess:
    """A redis-server of this test's own, never the shared one, on a free port."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_a_redis_restart_mid_call_ends_no_call(live_server_factory: Any,
                                                     own_redis: RedisProcess) -> None:
    server = live_server_factory(REDIS_URL=own_redis.url)
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000}, rate=8000,
                        segments=[Segment(voiced(8000, 0.8), pause_s=1.2) for _ in range(4)])
    call = asyncio.create_task(client.run())
    await asyncio.sleep(2.5)
    assert not call.done()
    own_redis.stop()  # every connection to it breaks
    await asyncio.sleep(0.5)
    own_redis.start()
    report = await call
    # All four utterances echoed, before and after the restart, and a normal end.
    assert report.errors == [] and report.close_code == 1000
    assert len(report.playbacks) == 4
    row = await ended_call(call_uuid)
    assert (row.status, row.end_reason) == (Call.Status.COMPLETED,
                                            Call.EndReason.GRACEFUL_SHUTDOWN)
