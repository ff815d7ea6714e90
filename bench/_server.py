"""What the benchmarks share: a TOM data folder on the embedded default, one daphne process.

``repo`` is the source tree whose ``manage.py`` and ``tomsite`` are run (default: the one
this folder belongs to), so one bench can measure an older checkout of TOM, e.g. one
unpacked with ``git archive <ref> | tar -x -C DIR``.
"""

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


def use_repo(repo: Path) -> Path:
    """Make ``repo``'s packages win imports in this process (before Django is set up)."""
    repo = repo.resolve()
    if not (repo / "manage.py").is_file():
        raise SystemExit(f"{repo} holds no manage.py: not a TOM source tree")
    sys.path.insert(0, str(repo))
    return repo


def embedded_env(*, repo: Path = REPO, data: Path | None = None,
                 **settings: str) -> dict[str, str]:
    """The environment for a fresh embedded-default TOM (migrated), plus ``settings``.

    ``data``: the TOM_DATA_DIR to use (created; default a new temporary folder).
    """
    if data is None:
        data = Path(tempfile.mkdtemp(prefix="tom-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    # PYTHONPATH: the server and manage.py import ``repo``'s code even where an editable
    # install of another checkout sits in the interpreter's site-packages.
    env = {**os.environ, "TOM_DATA_DIR": str(data), "TOM_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(repo), **settings}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=repo, env=env,
                   check=True)
    return env


def models_shared(env: dict[str, str], *, repo: Path = REPO, cache: Path | None = None) -> None:
    """Assemble the models once under ``cache`` and link them into ``env``'s data folder.

    Joining the packaged parts costs a minute and a gigabyte per fresh folder; the
    assembled files are the same for every run. ``cache`` defaults to TOM_BENCH_MODELS,
    else ``tom-bench-models`` in the temporary folder.
    """
    if cache is None:
        cache = Path(os.environ.get("TOM_BENCH_MODELS")
                     or Path(tempfile.gettempdir()) / "tom-bench-models")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "manage.py", "tom_models"], cwd=repo,
                   env={**env, "TOM_DATA_DIR": str(cache)}, check=True,
                   stdout=subprocess.DEVNULL)
    link = Path(env["TOM_DATA_DIR"]) / "models"
    if not link.exists():
        link.symlink_to(cache / "models", target_is_directory=True)


def start_server(env: dict[str, str], *,
                 repo: Path = REPO) -> tuple[subprocess.Popen[bytes], int]:
    """Start one daphne process serving TOM and wait until /healthz answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tomsite.serve", "-b", "127.0.0.1", "-p",
                               str(port), "--access-log", os.devnull,
                               "tomsite.asgi:application"], cwd=repo, env=env)
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
