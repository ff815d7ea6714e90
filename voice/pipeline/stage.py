"""A stage of the call pipeline, and the pipeline that links stages in a line.

Each stage has one queue of data frames (both directions, in order) worked by a runner
task it owns, one frame at a time, each in a task of its own so that a ``CancelTurn``
stops exactly the work of that turn while the runner goes on. System frames skip the
queue: ``queue`` handles them at once, so they overtake every data frame still waiting
(Pipecat's ``FrameProcessor`` has the same two paths). An ``inline`` stage has no
queue: it works each frame in the task that pushed it. A failure while working a turn's
frame costs that turn, not the call: the stage reports it downstream as ``TurnFailed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from tomsite.metrics import error_count
from voice.pipeline.frames import (
    CancelTurn,
    Direction,
    Frame,
    SystemFrame,
    TurnFailed,
    Utterance,
    frame_turn,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sink = Callable[[Frame, Direction], Awaitable[None]]


class Stage:
    """Override ``process`` for the frames the stage knows; pass every other frame on
    with ``await self.push(frame, direction)`` (the default does just that)."""

    name = "stage"
    # An inline stage works each data frame at once, in the pusher's task: for quick,
    # synchronous work on the receive path (resampling, VAD), where a queue would only
    # add a hop to every 20 ms frame and to the barge-in.
    inline = False

    def __init__(self) -> None:
        self._down: Stage | None = None
        self._up: Stage | None = None
        self._edge: Sink | None = None  # where frames leaving the pipeline go
        self._queue: deque[tuple[Frame, Direction]] = deque()  # data frames, in order
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None
        self._work_frame: Frame | None = None
        self._drained = asyncio.Event()  # nothing queued and nothing in work
        self._drained.set()
        self.clock: Clock = time.monotonic

    # --- what subclasses provide ----------------------------------------------------------
    async def process(self, frame: Frame, direction: Direction) -> None:
        await self.push(frame, direction)

    async def on_cancel(self, frame: CancelTurn) -> None:
        """A turn was cancelled: drop what the stage keeps for it."""

    async def aclose(self) -> None:
        """The call ended: stop what the stage runs besides its frames."""

    # --- the machinery -------------------------------------------------------------------
    async def push(self, frame: Frame, direction: Direction = Direction.DOWN) -> None:
        """Hand ``frame`` to the neighbouring stage in ``direction``."""
        target = self._down if direction is Direction.DOWN else self._up
        if target is not None:
            await target.queue(frame, direction)
        elif self._edge is not None:
            await self._edge(frame, direction)

    async def queue(self, frame: Frame, direction: Direction) -> None:
        """A frame arrives: system frames are handled now, data frames wait their turn."""
        if isinstance(frame, SystemFrame):
            if isinstance(frame, CancelTurn):
                self._cancel_upto(frame.upto)
                await self.on_cancel(frame)
            await self.process(frame, direction)
            return
        if self.inline:
            await self.process(frame, direction)
            return
        self._queue.append((frame, direction))
        self._drained.clear()
        self._ready.set()

    def _cancel_upto(self, upto: int, *, settle: bool = True) -> None:
        def doomed(frame: Frame | None) -> bool:
            turn = frame_turn(frame) if frame is not None else None
            return turn is not None and turn <= upto

        self._queue = deque(item for item in self._queue if not doomed(item[0]))
        if settle and not self._queue and self._work is None:
            self._drained.set()
        if self._work is not None and not self._work.done() and doomed(self._work_frame):
            self._work.cancel()

    def discard(self, doomed: Callable[[Frame], bool]) -> None:
        """Drop queued data frames that ``doomed`` picks (they went stale)."""
        self._queue = deque(item for item in self._queue if not doomed(item[0]))

    def start(self) -> None:
        if self._runner is None and not self.inline:
            self._runner = asyncio.create_task(self._runner_loop(), name=f"stage-{self.name}")

    async def stop(self) -> None:
        """Cancel the runner and the frame in work, and wait until both have ended."""
        for task in (self._work, self._runner):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._work, self._runner):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.aclose()

    @property
    def busy(self) -> bool:
        return not self._drained.is_set()

    async def idle(self) -> None:
        """Until the queue is empty and no frame is in work (tests, graceful drain)."""
        await self._drained.wait()

    async def _runner_loop(self) -> None:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            frame, direction = self._queue.popleft()
            self._work_frame = frame
            self._work = asyncio.create_task(self.process(frame, direction),
                                             name=f"stage-{self.name}-work")
            # wait() does not raise when the work is cancelled (CancelTurn): the runner
            # goes on with the next frame.
            await asyncio.wait({self._work})
            work, self._work, self._work_frame = self._work, None, None
            if not work.cancelled() and (error := work.exception()) is not None:
                await self._work_failed(frame, error)
            if not self._queue:
                self._drained.set()

    async def _work_failed(self, frame: Frame, error: BaseException) -> None:
        """A turn's frame failed here: the turn ends everywhere and its caller hears the
        apology (the TTS stage says it), once, whichever stage failed."""
        turn = frame_turn(frame)
        if isinstance(error, TimeoutError):  # every model slot stayed busy: no fault
            logger.warning("pipeline.stage_overloaded", extra={"stage": self.name,
                                                               "turn": turn})
        else:
            error_count(component="session")
            logger.error("pipeline.stage_failed", exc_info=error, extra={
                "stage": self.name, "turn": turn, "error_type": type(error).__name__})
        if turn is None:
            return
        cancel = CancelTurn(upto=turn, reason="failed")
        self._cancel_upto(turn, settle=False)  # the runner settles after the apology
        await self.push(cancel, Direction.UP)  # stop what is still producing for it
        await self.push(cancel, Direction.DOWN)  # and drop what waits downstream
        speech = getattr(frame, "speech", None)
        speech_end_at = (speech.caller_speech_end_at if speech is not None
                         and speech.caller_speech_end_at is not None
                         else frame.speech_end_at if isinstance(frame, Utterance)
                         else self.clock())
        from voice.tts import TtsError  # the engine that failed cannot say the apology

        # Into this stage's own queue, so that a failed TTS stage apologises itself.
        await self.queue(TurnFailed(turn=turn, speech=speech, speech_end_at=speech_end_at,
                                    engine_failed=isinstance(error, TtsError),
                                    overload=isinstance(error, TimeoutError)),
                         Direction.DOWN)


class Pipeline:
    """Stages linked in a line; ``head`` takes frames in, ``sink`` gets what leaves the
    last stage (and, upstream, the first)."""

    def __init__(self, stages: list[Stage], *, sink: Sink | None = None,
                 clock: Clock | None = None) -> None:
        self.stages = stages
        for upper, lower in itertools.pairwise(stages):
            upper._down, lower._up = lower, upper
        stages[0]._edge = stages[-1]._edge = sink
        for stage in stages:
            if clock is not None:
                stage.clock = clock

    def start(self) -> None:
        for stage in self.stages:
            stage.start()

    async def queue(self, frame: Frame) -> None:
        await self.stages[0].queue(frame, Direction.DOWN)

    async def idle(self) -> None:
        """Until every stage is idle at once (frames may move down while we wait)."""
        while any(stage.busy for stage in self.stages):
            for stage in self.stages:
                await stage.idle()

    async def stop(self) -> None:
        for stage in self.stages:
            await stage.stop()

    def alive(self) -> list[asyncio.Task[None]]:
        """The stages' tasks still running (none once ``stop`` has returned)."""
        return [task for stage in self.stages for task in (stage._runner, stage._work)
                if task is not None and not task.done()]

