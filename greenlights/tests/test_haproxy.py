"""Several web processes behind the real load balancer: Debian's HAProxy running
deploy/haproxy/haproxy.cfg in front of two daphne processes (``tomsite.serve``, as
tom-web@.service runs them), calls placed with the project's fork client through HAProxy.

The shipped config is the source of truth: the test changes only the lines that tie it to
a host (its bind, the server ports, the stats socket and log paths, and the chroot and
user, which need root), and fails if one of them is no longer there to change.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from channels.db import database_sync_to_async
from django.db import connections

from calls.models import Call
from conftest import REPO
from voice.client import CallReport, ForkClient, Segment
from voice.tests.conftest import LiveServer, _database_url, voiced

CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
# Linux routes all of 127.0.0.0/8 to loopback: a caller bound to 127.0.0.2 reaches HAProxy
# from an address that is not HAProxy's own (127.0.0.1, the trusted proxy).
CALLER = "127.0.0.2"
FORK_SECRET = "fork-secret-" + "f" * 40
METRICS_TOKEN = "metrics-token-" + "m" * 40


def haproxy_config_render(*, frontend_port: int, backend_ports: list[int],
                          stats_socket: Path) -> str:
    """The shipped config with the frontend on ``frontend_port`` and one server per port."""
    rules = {  # a line's first words -> what it becomes (None: dropped)
        "chroot": None, "user": None, "group": None,  # root only; the test runs as anyone
        "log /dev/log": "log stdout format raw local0",  # HAProxy's output is the test's log
        "stats socket": f"stats socket {stats_socket} mode 600 level admin",
        "bind": f"bind 127.0.0.1:{frontend_port}",
        "server": "\n    ".join(f"server web{port} 127.0.0.1:{port}" for port in backend_ports),
    }
    out, seen = [], Counter[str]()
    for line in CONFIG.read_text().splitlines():
        rule = next((r for r in rules if line.split()[:len(r.split())] == r.split()), None)
        if rule is None:
            out.append(line)
            continue
        seen[rule] += 1
        if rules[rule] is not None and not (rule == "server" and seen[rule] > 1):
            out.append(f"    {rules[rule]}")
    missing = [rule for rule in rules if not seen[rule]]
    assert not missing, f"{CONFIG.name} has no line starting {missing} any more"
    return "\n".join(out) + "\n"


def _haproxy() -> str:
    # Debian installs it in /usr/sbin, which is not on an ordinary user's PATH.
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail("haproxy is missing: deploy/local/test.sh installs it (Debian package)")
    return path


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held open together, so none is handed out twice)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@dataclass
class Web:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


class HAProxy:
    def __init__(self, *, process: subprocess.Popen[bytes], port: int, stats_socket: Path,
                 log: Path) -> None:
        self.process, self.port, self.stats_socket, self.log = process, port, stats_socket, log

    def command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(command.encode() + b"\n")
            return sock.makefile(encoding="utf-8").read()

    def servers(self) -> dict[str, dict[str, str]]:
        """``web<port>`` -> its row of HAProxy's ``show stat`` by column (status, scur...)."""
        header, *lines = self.command("show stat").splitlines()
        names = header.lstrip("# ").split(",")
        rows = [dict(zip(names, line.split(","), strict=False)) for line in lines if line]
        return {row["svname"]: row for row in rows
                if row["pxname"] == "tom_web" and row["svname"] != "BACKEND"}

    def wait(self, expected: dict[str, dict[str, str]], timeout: float = 20) -> None:
        """Until HAProxy reports ``expected`` (server -> column -> value): a server's health
        (``status``: UP, DOWN) or its open connections (``scur``), as HAProxy counts them."""
        deadline = time.monotonic() + timeout
        while True:
            servers = self.servers()
            if all(servers[name][column] == value for name, columns in expected.items()
                   for column, value in columns.items()):
                return
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"HAProxy reports {servers}, not {expected}"
            time.sleep(0.1)

    @property
    def server(self) -> LiveServer:
        return LiveServer("127.0.0.1", self.port)


def _web_start(*, port: int, env: dict[str, str], log: Path) -> Web:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tomsite.serve", "-b", "127.0.0.1", "-p", str(port),
             "tomsite.asgi:application"], cwd=REPO, env=env, stdout=output,
            stderr=subprocess.STDOUT)
    return Web(port=port, process=process, log=log)


