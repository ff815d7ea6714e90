"""Calls left open by a dead web process: which process carries a call, and ending the
calls of this host's dead processes (the real-server test is voice/tests/test_crash_reaping.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from calls import processes, services
from calls.models import Call, PolicyVariant
from calls.tests.factories import call_create

pytestmark = pytest.mark.django_db

HOST = socket.gethostname()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child killed and not yet collected by its parent: its PID still answers."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state(child.pid) == "Z"
    yield child.pid
    child.wait()


def _carried_by(pid: int, *, start: str | None = None, host: str = HOST) -> Call:
    call = call_create(caller="")
    call.host, call.pid = host, pid
    call.process_start = processes.process_start(pid=pid) if start is None else start
    call.save(update_fields=["host", "pid", "process_start"])
    return call


def test_a_call_records_the_process_that_carries_it() -> None:
    call = call_create(caller="")
    me = processes.process_current()
    assert (call.host, call.pid, call.process_start) == (HOST, os.getpid(), me.start)
    boot_id, ticks = me.start.split(":")
    assert len(boot_id) == 36 and ticks.isdigit()


def test_calls_of_dead_processes_on_this_host_end_at_once(
        zombie: int, django_capture_on_commit_callbacks: Any) -> None:
    variant = PolicyVariant.objects.create(name="calm")
    dead_pid = _dead_pid()
    dead = _carried_by(dead_pid)
    dead.variant = variant
    dead.save(update_fields=["variant"])
    undead = _carried_by(zombie)
    mine = _carried_by(os.getpid())
    # Our PID, but recorded with another start: the PID was reused, the process is gone.
    reused = _carried_by(os.getpid(), start="00000000-0000-0000-0000-000000000000:1")
    elsewhere = _carried_by(dead_pid, host="another-host")
    finished = _carried_by(dead_pid)
    services.call_end(call=finished, reason=Call.EndReason.CALLER_HANGUP)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.calls_end_orphaned(host=HOST) == 3
    assert callbacks == []  # a crash is not the variant's doing: no reward task
    for call in (dead, undead, reused):
        call.refresh_from_db()
        assert (call.status, call.end_reason) == (Call.Status.FAILED,
                                                  Call.EndReason.PROCESS_DIED)
        assert f"web process {call.pid} on {HOST} died" in call.status_detail
    for call, status in ((mine, Call.Status.ACTIVE), (elsewhere, Call.Status.ACTIVE),
                         (finished, Call.Status.COMPLETED)):
        call.refresh_from_db()
        assert call.status == status, call
    assert services.calls_end_orphaned(host=HOST) == 0  # idempotent


def test_a_call_from_before_host_and_pid_were_recorded_is_left_to_the_reaper() -> None:
    call = call_create(caller="")
    Call.objects.filter(pk=call.pk).update(host="", pid=None, process_start="")
    assert services.calls_end_orphaned(host="") == 0
    call.refresh_from_db()
    assert call.status == Call.Status.ACTIVE


def test_a_reconnect_moves_the_call_to_the_process_that_took_it() -> None:
    call = _carried_by(_dead_pid())
    again = services.call_start(uuid=call.uuid)
    assert (again.pk, again.pid, again.process_start) == (
        call.pk, os.getpid(), processes.process_start(pid=os.getpid()))
    assert services.calls_end_orphaned(host=HOST) == 0


def test_process_liveness() -> None:
    me = processes.process_current()
    assert processes.process_is_running(pid=me.pid, start=me.start)
    assert processes.process_is_running(pid=me.pid, start="")  # recorded without /proc
    assert not processes.process_is_running(pid=me.pid, start=me.start + "0")
    assert not processes.process_is_running(pid=_dead_pid(), start="")
    assert not processes.process_is_running(pid=0, start="")
    # PID 1 belongs to another user here (or is this container's init): it exists.
    assert processes.process_is_running(pid=1, start=processes.process_start(pid=1))
