from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import CommandError, call_command

from calls.models import Call
from conftest import REPO
from voice.auth import fork_token_mint
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


# --- a call that goes wrong is never silent -------------------------------------------


def child_pid(*, parent: int, marker: str, port: int) -> int:
    """The process ``parent`` started whose command line names ``marker`` and ``port``.

    The live-server fixture keeps its daphne's Popen to itself; the kernel knows the pid.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and any(
                marker in arg for arg in argv) and str(port) in argv:
            return int(entry.name)
    raise AssertionError(f"no {marker} on port {port} among the children of {parent}")


def _fork_call_process(server: LiveServer, *args: str) -> subprocess.Popen[str]:
    """``manage.py fork_call`` as its own process, to see its exit code and its words."""
    env = {**os.environ, "TOM_JWT_SECRET": settings.TOM_JWT_SECRET,
           "SECRET_KEY": settings.SECRET_KEY, "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY}
    return subprocess.Popen(
        [sys.executable, "manage.py", "fork_call", *args, "--url",
         f"ws://127.0.0.1:{server.port}"], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_call(timeout: float = 60) -> None:
    """Until the server has recorded the call (it read the metadata): the call is live."""
    deadline = time.monotonic() + timeout
    while not Call.objects.exists():
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.1)


def test_fork_call_names_the_close_code_and_the_servers_error(
        live_server_echo: LiveServer, tmp_path: Path) -> None:
    # A token for another call: TOM refuses the metadata with an error message and 1007.
    wav = tmp_path / "hello.wav"
    write_wav(wav, voiced(8000, 0.5), 8000)
    token = fork_token_mint(call_uuid="another-call")
    with pytest.raises(CommandError) as failed:
        call_command("fork_call", str(wav), "--token", token, "--uuid", "this-call", "--fast",
                     "--url", f"ws://127.0.0.1:{live_server_echo.port}", stdout=StringIO())
    message = str(failed.value)
    assert "TOM closed the call with 1007 (invalid payload" in message
    assert "TOM sent an error: metadata uuid differs from the token's call" in message
    assert str(Path(settings.TOM_DATA_DIR) / "log" / "web.log") in message


def test_fork_call_with_a_given_token_places_the_call_that_token_names(
        live_server_echo: LiveServer, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    write_wav(wav, voiced(8000, 0.5), 8000)
    out = StringIO()
    call_command("fork_call", str(wav), "--token", fork_token_mint(call_uuid="minted-call"),
                 "--url", f"ws://127.0.0.1:{live_server_echo.port}", stdout=out)
    assert "call minted-call: closed with 1000" in out.getvalue()
    assert Call.objects.get(uuid="minted-call").end_reason == Call.EndReason.GRACEFUL_SHUTDOWN


def test_fork_call_says_the_connection_dropped_when_the_server_dies(
        live_server_echo: LiveServer, tmp_path: Path) -> None:
    wav = tmp_path / "long.wav"
    write_wav(wav, voiced(8000, 4.0), 8000)
    caller = _fork_call_process(live_server_echo, str(wav))
    try:
        _wait_for_call()
        os.kill(child_pid(parent=os.getpid(), marker="daphne", port=live_server_echo.port),
                signal.SIGKILL)
        out, err = caller.communicate(timeout=60)
    finally:
        caller.kill()
    assert caller.returncode == 1, out + err
    assert "closed with 1006 (abnormal closure: the connection dropped" in out
    assert "the connection to TOM dropped mid-call without a close frame (1006)" in err
    assert "the web process died or restarted" in err
    assert "web.log" in err


def test_fork_call_fails_when_nothing_answers(live_server_echo: LiveServer,
                                             tmp_path: Path) -> None:
    # Silence: the echo session hears no utterance and says nothing; the call closes 1000.
    wav = tmp_path / "silence.wav"
    write_wav(wav, bytes(8000 * 2), 8000)
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("fork_call", str(wav), "--pause", "1", "--url",
                     f"ws://127.0.0.1:{live_server_echo.port}", stdout=out)
    assert "closed with 1000 (normal closure)" in out.getvalue()
    assert "no answer: TOM sent no agent audio in the" in str(failed.value)
    # Said outright, a silent call is accepted.
    call_command("fork_call", str(wav), "--pause", "1", "--no-answer-ok", "--url",
                 f"ws://127.0.0.1:{live_server_echo.port}", stdout=StringIO())


def test_fork_call_gives_up_on_a_server_that_stops_responding(
        live_server_echo: LiveServer, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    write_wav(wav, voiced(8000, 1.0), 8000)
    caller = _fork_call_process(live_server_echo, str(wav), "--pause", "0.5", "--wait", "2")
    server = child_pid(parent=os.getpid(), marker="daphne", port=live_server_echo.port)
    try:
        _wait_for_call()
        os.kill(server, signal.SIGSTOP)  # alive, connected, silent: a hung web process
        out, err = caller.communicate(timeout=60)
    finally:
        os.kill(server, signal.SIGCONT)
        caller.kill()
    assert caller.returncode == 1, out + err
    assert "TOM did not end the call within 2 s after the caller hung up" in err
    assert "web.log" in err


@pytest.mark.models  # the demo caller's question is spoken by the packaged Piper voice
def test_the_run_commands_demo_call_fails_loudly_when_the_web_process_dies(
        python: str, clean_env: dict[str, str], free_port: int) -> None:
    env = {**clean_env, "TOM_SESSION_BACKEND": "echo"}
    migrate = subprocess.run([python, "manage.py", "migrate", "--no-input", "-v", "0"],
                             cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert migrate.returncode == 0, migrate.stderr
    run = subprocess.Popen(
        [python, "manage.py", "tom_run", "--port", str(free_port), "--exit-when-ready",
         "--demo-call"], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        database = Path(env["TOM_DATA_DIR"]) / "tom.sqlite3"
        deadline = time.monotonic() + 240
        while not _calls_in(database):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the demo call never started"
            time.sleep(0.2)
        web = child_pid(parent=run.pid, marker="tomsite.serve", port=free_port)
        os.kill(web, signal.SIGKILL)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 1, out + err
    assert "demo call: a caller asks" in out
    assert "the demo call failed" in err
    assert "the connection to TOM dropped mid-call without a close frame (1006)" in err
    assert f"the web process (pid {web}) died: killed by SIGKILL" in err
    assert f"see the web log: {Path(env['TOM_DATA_DIR']) / 'log' / 'web.log'}" in err


def _calls_in(database: Path) -> int:
    """Calls the run command's web process has recorded (read from its SQLite file)."""
    import sqlite3
    from contextlib import closing

    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)) as db:
            return int(db.execute("SELECT COUNT(*) FROM calls_call").fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked by a writer for a moment
        return 0
