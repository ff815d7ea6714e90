"""What the benchmarks share: a TOM data folder on the embedded default, one daphne process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def embedded_env(**settings: str) -> dict[str, str]:
    """The environment for a fresh embedded-default TOM (migrated), plus ``settings``."""
    data = Path(tempfile.mkdtemp(prefix="tom-bench-"))
    env = {**os.environ, "TOM_DATA_DIR": str(data), "TOM_LOG_LEVEL": "WARNING", **settings}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
                   check=True)
    return env


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start one daphne process serving TOM and wait until /healthz answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tomsite.serve", "-b", "127.0.0.1", "-p",
                               str(port), "--access-log", os.devnull,
                               "tomsite.asgi:application"], cwd=REPO, env=env)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server, port
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("daphne exited") from None
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("daphne did not answer /healthz")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
