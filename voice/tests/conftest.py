"""A real daphne server (a forked process, as channels' live-server tests run it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connections

from voice import consumers
from voice.auth import fork_token_mint
from voice.signals import voiced


@dataclass
class LiveServer:
    host: str
    port: int

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws(self, path: str = "/ws/fork/", **query: str) -> str:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://{self.host}:{self.port}{path}" + (f"?{qs}" if qs else "")

    def fork_url(self, *, call_uuid: str | None = None, path: str = "/ws/fork/",
                 **query: str) -> str:
        # Every token names a call; a test that does not care gets a fresh one.
        return self.ws(path, token=fork_token_mint(call_uuid=call_uuid or str(uuid.uuid4())),
                       **query)


def fork_communicator(call_uuid: str) -> WebsocketCommunicator:
    """An in-process fork connection (drachtio's subprotocol) with a token for ``call_uuid``."""
    return WebsocketCommunicator(
        consumers.ForkConsumer.as_asgi(),
        f"/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
        subprotocols=["audio.drachtio.org"])


@pytest.fixture
def live_server_factory(live_server_process: Any) -> Any:
    """Start daphne serving TOM on the test database, with settings overridden first.

    Always a fresh process: forking this one is not safe once any test here has loaded a
    model (CTranslate2, ONNX Runtime and llama.cpp keep thread pools that do not survive
    a fork, and a lock one of them held leaves the child hanging before it serves).
    """
    return live_server_process


@pytest.fixture
def live_server_echo(live_server_factory: Any) -> LiveServer:
    """daphne with the echo session."""
    return live_server_factory()  # type: ignore[no-any-return]


__all__ = ["LiveServer", "fork_communicator", "voiced"]


def _database_url() -> str:
    """A URL for the test database this process uses, for a server in another process."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def live_server_process(transactional_db: None, settings: Any,
                        free_port: int) -> Iterator[Any]:
    """daphne as a fresh process (not a fork) on the test database.

    Tests that load models in this process need it: forking a process whose ONNX,
    CTranslate2 or llama.cpp thread pools are running can deadlock the child.
    """
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import REPO

    started: list[subprocess.Popen[bytes]] = []
    database_url = _database_url()
    connections.close_all()  # here, not in start(): tests call start() from async code

    def start(log: Path | None = None, **overrides: Any) -> LiveServer:
        """``log``: a file for the server's stdout and stderr (its logs), else inherited."""
        env = {**os.environ, "DATABASE_URL": database_url,
               "TOM_SESSION_BACKEND": "echo", "TOM_WS_IDLE_TIMEOUT_S": "5",
               "TOM_JWT_SECRET": settings.TOM_JWT_SECRET, "SECRET_KEY": settings.SECRET_KEY,
               "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY, "TOM_LOG_LEVEL": "WARNING",
               # Measuring capacity at start adds ~15 s to a local-model start and changes
               # the model's sampling state; the tests that want it ask for it.
               "TOM_CAPACITY_MEASURE": "false"}
        env.update({name: str(value) for name, value in overrides.items()})
        output = log.open("ab") if log is not None else None
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(free_port),
             "tomsite.asgi:application"], cwd=REPO, env=env, stdout=output,
            stderr=subprocess.STDOUT if output else None)
        started.append(server)
        deadline = time.monotonic() + 150  # the local models warm up before /healthz is 200
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{free_port}/healthz", timeout=2)
                return LiveServer("127.0.0.1", free_port)
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("daphne exited") from None
                time.sleep(0.2)
        raise RuntimeError("daphne did not start")

    try:
        yield start
    finally:
        for server in started:
            server.terminate()
            server.wait(10)
