"""Through a real daphne: with Redis (the nonce store) down or silent, a new fork
handshake is refused with 403 within the configured timeouts, never hung or 500."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from django.test import override_settings

from tomsite.tests.daphne import daphne_running
from voice.auth import fork_token_mint

pytestmark = pytest.mark.slow

SECRET = "j" * 48


@pytest.fixture
def refused_port() -> Iterator[int]:
    """Nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that never answers: the kernel accepts the connection, Redis never replies."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


async def _handshake(url: str) -> int:
    try:
        async with websockets.connect(url, subprotocols=["audio.drachtio.org"],  # type: ignore[list-item]
                                      open_timeout=20):
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


def _refusals(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return next((line for line in response.read().decode().splitlines() if line.startswith(
            'tom_telephony_handshakes_refused_total{reason="nonce_store_unavailable"}')), "")


@pytest.mark.parametrize("redis", ["refused_port", "silent_port"])
def test_new_handshake_is_refused_when_the_nonce_store_is_down(
        redis: str, request: pytest.FixtureRequest, clean_env: dict[str, str],
        free_port: int, tmp_path: Path) -> None:
    redis_port = request.getfixturevalue(redis)
    env = {**clean_env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/14",
           "TOM_JWT_SECRET": SECRET, "TOM_SESSION_BACKEND": "echo",
           "TOM_REDIS_CONNECT_TIMEOUT_S": "1", "TOM_REDIS_TIMEOUT_S": "1"}
    with daphne_running(env=env, port=free_port, log=tmp_path / "daphne.log"):
        call = str(uuid.uuid4())
        with override_settings(TOM_JWT_SECRET=SECRET):  # the server's secret
            url = f"ws://127.0.0.1:{free_port}/ws/fork/?token={fork_token_mint(call_uuid=call)}"
        started = time.monotonic()
        status = asyncio.run(_handshake(url))
        elapsed = time.monotonic() - started
        assert status == 403
        assert elapsed < 5, elapsed  # bounded by the timeouts, not hung
        assert _refusals(free_port).endswith(" 1.0")
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()