def _web_wait_ready(web: Web, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{web.port}/healthz", timeout=2)
            return
        except OSError:  # refused while it starts, 503 until it is ready
            assert web.process.poll() is None, f"daphne exited:\n{web.log.read_text()}"
            assert time.monotonic() < deadline, "daphne was not ready in time"
            time.sleep(0.2)


@contextmanager
def _stopping(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def balanced(transactional_db: None, settings: Any,
             tmp_path: Path) -> Iterator[tuple[HAProxy, list[Web]]]:
    """Two daphne processes serving TOM (echo session) behind HAProxy, both marked up."""
    with balanced_webs(settings=settings, tmp_path=tmp_path) as found:
        yield found


@contextmanager
def balanced_webs(*, settings: Any, tmp_path: Path, ready_s: float = 60,
                  **overrides: str) -> Iterator[tuple[HAProxy, list[Web]]]:
    """Two daphne processes (the echo session unless ``overrides`` say otherwise) behind
    HAProxy, both marked up."""
    haproxy = _haproxy()
    front, *ports = _free_ports(3)
    env = {**os.environ, "DATABASE_URL": _database_url(), "TOM_SESSION_BACKEND": "echo",
           "TOM_WS_IDLE_TIMEOUT_S": "5", "TOM_JWT_SECRET": settings.TOM_JWT_SECRET,
           "SECRET_KEY": settings.SECRET_KEY, "TOM_PHONE_HASH_KEY": settings.TOM_PHONE_HASH_KEY,
           "TOM_LOG_LEVEL": "WARNING",
           # As the README says behind a proxy: HAProxy connects from 127.0.0.1, and the
           # endpoints that allow-list addresses then need their secrets (tomsite.E007/E008).
           "TOM_TRUSTED_PROXIES": "127.0.0.1", "TOM_FORK_TOKEN_SECRET": FORK_SECRET,
           "TOM_METRICS_TOKEN": METRICS_TOKEN, **overrides}
    connections.close_all()  # the servers write to the test database from now on
    webs = [_web_start(port=port, env=env, log=tmp_path / f"web{port}.log") for port in ports]
    with _stopping([w.process for w in webs]):
        for web in webs:
            _web_wait_ready(web, timeout=ready_s)
        stats_socket, log = tmp_path / "haproxy.sock", tmp_path / "haproxy.log"
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config_render(frontend_port=front, backend_ports=ports,
                                                stats_socket=stats_socket))
        with log.open("ab") as output:
            process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=output,
                                       stderr=subprocess.STDOUT)
        with _stopping([process]):
            balancer = HAProxy(process=process, port=front, stats_socket=stats_socket, log=log)
            deadline = time.monotonic() + 10
            while not stats_socket.exists():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "HAProxy opened no stats socket"
                time.sleep(0.05)
            balancer.wait({f"web{port}": {"status": "UP"} for port in ports})
            yield balancer, webs


async def _call(server: LiveServer, *, call_uuid: str | None = None,
                pause_s: float = 1.2) -> tuple[CallReport, Call]:
    """One echo call through ``server``: its report and its Call row once ended."""
    call_uuid = call_uuid or str(uuid.uuid4())
    metadata = {"uuid": call_uuid, "caller": "+49 30 98765432", "callee": "+49 40 5550100",
                "sampleRate": 8000, "mixType": "mono", "direction": "inbound", "language": "en"}
    report = await ForkClient(url=server.fork_url(call_uuid=call_uuid), metadata=metadata,
                              rate=8000, segments=[Segment(voiced(8000, 0.8), pause_s=pause_s)]
                              ).run()
    assert report.problems() == [], report.problems()
    return report, await _call_row(call_uuid, ended=True)


async def _calls(server: LiveServer, count: int) -> list[tuple[CallReport, Call]]:
    """``count`` echo calls at the same time through ``server``."""
    return list(await asyncio.gather(*(_call(server) for _ in range(count))))


async def _call_row(call_uuid: str, *, ended: bool, wait_s: float = 10.0) -> Call:
    """The Call row once a process has taken the call (``ended``: and has ended it; the
    server closes after the client)."""
    get = database_sync_to_async(Call.objects.filter(uuid=call_uuid).first)
    deadline = asyncio.get_running_loop().time() + wait_s
    while (call := await get()) is None or (ended and not call.is_ended):
        assert asyncio.get_running_loop().time() < deadline, f"no such call yet: {call}"
        await asyncio.sleep(0.05)
    return call


