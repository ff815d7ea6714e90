"""Which process carries a call, and whether that process still runs.

A web process that dies (SIGKILL, SIGILL in native code, the OOM killer) cannot end
its calls. The next web process on the same host can: it ends every open call whose
recorded process is gone. A PID alone is not enough to tell: PIDs are reused, and in
a container the web process is often PID 1 every time. So each call also records the
process's start, read from ``/proc/<pid>/stat`` (field 22, ``starttime``, in clock
ticks after boot; see proc(5)) with the boot id (``/proc/sys/kernel/random/boot_id``)
because ticks restart at every boot. Where ``/proc`` does not exist the start is
empty and a live PID is trusted to be the same process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process, told apart from any later process that gets the same PID."""

    host: str
    pid: int
    start: str  # "<boot id>:<start ticks>", or "" where /proc is missing


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, "<boot id>:<start ticks>") of ``pid`` from /proc, or ``None``."""
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")": the
    # fields after the last ")" are plain, state first and starttime the 20th.
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20:
        return None
    return fields[0], f"{boot_id}:{fields[19]}"


def process_start(*, pid: int) -> str:
    """The boot id and start time of ``pid``, or ``""`` if it cannot be read."""
    stat = _stat(pid)
    return stat[1] if stat else ""


def process_current() -> ProcessIdentity:
    """This process (read once per PID: a forked child is a process of its own)."""
    return _identity(os.getpid())


@lru_cache(maxsize=4)
def _identity(pid: int) -> ProcessIdentity:
    return ProcessIdentity(host=socket.gethostname(), pid=pid, start=process_start(pid=pid))


def process_is_running(*, pid: int, start: str) -> bool:
    """Whether the process recorded as (``pid``, ``start``) on this host still runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the PID exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _stat(pid)
    if stat is None:
        # No /proc to read: a live PID is all there is to go on. Where a start was
        # recorded, /proc existed then, so the process has gone in the meantime.
        return not start
    state, now = stat
    if state in ("Z", "X"):
        return False  # dead, only waiting for its parent to collect the exit status
    # A different start means the PID now belongs to another process.
    return not start or now == start


def calls_end_orphaned_on_startup(*, timeout_s: float = 15.0) -> None:
    """End the calls this host's dead web processes left open; never raise.

    Runs while a web process starts (``tomsite.asgi``), so whatever goes wrong here (no
    database yet, tables not migrated, the server unreachable) is logged and the server
    starts anyway. A thread keeps a slow database from holding the start up for longer
    than ``timeout_s``, and keeps the ORM out of an event loop an ASGI server may run.
    """
    host = socket.gethostname()

    def work() -> None:
        from django.db import DatabaseError, connections

        from calls.services import calls_end_orphaned  # services imports this module

        try:
            calls_end_orphaned(host=host)
        except DatabaseError as exc:
            logger.warning("calls.orphans_not_checked",
                           extra={"host": host, "error": str(exc)[:200]})
        except Exception:  # startup must go on whatever failed here
            logger.exception("calls.orphans_not_checked", extra={"host": host})
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="tom-orphaned-calls", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        logger.warning("calls.orphans_check_slow", extra={"host": host, "timeout_s": timeout_s})
