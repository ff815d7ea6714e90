"""Run TOM's three processes (daphne, Celery worker, Celery beat) side by side.

Used by ``manage.py tom_run`` for the embedded default and demos; production runs the
same three commands under systemd (deploy/systemd). Each child's output goes to
``TOM_DATA_DIR/log/<name>.log``; readiness is judged from what the child really did
(the admin answers, the worker ran a task, beat started its scheduler), not from
the process merely existing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


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


def build_children(*, host: str, port: int, log_dir: Path, concurrency: int,
                   tls: tuple[str, str] | None) -> list[Child]:
    python = sys.executable
    if tls:
        cert, key = tls
        endpoint = ["-e", f"ssl:{port}:interface={host}:privateKey={key}:certKey={cert}"]
    else:
        endpoint = ["-b", host, "-p", str(port)]
    return [
        Child("web", [python, "-m", "tomsite.serve", *endpoint, "--proxy-headers",
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
