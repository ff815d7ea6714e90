from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from calls.models import Call
from conftest import REPO
from tomsite.serve import QuerylessAccessLog
from voice.auth import fork_token_mint
from voice.client import ForkClient, Segment
from voice.signals import voiced
from voice.tests.conftest import _database_url
from voice.tests.test_bridge_live import ended_call


def test_access_log_drops_query_strings() -> None:
    stream = io.StringIO()
    log = QuerylessAccessLog(stream)
    log("http", "complete", {"client": ["127.0.0.1", 5000], "method": "GET",
                             "path": "/admin/calls/call/?q=%2B493098765432", "status": 302,
                             "size": 0})
    log("websocket", "connecting", {"client": ["127.0.0.1", 5001],
                                    "path": "/ws/fork/?token=eyJhbGciOi.secret"})
    text = stream.getvalue()
    assert "/admin/calls/call/ " in text.replace('"', " ") and "WSCONNECTING /ws/fork/" in text
    assert "493098765432" not in text and "token" not in text and "eyJ" not in text


@pytest.fixture
def served(transactional_db: None, settings: Any, free_port: int,
           tmp_path: Path) -> Iterator[int]:
    """``python -m tomsite.serve`` (as tom_run and systemd start it) on the test database."""
    env = {**os.environ, "DATABASE_URL": _database_url(), "TOM_SESSION_BACKEND": "echo",
           "TOM_JWT_SECRET": settings.TOM_JWT_SECRET, "SECRET_KEY": settings.SECRET_KEY,
           "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY, "TOM_LOG_LEVEL": "WARNING",
           "TOM_MAX_FRAME_BYTES": "65536"}
    connections.close_all()
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tomsite.serve", "-b", "127.0.0.1", "-p", str(free_port),
             "tomsite.asgi:application"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{free_port}/healthz", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text(errors="replace")) from None
                time.sleep(0.2)
        yield free_port
    finally:
        server.terminate()
        server.wait(10)


def _frame(opcode: int, payload: bytes, *, length: int | None = None) -> bytes:
    """A masked client frame (RFC 6455 5.2); ``length`` may announce more than is sent."""
    size = len(payload) if length is None else length
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed without a close frame")
            data += chunk
        return data

    first, second = exactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exactly(8))[0]
    return first & 0x0F, exactly(size)


@pytest.mark.slow
def test_frames_over_the_limit_are_refused_before_they_are_read(served: int) -> None:
    call_uuid = str(uuid.uuid4())
    sock = socket.create_connection(("127.0.0.1", served), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws/fork/?token={fork_token_mint(call_uuid=call_uuid)} HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{served}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: audio.drachtio.org\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.sendall(_frame(0x1, json.dumps({"uuid": call_uuid, "sampleRate": 8000}).encode()))
    # A frame that announces 500 KB (under daphne's own 1 MiB default), of which only
    # 1 KB is sent: refused from its header, not read, buffered and queued first.
    sock.sendall(_frame(0x2, bytes(1000), length=500_000))
    sock.settimeout(3)
    opcode, payload = _read_frame(sock)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009, payload
    sock.sendall(_frame(0x8, payload[:2]))  # the close handshake, as any client replies
    sock.close()
    call = asyncio.run(ended_call(call_uuid))
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.FRAME_TOO_LARGE)


@pytest.mark.slow
def test_agent_audio_larger_than_the_inbound_limit_still_goes_out(served: int) -> None:
    # autobahn applies its message limit to sends too: a 3 s echo at 16 kHz is one
    # playAudio message of 128 KB, twice TOM_MAX_FRAME_BYTES.
    call_uuid = str(uuid.uuid4())
    report = asyncio.run(ForkClient(
        url=f"ws://127.0.0.1:{served}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
        metadata={"uuid": call_uuid, "sampleRate": 16000}, rate=16000,
        segments=[Segment(voiced(16000, 3.0), pause_s=1.0)]).run())
    assert report.errors == [] and report.close_code == 1000
    assert len(report.playbacks) == 1 and len(report.playbacks[0].pcm) > 65536
