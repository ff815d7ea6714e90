"""One llama-server per host, shared by every web process of the host (and, with another
``ServerSpec``, one speech server: voice.speech).

The first process that needs it takes an exclusive ``flock`` on
``TOM_DATA_DIR/run/llm-server.lock`` and supervises the server as its child; it writes
the server's address to ``llm-server.json`` beside the lock each time the server is
ready. The others read that address and use the same server. The kernel drops the lock
when its owner exits, however it exits, and the next process that asks takes it over
(the old server dies with its owner: voice.inference.supervisor). With
``TOM_LLM_SERVER_URL`` set nobody starts one: the server there is used as it is.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from voice.inference import server
from voice.inference.server import LLM_SPEC, InferenceUnavailable
from voice.inference.spec import ServerSpec
from voice.inference.supervisor import ServerSupervisor

logger = logging.getLogger(__name__)

LOCK_NAME = LLM_SPEC.lock_name
STATE_NAME = LLM_SPEC.state_name
# A peer's server is in another process, which cannot tell this one when it is back:
# its health is asked this often while a turn waits for it.
PEER_INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the owner wrote when its server was last ready."""

    url: str
    pid: int  # the server process
    owner_pid: int  # the web process supervising it
    restarts: int


class HostServer:
    """Where this process's requests to the ``spec``'s server go, starting the host's
    server if nobody has."""

    def __init__(self, *, run_dir: Path, log_path: Path, port: int, start_timeout_s: float,
                 external_url: str = "", spec: ServerSpec = LLM_SPEC) -> None:
        self.run_dir, self.log_path, self.port, self.spec = run_dir, log_path, port, spec
        self.start_timeout_s, self.external_url = start_timeout_s, external_url.rstrip("/")
        self.supervisor: ServerSupervisor | None = None
        self._lock_fd: int | None = None
        self._guard = threading.Lock()
        self._peer_ok = ""  # a peer's URL that answered; asked again after a failure

    @property
    def owner(self) -> bool:
        return self.supervisor is not None

    def endpoint(self, *, timeout: float) -> str:
        """The base URL (no ``/v1``) of a ready server; ``InferenceUnavailable`` saying why
        when none is ready within ``timeout`` seconds."""
        if self.external_url:
            return self.external_url
        deadline = time.monotonic() + timeout
        while True:
            if (supervisor := self._take_over()) is not None:
                return supervisor.wait_ready(max(0.0, deadline - time.monotonic()))
            state = self.state()
            if state is not None and (state.url == self._peer_ok
                                      or self.spec.health(state.url)):
                self._peer_ok = state.url
                return state.url
            if time.monotonic() >= deadline:
                owner = f" (owned by pid {state.owner_pid})" if state else ""
                raise InferenceUnavailable(
                    f"the host's {self.spec.name}{owner} was not ready within {timeout:.0f} s; "
                    f"see {self.log_path}")
            time.sleep(PEER_INTERVAL_S)

    def unreachable(self) -> None:
        """A request to the server failed: the next turn asks whether it is back."""
        self._peer_ok = ""
        if self.supervisor is not None:
            self.supervisor.suspect()

    def state(self) -> ServerState | None:
        """The owner's last word on the server, or None before any was ready."""
        try:
            data: dict[str, Any] = json.loads((self.run_dir / self.spec.state_name).read_text())
            return ServerState(url=str(data["url"]), pid=int(data["pid"]),
                               owner_pid=int(data["owner_pid"]),
                               restarts=int(data["restarts"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _take_over(self) -> ServerSupervisor | None:
        """This process's supervisor of the server, taking the lock if it is free; None
        while another process of the host holds it."""
        with self._guard:
            if self.supervisor is not None:
                return self.supervisor
            port = self.port or server.free_port()
            argv = self.spec.argv(port)  # InferenceUnavailable when there is nothing to run
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run_dir / self.spec.lock_name, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None  # another process of this host supervises it
            self._lock_fd = fd  # held open, and so locked, for the life of this process
            url = f"http://127.0.0.1:{port}"
            supervisor = ServerSupervisor(
                argv=argv, url=url, log_path=self.log_path,
                start_timeout_s=self.start_timeout_s, spec=self.spec,
                on_ready=lambda pid: self._write_state(url=url, pid=pid))
            logger.info("inference.server_owned", extra={"server": self.spec.name, "url": url,
                                                         "owner_pid": os.getpid()})
            supervisor.start()
            self.supervisor = supervisor
            return supervisor

    def _write_state(self, *, url: str, pid: int) -> None:
        restarts = self.supervisor.restarts if self.supervisor is not None else 0
        data = {"url": url, "pid": pid, "owner_pid": os.getpid(), "restarts": restarts}
        partial = self.run_dir / f"{self.spec.state_name}.{os.getpid()}"
        partial.write_text(json.dumps(data))
        partial.replace(self.run_dir / self.spec.state_name)  # readers never see half a file


_servers: dict[tuple[Any, ...], HostServer] = {}
_servers_guard = threading.Lock()


def host_server() -> HostServer:
    """This process's view of the host's llama-server for the current settings."""
    data_dir = Path(settings.TOM_DATA_DIR)
    key = (str(data_dir), settings.TOM_LLM_SERVER_URL, settings.TOM_LLM_SERVER_PORT,
           settings.TOM_LLM_SERVER_START_TIMEOUT_S)
    with _servers_guard:
        if key not in _servers:
            _servers[key] = HostServer(
                run_dir=data_dir / "run", log_path=data_dir / "log" / "llm-server.log",
                port=settings.TOM_LLM_SERVER_PORT,
                start_timeout_s=settings.TOM_LLM_SERVER_START_TIMEOUT_S,
                external_url=settings.TOM_LLM_SERVER_URL)
        return _servers[key]
