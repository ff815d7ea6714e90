"""A real daphne process with chosen arguments and environment, for tests of what the
server itself does (proxy headers, startup checks, a dead Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO


@dataclass
class Daphne:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def daphne_argv(*, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *extra,
            "tomsite.asgi:application"]


@contextmanager
def daphne_running(*, env: dict[str, str], port: int, log: Path,
                   extra: tuple[str, ...] = (), timeout: float = 60) -> Iterator[Daphne]:
    """Start daphne, wait until it answers HTTP at all, stop it (its group) afterwards."""
    with log.open("ab") as out:
        process = subprocess.Popen(daphne_argv(port=port, extra=extra), cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Daphne(port=port, process=process, log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{server.http}/fork/token?uuid=ready", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer: the server is up
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"daphne exited:\n{server.output()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start:\n{server.output()}") from None
                time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
