"""One server (llama-server, or TOM's speech server: a ``ServerSpec``) as a child of this
process: started, watched, restarted, stopped.

A thread owns the child. It starts it, waits until its model is loaded and one warm-up
completion ran (ready means warm, after every restart too), then blocks in ``wait()``
until the child exits: the kernel tells it, nothing polls. An exit is logged in words
(``tomsite.runner.exit_reason``: "killed by SIGILL (illegal instruction: ...)"), counted in
``tom_errors_total{component=...}`` (the spec's), and followed by a restart after the
runner's back-off. Unlike ``tom_run``'s supervisor it never gives up: without its LLM the web
process could only apologise, so a crash loop is logged as an error and retried at the
longest back-off. Callers wait for readiness on an event (``wait_ready``).

The child dies with its parent: ``setpriv --pdeathsig`` asks the kernel to send it
SIGTERM when the thread that started it ends, which covers a web process killed with
SIGKILL (atexit covers the orderly exit).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from tomsite.metrics import error_count
from tomsite.runner import RestartPolicy, exit_reason
from voice.inference.server import LLM_SPEC, InferenceUnavailable
from voice.inference.spec import ServerSpec

logger = logging.getLogger(__name__)

# A dead server costs the turns it was generating; the next turn should find it back.
POLICY = RestartPolicy(max_restarts=5, window_s=300.0, first_backoff_s=0.5, max_backoff_s=30.0)
# llama-server tells nobody when its model is loaded but answers GET /health (503 while
# loading, 200 once ready): asked this often, with the child's own exit checked between.
HEALTH_INTERVAL_S = 0.1
STOP_TIMEOUT_S = 10.0


class ServerSupervisor:
    """Runs ``argv`` (the ``spec``'s server, listening at ``url``) and keeps it running."""

    def __init__(self, *, argv: list[str], url: str, log_path: Path, start_timeout_s: float,
                 policy: RestartPolicy = POLICY,
                 on_ready: Callable[[int], None] | None = None,
                 spec: ServerSpec = LLM_SPEC) -> None:
        self.argv, self.url, self.log_path, self.spec = argv, url, log_path, spec
        self.start_timeout_s, self.policy, self.on_ready = start_timeout_s, policy, on_ready
        self.restarts = 0
        self.last_exit = ""  # the last death in words, for the turns that wait meanwhile
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._deaths: deque[float] = deque()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start the child and its watcher thread (idempotent); returns at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"{self.spec.name}-supervisor",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def wait_ready(self, timeout: float) -> str:
        """The server's URL once it is ready; ``InferenceUnavailable`` (saying why) when it
        is not within ``timeout`` seconds."""
        if self._ready.wait(timeout):
            return self.url
        why = f"; it last {self.last_exit}" if self.last_exit else ""
        raise InferenceUnavailable(
            f"{self.spec.name} at {self.url} was not ready within {timeout:.0f} s{why}; "
            f"see {self.log_path}")

    def suspect(self) -> None:
        """A request to the server failed: it is not ready until ``/health`` says so.

        A killed server is noticed by the watcher thread a moment later; a turn that
        starts in that moment must wait for the restart, not be sent to the dead one.
        """
        self._ready.clear()
        if not self._stopping.is_set() and self.spec.health(self.url):
            self._ready.set()  # it answers: the failure was that request's own

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and do not restart it."""
        self._stopping.set()
        self._ready.clear()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- the watcher thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                process = self._spawn()
            except OSError as exc:  # the binary vanished or cannot run: a death too
                self.last_exit = f"could not be started: {exc}"
                logger.error("inference.server_unstartable", extra={"error": str(exc)})
                self._stopping.wait(self._backoff())
                continue
            started = time.monotonic()
            if self._became_ready(process):
                if self.on_ready is not None:  # before the turns waiting for it go on
                    try:
                        self.on_ready(process.pid)
                    except Exception:  # the server is fine; the watcher must live on
                        logger.exception("inference.on_ready_failed")
                self._ready.set()
                logger.info("inference.server_ready", extra={
                    "server": self.spec.name, "pid": process.pid, "url": self.url,
                    "restarts": self.restarts, "seconds": round(time.monotonic() - started, 2)})
            elif process.poll() is None:  # alive but never ready: treat it as hung
                logger.error("inference.server_start_timeout",
                             extra={"server": self.spec.name, "pid": process.pid,
                                    "timeout_s": self.start_timeout_s})
                process.kill()
            returncode = process.wait()
            self._ready.clear()
            if self._stopping.is_set():
                return
            self._died(process.pid, returncode)
            self._stopping.wait(self._backoff())

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Ask the kernel to end the child with this thread (and so with this process),
        # where util-linux's setpriv is there to ask (Debian: always).
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        # The model servers share the cores with each other and with the web processes:
        # OpenMP threads that spin while they wait for work (CTranslate2's, ggml's) take
        # them from the others. bench/capacity.py, one run on 2 cores, two callers at once:
        # p50 1.69x the single caller's with passive waiting, 2.19x without.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603  (our own binary and arguments)
                [*guard, *self.argv], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.spec.cwd, env=env)
        self._process = process
        logger.info("inference.server_started", extra={
            "server": self.spec.name, "pid": process.pid, "url": self.url,
            "restarts": self.restarts})
        return process

    def _became_ready(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None or self._stopping.is_set():
                return False
            if self.spec.health(self.url):
                if self.spec.warm_up is None:  # the server warmed itself before answering
                    return True
                try:
                    self.spec.warm_up(self.url, max(1.0, deadline - time.monotonic()))
                except Exception:  # a server that cannot complete a prompt is not ready
                    logger.warning("inference.server_warm_up_failed", exc_info=True,
                                   extra={"server": self.spec.name, "pid": process.pid})
                    return False
                return True
            self._stopping.wait(HEALTH_INTERVAL_S)
        return False

    def _died(self, pid: int, returncode: int) -> None:
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self.policy.window_s:
            self._deaths.popleft()
        self.last_exit = exit_reason(returncode)
        self.restarts += 1
        error_count(component=self.spec.component)
        crash_loop = len(self._deaths) > self.policy.max_restarts
        (logger.error if crash_loop else logger.warning)(
            "inference.server_died", extra={
                "server": self.spec.name, "pid": pid, "returncode": returncode,
                "reason": self.last_exit, "deaths_in_window": len(self._deaths),
                "crash_loop": crash_loop, "restart_in_s": self._backoff(),
                "log": str(self.log_path)})

    def _backoff(self) -> float:
        return self.policy.backoff(max(len(self._deaths), 1))
