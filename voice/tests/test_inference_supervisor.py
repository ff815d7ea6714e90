"""The llama-server supervisor and the host's one-server rule, without a model.

A stand-in server (a few lines of Python that answer /health and a chat completion like
llama-server) lets these run anywhere in seconds; test_inference_process.py runs the
same paths with the real llama-server and model."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO
from voice import backends
from voice.inference import server
from voice.inference.backend import LlamaServerLlm
from voice.inference.host import HostServer
from voice.inference.supervisor import ServerSupervisor
from voice.llm_deltas import TextDelta

STAND_IN = textwrap.dedent('''\
    #!{python}
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    port = int(sys.argv[sys.argv.index("--port") + 1])
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def _send(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            self._send({{"status": "ok"}})
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if not body.get("stream"):
                return self._send({{"choices": [{{"message": {{"content": "Hi"}}}}]}})
            self.send_response(200)  # chunked, as llama-server streams
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            delta = {{"choices": [{{"delta": {{"content": "Hi"}}}}]}}
            self._chunk(b"data: " + json.dumps(delta).encode() + b"\\n\\n")
            if "hang" in json.dumps(body):  # generating until someone kills it
                time.sleep(600)
            self._chunk(b"data: [DONE]\\n\\n")
            self._chunk(b"")
        def _chunk(self, data):
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(data), data))
            self.wfile.flush()
        def log_message(self, *args):
            pass
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
''')


@pytest.fixture
def stand_in(tmp_path: Path, settings: Any) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    settings.TOM_LLM_SERVER_BIN = str(path)
    return path


def test_the_alias_names_the_server_backend_and_its_check_says_what_is_missing(
        settings: Any, tmp_path: Path) -> None:
    assert backends.backend_class("llm", spec="llamacpp-server") is LlamaServerLlm
    settings.TOM_LLM_SERVER_URL = ""
    settings.TOM_LLM_SERVER_BIN = str(tmp_path / "nowhere")
    assert "voice.E020" in {m.id for m in LlamaServerLlm.check()}
    settings.TOM_LLM_SERVER_URL, settings.ALLOW_EGRESS = "http://llm.example.com:8090", False
    assert {m.id for m in LlamaServerLlm.check()} == {"voice.E012"}  # no binary needed there


def test_each_slot_keeps_the_in_process_context(settings: Any) -> None:
    settings.TOM_LLM_PARALLEL, settings.TOM_LLM_CONTEXT_TOKENS = 3, 2048
    argv = server.server_argv(binary=Path("/x/llama-server"), port=9)
    assert argv[argv.index("--parallel") + 1] == "3"
    assert argv[argv.index("--ctx-size") + 1] == str(3 * 2048)  # split evenly per slot
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and "--jinja" in argv


def test_a_killed_server_is_restarted_and_its_death_said_in_words(
        stand_in: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ready: queue.Queue[int] = queue.Queue()
    port = server.free_port()
    supervisor = ServerSupervisor(argv=server.server_argv(binary=stand_in, port=port),
                                  url=f"http://127.0.0.1:{port}", log_path=tmp_path / "s.log",
                                  start_timeout_s=30, on_ready=ready.put)
    caplog.set_level(logging.INFO, logger="voice.inference.supervisor")
    supervisor.start()
    try:
        first = ready.get(timeout=30)
        os.kill(first, signal.SIGKILL)
        second = ready.get(timeout=30)  # told by the supervisor once it answers again
        assert second != first and supervisor.restarts == 1
        assert supervisor.wait_ready(1) == f"http://127.0.0.1:{port}"
        died = [r for r in caplog.records if r.getMessage() == "inference.server_died"]
        assert [r.pid for r in died] == [first]  # type: ignore[attr-defined]
        assert died[0].reason.startswith("killed by SIGKILL")  # type: ignore[attr-defined]
    finally:
        supervisor.stop()
    assert supervisor.pid is None


def test_a_turn_cut_by_a_crash_fails_and_the_next_turn_is_answered(
        stand_in: Path, tmp_path: Path, settings: Any) -> None:
    settings.TOM_DATA_DIR, settings.TOM_LLM_SERVER_URL = tmp_path, ""
    settings.TOM_PROVIDER_TIMEOUT_S = 30.0
    # The stand-in serves no model, but the backend looks for the file before it starts one.
    settings.TOM_LLM_MODEL_PATH = str(tmp_path / "stand-in.gguf")
    (tmp_path / "stand-in.gguf").write_bytes(b"GGUF")
    llm = LlamaServerLlm.from_settings()
    assert isinstance(llm, LlamaServerLlm) and llm.host.owner
    cancel = threading.Event()
    stream = llm.stream([{"role": "user", "content": "hang"}], cancel=cancel)
    assert next(stream) == TextDelta("Hi")  # mid-generation
    state = llm.host.state()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    with pytest.raises(httpx.TransportError):  # this turn fails (and so apologises) ...
        list(stream)
    # ... and the next one waits for the restarted server and is answered.
    assert list(llm.stream([{"role": "user", "content": "again"}], cancel=cancel)) == [
        TextDelta("Hi")]
    restarted = llm.host.state()
    assert restarted is not None and restarted.pid != state.pid and restarted.restarts == 1
    assert llm.host.supervisor is not None
    llm.host.supervisor.stop()


OWNER = textwrap.dedent('''\
    import sys
    import django
    django.setup()
    from pathlib import Path
    from voice.inference.host import HostServer
    run = Path(sys.argv[1])
    host = HostServer(run_dir=run, log_path=run / "llm.log", port=0, start_timeout_s=30)
    print(host.endpoint(timeout=30), flush=True)
    sys.stdin.read()  # until the test kills this process
''')


def test_the_hosts_other_processes_share_the_server_and_take_it_over(
        stand_in: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tomsite.settings",
           "TOM_LLM_SERVER_BIN": str(stand_in), "PYTHONPATH": str(REPO)}
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(run)], cwd=REPO, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert owner.stdout is not None
    peer = HostServer(run_dir=run, log_path=run / "llm.log", port=0, start_timeout_s=30)
    try:
        url = owner.stdout.readline().decode().strip()
        assert peer.endpoint(timeout=5) == url and not peer.owner
        # The owning web process dies without a word: its server goes with it, the lock is
        # free, and the next turn of this process starts the host's server itself.
        owner.kill()
        owner.wait()
        peer.unreachable()
        taken = peer.endpoint(timeout=30)
        assert peer.owner and server.health_ok(taken)
        state = peer.state()
        assert state is not None and state.owner_pid == os.getpid() and state.url == taken
    finally:
        owner.kill()
        owner.wait()
        if peer.supervisor is not None:
            peer.supervisor.stop()


def test_the_install_check_runs_the_binary_and_says_how_it_died(tmp_path: Path) -> None:
    from voice.native_check import native_checks_run

    illegal = tmp_path / "llama-server"
    illegal.write_text("#!/bin/sh\nkill -ILL $$\n")  # as a build for another CPU dies
    illegal.chmod(0o755)
    report = native_checks_run(names=["llm_server"], env={
        "TOM_LLM_SERVER_BIN": str(illegal), "TOM_LLM_BACKEND": "llamacpp"})
    assert not report.ok
    (failure,) = report.failures()
    assert "killed by SIGILL (illegal instruction" in failure and "_llama_server.sh" in failure
