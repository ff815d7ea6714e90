"""A call through the real server, logging JSON: the logs name the call by id and never
carry the caller's number, in any spelling."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from voice.client import ForkClient, Segment
from voice.signals import voiced
from voice.tests.conftest import LiveServer

pytestmark = pytest.mark.slow

RAW = "+49 30 98765432"
SPELLINGS = ("+49 30 98765432", "+493098765432", "03098765432", "030 98765432", "98765432",
             "4930987")


async def test_json_logs_have_the_call_id_and_never_the_number(
        live_server_process: Any, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server: LiveServer = live_server_process(log=log, TOM_LOG_FORMAT="json",
                                             TOM_LOG_LEVEL="INFO", TOM_SESSION_BACKEND="echo")
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid),
                        metadata={"uuid": call_uuid, "sampleRate": 8000, "caller": RAW,
                                  "sip_from_user": "03098765432", "language": "en"},
                        rate=8000, segments=[Segment(voiced(8000, 0.8), pause_s=1.5)])
    report = await client.run()
    assert report.errors == []
    text = log.read_text()
    for spelling in SPELLINGS:
        assert spelling not in text, f"the caller's number ({spelling!r}) is in the logs"
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    started = [e for e in events if e["event"] == "fork.call_started"]
    assert len(started) == 1 and isinstance(started[0]["call_id"], int)
    call_id = started[0]["call_id"]
    assert {"ts", "level", "logger", "event"} <= set(started[0])
    assert [e for e in events if e["event"] == "fork.closed" and e.get("call_id") == call_id]