def _answered(results: list[tuple[CallReport, Call]]) -> Counter[int | None]:
    """Asserts every caller heard the echo and every call ended normally; counts calls
    per web PID."""
    for report, call in results:
        assert report.playbacks, "the caller heard nothing back"
        assert call.status == Call.Status.COMPLETED, call.end_reason
    return Counter(call.pid for _, call in results)


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def _failed_login(port: int, *, source: str, spoofed: str) -> None:
    """A wrong password on the admin login, from ``source``, claiming to be ``spoofed``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("GET", "/admin/login/")
        response = connection.getresponse()
        page = response.read().decode()
        cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie") or "")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert cookie and token, response.status
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": token[1], "username": "mallory",
                                       "password": "wrong", "next": "/admin/"})
        connection.request("POST", "/admin/login/", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie[1]}", "X-Forwarded-For": spoofed})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status  # the form again, with its error
    finally:
        connection.close()


def test_the_shipped_config_is_valid() -> None:
    done = subprocess.run([_haproxy(), "-c", "-f", str(CONFIG)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr
    text = CONFIG.read_text()
    for needle in ("balance leastconn", "option httpchk GET /healthz", "timeout tunnel",
                   "option forwardfor", "http-request del-header Forwarded"):
        assert needle in text, needle
    # Each server is a port tom-web@.service can take; 8000 is HAProxy's own (and
    # tom-web.service's), 8001 Chroma's in the monitoring compose file.
    ports = [int(p) for p in re.findall(r"^\s*server web(\d+) 127\.0\.0\.1:\1$", text, re.M)]
    assert len(ports) >= 2 and not {8000, 8001} & set(ports), ports


def test_the_template_unit_is_tom_web_on_its_instance_port() -> None:
    """tom-web@.service is tom-web.service with the port and the log file from the
    instance name, so a change to one (readiness, hardening) cannot miss the other."""

    def settings_lines(name: str, *, template: bool = False) -> list[str]:
        text = (REPO / "deploy/systemd" / name).read_text()
        lines = [line for line in text.splitlines()
                 if line and not line.startswith(("#", "Description="))]
        if not template:  # what the instance name replaces
            lines = [line.replace(" -p 8000 ", " -p %i ").replace("/web.log", "/web-%i.log")
                     for line in lines]
        return lines

    template = settings_lines("tom-web@.service", template=True)
    assert template == settings_lines("tom-web.service")
    assert any(" -p %i " in line for line in template)
    assert "StandardOutput=append:/var/log/tom/web-%i.log" in template


# Several web processes share one database and one channel layer: on SQLite the second
# writer meets "database is locked", and an in-memory layer or cache is one per process
# (README, "Several web processes"). So they run on PostgreSQL and Redis, as deployed.
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_two_processes_behind_haproxy_each_answer_calls(
        balanced: tuple[HAProxy, list[Web]]) -> None:
    balancer, webs = balanced
    pids = [web.process.pid for web in webs]
    # Readiness through the balancer: /healthz is answered by a process that is up.
    assert await asyncio.to_thread(_status, f"{balancer.server.http}/healthz") == 200

    # Four callers at once: leastconn gives each new call to the process with the fewest
    # open calls, so two each (a source hash or one process would give four to one).
    per_process = _answered(await _calls(balancer.server, 4))
    assert per_process == Counter({pids[0]: 2, pids[1]: 2}), (per_process, pids)

    # While a long call holds one process, the calls placed one after another all go to the
    # other, which carries fewer calls (roundrobin would give it every second one).
    long_uuid = str(uuid.uuid4())
    long_call = asyncio.create_task(_call(balancer.server, call_uuid=long_uuid, pause_s=10.0))
    holder = (await _call_row(long_uuid, ended=False)).pid
    other = ({*pids} - {holder}).pop()
    name = {web.process.pid: f"web{web.port}" for web in webs}
    for _ in range(2):
        # As HAProxy counts: the long call open on one, the last short call closed on the other.
        await asyncio.to_thread(balancer.wait, {name[holder]: {"scur": "1"},
                                                name[other]: {"scur": "0"}})
        assert _answered([await _call(balancer.server)]) == Counter({other: 1})
    assert not long_call.done(), "the long call ended before the test's premise held"
    assert _answered([await long_call]) == Counter({holder: 1})

    # TOM sees the caller's address, not HAProxy's and not what the caller claims.
    await asyncio.to_thread(_failed_login, balancer.port, source=CALLER, spoofed="203.0.113.9")
    addresses = await database_sync_to_async(list)(
        AccessAttempt.objects.values_list("ip_address", flat=True))
    assert addresses == [CALLER]

    # One process stops: the health check marks it down and the other answers every call.
    webs[1].process.terminate()
    webs[1].process.wait(10)
    await asyncio.to_thread(balancer.wait, {f"web{webs[0].port}": {"status": "UP"},
                                            f"web{webs[1].port}": {"status": "DOWN"}})
    per_process = _answered(await _calls(balancer.server, 3))
    assert per_process == Counter({pids[0]: 3}), (per_process, pids)
    assert await asyncio.to_thread(_status, f"{balancer.server.http}/healthz") == 200

    # HAProxy logged every call, without the query string that carries the call's token.
    balancer.process.terminate()
    balancer.process.wait(10)
    log = balancer.log.read_text()
    assert log.count("GET /ws/fork/ HTTP/1.1") == 10, log
    assert "token=" not in log, log
