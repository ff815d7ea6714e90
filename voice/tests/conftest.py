"""A real daphne server (a forked process, as channels' live-server tests run it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from channels.testing.live import make_application
from daphne.testing import DaphneProcess
from django.db import connections

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
        return self.ws(path, token=fork_token_mint(call_uuid=call_uuid), **query)


def _child_setup() -> None:
    # The forked child inherits asgiref's executor object but not its worker thread
    # (it lived in the parent): give the child a fresh one, or sync_to_async hangs.
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
    # Likewise a channel layer the parent opened holds asyncio Redis connections bound to
    # the parent's loop and sockets: the child builds its own.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    # Models the parent loaded carry thread pools that did not survive the fork.
    from voice import llm, stt, tts

    for cache in (llm._loaded, stt._loaded, tts._loaded):
        cache.clear()
    # The parent's settings already name the test database (pytest-django set them before
    # the fork), so the child uses it as is.


@pytest.fixture
def live_server_factory(transactional_db: None, settings: Any) -> Iterator[Any]:
    """Start daphne serving TOM on the test database, with settings overridden first."""
    processes: list[DaphneProcess] = []

    def start(**overrides: Any) -> LiveServer:
        settings.TOM_SESSION_BACKEND = "echo"
        settings.TOM_WS_IDLE_TIMEOUT_S = 5.0
        for name, value in overrides.items():
            setattr(settings, name, value)
        connections.close_all()  # a forked child must not share the parent's sockets
        process = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=None),
                                setup=_child_setup)
        process.start()
        processes.append(process)
        if not process.ready.wait(timeout=30):
            raise RuntimeError("daphne did not start")
        return LiveServer("127.0.0.1", process.port.value)

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            process.join(10)


@pytest.fixture
def live_server_echo(live_server_factory: Any) -> LiveServer:
    """daphne with the echo session."""
    return live_server_factory()  # type: ignore[no-any-return]


__all__ = ["LiveServer", "voiced"]
