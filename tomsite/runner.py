"""Run TOM's three processes (daphne, Celery worker, Celery beat) side by side.

Used by ``manage.py tom_run`` for the embedded default and demos; production runs the
same three commands under systemd (deploy/systemd). Each child's output goes to
``TOM_DATA_DIR/log/<name>.log``; readiness is judged from what the child really did
(the admin answers, the worker ran a task, beat started its scheduler), not from
the process merely existing. Once all are ready, a ``Supervisor`` restarts a child that
dies, says why (the signal or the exit code) on the runner's output and in the child's
log, backs off between restarts and gives up on a crash loop.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


class RunnerError(RuntimeError):
    """A child did not become ready or died; the message names it and its log."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, *, cwd: Path, detach: bool) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        for folder in (v for k, v in self.env.items() if k == "PROMETHEUS_MULTIPROC_DIR"):
            shutil.rmtree(folder, ignore_errors=True)  # counts of an earlier run are stale
            Path(folder).mkdir(parents=True)
        self.process = subprocess.Popen(  # noqa: S603  (our own interpreter and modules)
            self.argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=detach,
            env={**os.environ, **self.env},
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self, *, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(since)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def note(self, message: str) -> None:
        """Write the runner's own line into the child's log, beside the child's output."""
        if self._log is None or self._log.closed:
            return
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self._log.write(f"{stamp} [runner] {message}\n".encode())
        self._log.flush()

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


# What a signal that killed one of TOM's processes usually means (signal(7)): one table for
# the runner's restart messages and the install's native-library check (voice/native_check).
SIGNAL_MEANINGS = {
    signal.SIGILL: "illegal instruction: a compiled library uses CPU instructions this CPU "
                   "cannot run (built for another CPU, e.g. -march=native, AVX-512 or AMX)",
    signal.SIGSEGV: "segmentation fault: a compiled library touched memory it does not own "
                    "(a broken build, mismatched libraries or a corrupt model file)",
    signal.SIGBUS: "bus error: a memory-mapped file was cut short or changed under it "
                   "(a model file rewritten while in use, or a full disk)",
    signal.SIGABRT: "aborted: a compiled library stopped on an internal assertion "
                    "(its message is in the output or log)",
    signal.SIGFPE: "arithmetic exception inside a compiled library",
    signal.SIGKILL: "killed: usually the kernel's out-of-memory killer (see `dmesg`) or a "
                    "kill -9",
    signal.SIGTERM: "terminated: another process asked it to stop",
}


def exit_reason(returncode: int) -> str:
    """A child's exit status in words: the signal that ended it, or its exit code."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    try:
        sig = signal.Signals(number) if number else None
    except ValueError:
        sig = None
    if sig is None:
        return f"exited with code {returncode}"
    hint = f" ({SIGNAL_MEANINGS[sig]})" if sig in SIGNAL_MEANINGS else ""
    if returncode < 0:
        return f"killed by {sig.name}{hint}"
    # A shell (or a wrapper) in between reports a child killed by a signal as 128 + it.
    return f"exited with code {returncode} (128 + {sig.name}){hint}"


@dataclass(frozen=True)
class RestartPolicy:
    """How often a child may die before the runner gives up, and how long it waits."""

    max_restarts: int = 5  # within window_s; one more death there is a crash loop
    window_s: float = 300.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def backoff(self, deaths: int) -> float:
        """Wait before restarting after the ``deaths``-th death within the window."""
        return min(self.first_backoff_s * 2 ** max(deaths - 1, 0), self.max_backoff_s)


class Supervisor:
    """Restarts children that die, with back-off, until one dies too often.

    ``poll()`` is called in a loop; it never sleeps, so a child waiting out its back-off
    does not keep the others from being watched.
    """

    def __init__(self, children: list[Child], *, cwd: Path, policy: RestartPolicy,
                 say: Callable[[str], None]) -> None:
        self.children, self.cwd, self.policy, self.say = children, cwd, policy, say
        self.restarts = {c.name: 0 for c in children}
        self._deaths: dict[str, deque[float]] = {c.name: deque() for c in children}
        self._due: dict[str, float] = {}  # child name -> when (monotonic) to restart it

    def poll(self, *, now: float | None = None) -> None:
        """Note deaths and restart children whose back-off is over.

        Raises ``RunnerError`` when a child died more than ``max_restarts`` times
        within ``window_s``.
        """
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.name in self._due:
                if now >= self._due[child.name]:
                    del self._due[child.name]
                    self._restart(child)
            elif not child.alive:
                self._died(child, now)

    def _died(self, child: Child, now: float) -> None:
        returncode = child.process.returncode if child.process else 0
        reason = exit_reason(returncode if returncode is not None else 0)
        deaths = self._deaths[child.name]
        deaths.append(now)
        while deaths and deaths[0] < now - self.policy.window_s:
            deaths.popleft()
        logger.warning("runner.child_died", extra={
            "child": child.name, "returncode": returncode, "reason": reason,
            "deaths_in_window": len(deaths), "restarts": self.restarts[child.name]})
        if len(deaths) > self.policy.max_restarts:
            message = (f"{child.name} {reason}; it died {len(deaths)} times within "
                       f"{self.policy.window_s:.0f} s: a crash loop, giving up; "
                       f"see {child.log_path}")
            child.note(message)
            raise RunnerError(message)
        delay = self.policy.backoff(len(deaths))
        self._due[child.name] = now + delay
        message = (f"{child.name} {reason}; restarting in {delay:.0f} s (restart "
                   f"{self.restarts[child.name] + 1}; {len(deaths)} of at most "
                   f"{self.policy.max_restarts} within {self.policy.window_s:.0f} s); "
                   f"see {child.log_path}")
        child.note(message)
        self.say(message)

    def _restart(self, child: Child) -> None:
        child.stop()  # closes the dead child's log handle
        child.start(cwd=self.cwd, detach=False)
        self.restarts[child.name] += 1
        pid = child.process.pid if child.process else None
        child.note(f"{child.name} restarted as pid {pid} (restart {self.restarts[child.name]})")
        logger.info("runner.child_restarted", extra={
            "child": child.name, "pid": pid, "restarts": self.restarts[child.name]})
        self.say(f"{child.name} restarted: pid {pid} (restart {self.restarts[child.name]})")


def build_children(*, host: str, port: int, log_dir: Path, concurrency: int,
                   tls: tuple[str, str] | None) -> list[Child]:
    python = sys.executable
    if tls:
        cert, key = tls
        endpoint = ["-e", f"ssl:{port}:interface={host}:privateKey={key}:certKey={cert}"]
    else:
        endpoint = ["-b", host, "-p", str(port)]
    return [
        Child("web", [python, "-m", "tomsite.serve", *endpoint,
                      "tomsite.asgi:application"], log_dir / "web.log"),
        Child("worker", [python, "-m", "celery", "-A", "tomsite", "worker", "-l", "INFO",
                         "-n", "tom@%h", f"--concurrency={concurrency}"],
              log_dir / "worker.log",
              # Prefork children share their metrics through this folder (tomsite.metrics).
              env={"PROMETHEUS_MULTIPROC_DIR": str(log_dir.parent / "worker-metrics")}),
        Child("beat", [python, "-m", "celery", "-A", "tomsite", "beat", "-l", "INFO",
                       f"--pidfile={log_dir / 'beat.pid'}"], log_dir / "beat.log"),
    ]


def wait_until(what: str, predicate: Callable[[], bool], *, timeout: float,
               children: list[Child]) -> None:
    """Poll ``predicate`` until true; fail early, naming the log, if a child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive:
                raise RunnerError(
                    f"{child.name} exited while waiting for {what}; see {child.log_path}:\n"
                    + child.log_text()[-2000:]
                )
        if predicate():
            return
        time.sleep(0.25)
    raise RunnerError(f"timed out after {timeout:.0f}s waiting for {what}")


def stay_alive(children: list[Child], *, seconds: float) -> None:
    """Fail if any child exits within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive:
                raise RunnerError(f"{child.name} exited right after starting; see "
                                  f"{child.log_path}:\n" + child.log_text()[-2000:])
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own URL)
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError):
        return False


def write_pidfile(path: Path, children: list[Child]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{c.name} {c.process.pid}\n" for c in children if c.process))


def stop_pidfile(path: Path) -> list[str]:
    """Stop the process groups listed in ``path``; return the names stopped."""
    if not path.exists():
        return []
    stopped = []
    for line in path.read_text().splitlines():
        name, _, pid = line.partition(" ")
        try:
            os.killpg(int(pid), signal.SIGTERM)
            stopped.append(name)
        except (ProcessLookupError, ValueError, PermissionError):
            continue
    path.unlink()
    return stopped
