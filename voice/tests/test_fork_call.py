from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from voice.client import write_wav
from voice.signals import voiced
from voice.tests.conftest import LiveServer

pytestmark = pytest.mark.slow


async def test_fork_call_plays_a_scripted_conversation_with_an_interruption(
        live_server_echo: LiveServer, tmp_path: Path) -> None:
    long_turn, interruption = tmp_path / "long.wav", tmp_path / "barge.wav"
    write_wav(long_turn, voiced(16000, 2.0), 16000)  # any rate: resampled to the call's
    write_wav(interruption, voiced(16000, 0.6, freq=190), 16000)
    heard = tmp_path / "heard.wav"
    out = StringIO()
    await sync_to_async(call_command)(
        "fork_call", f"{long_turn}@0.9", f"{interruption}@1.5", "--url",
        f"ws://127.0.0.1:{live_server_echo.port}", "--telephone", "--json", "--out", str(heard),
        stdout=out)
    report = json.loads(out.getvalue())
    assert report["close_code"] == 1000 and report["errors"] == []
    assert len(report["kills"]) == 1  # the second utterance cut the echo of the first
    assert [t["turn"] for t in report["transcripts"]] == [1, 2]
    assert heard.stat().st_size > 44


def test_fork_call_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"missing\.wav"):
        call_command("fork_call", str(tmp_path / "missing.wav"), "--url", "ws://127.0.0.1:9")
    with pytest.raises(CommandError, match=r"could not reach|fork call failed"):
        call_command("fork_call", "--url", "ws://127.0.0.1:9", "--fast")
