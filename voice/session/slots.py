"""Model slots: how many STT, LLM and TTS calls may run at once in this process.

Each stage has a semaphore sized by ``TOM_*_MAX_CONCURRENCY``. The model runs in a
worker thread that cannot be interrupted, so a slot belongs to the thread, not to the
coroutine that awaits it: when barge-in cancels the awaiting turn, the caller gets
``CancelledError`` at once, and the slot is given back only when the thread has really
returned. Releasing it on cancellation instead (``async with semaphore: await
asyncio.to_thread(...)``) let every barge-in start a new model call beside one still
running, so the cores were oversubscribed exactly when the caller was talking.
LiveKit Agents keeps inference in its own process for the same reason (a cancelled
request still costs the CPU until it returns).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from voice import metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_WAIT_S = 8.0  # a slot still busy after this long: the turn apologises (TimeoutError)
_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary())


def stage_semaphore(*, stage: str, size: int) -> asyncio.Semaphore:
    """The stage's semaphore for this event loop (daphne runs one loop per process)."""
    per_loop = _semaphores.setdefault(asyncio.get_running_loop(), {})
    if stage not in per_loop:
        per_loop[stage] = asyncio.Semaphore(size)
    return per_loop[stage]


async def thread_in_slot(*, stage: str, size: int, fn: Callable[..., T],
                         args: tuple[Any, ...] = (),
                         kwargs: dict[str, Any] | None = None) -> asyncio.Future[T]:
    """Wait for a free slot, start ``fn`` in a worker thread and return its future.

    The slot is released by the future's done callback, i.e. when ``fn`` has returned or
    raised, whatever happens to the coroutine that awaits the future. Raises
    ``TimeoutError`` when no slot frees up within ``BUSY_WAIT_S``.
    """
    semaphore = stage_semaphore(stage=stage, size=size)
    if semaphore.locked():
        metrics.BACKPRESSURE.labels(stage=stage).inc()
    async with asyncio.timeout(BUSY_WAIT_S):
        await semaphore.acquire()
    loop = asyncio.get_running_loop()
    # As asyncio.to_thread does: the thread sees this task's context variables.
    call = functools.partial(contextvars.copy_context().run, fn, *args, **(kwargs or {}))
    try:
        future = loop.run_in_executor(None, call)
    except BaseException:
        semaphore.release()
        raise
    future.add_done_callback(functools.partial(_thread_done, semaphore, stage))
    return future


def _thread_done(semaphore: asyncio.Semaphore, stage: str, future: asyncio.Future[Any]) -> None:
    semaphore.release()
    if future.cancelled():
        return
    error = future.exception()  # retrieved here: its caller may have been cancelled
    if error is not None and not isinstance(error, concurrent.futures.CancelledError):
        logger.debug("session.slot_thread_failed", extra={"stage": stage,
                                                          "error_type": type(error).__name__})


async def run_in_slot(*, stage: str, size: int, fn: Callable[..., T], args: tuple[Any, ...] = (),
                      kwargs: dict[str, Any] | None = None) -> T:
    """``fn(*args, **kwargs)`` in a worker thread, holding one of the stage's ``size`` slots
    until the thread returns; cancelling the caller does not wait for the thread."""
    future = await thread_in_slot(stage=stage, size=size, fn=fn, args=args, kwargs=kwargs)
    # shield: a cancelled caller must not cancel the future, or its done callback would
    # release the slot while the thread still runs.
    return await asyncio.shield(future)
