"""What differs between the servers a web process supervises as its child.

llama-server (voice.inference) and TOM's own speech server (voice.speech) are started,
watched, restarted and shared per host the same way (voice.inference.supervisor and
host); a ``ServerSpec`` says what is theirs: the command line, how readiness is asked,
the files beside the host lock, and which error metric counts a death.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str  # in log lines and in the words a waiting turn gets: "llama-server"
    component: str  # tom_errors_total{component=...} counts its deaths
    lock_name: str  # under TOM_DATA_DIR/run: whoever holds it supervises the server
    state_name: str  # beside the lock: the ready server's address, pid and restarts
    # The command line for a port; raises InferenceUnavailable (saying why) when there is
    # nothing to run.
    argv: Callable[[int], list[str]]
    health: Callable[[str], bool]  # whether the server at a base URL is ready
    # Run once it is healthy, before it counts as ready: (url, timeout_s). None: the
    # server warms itself before its health check answers.
    warm_up: Callable[[str, float], None] | None = None
    cwd: Path | None = None  # where the child runs; None: this process's directory
