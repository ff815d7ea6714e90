"""Run one stage alone: frames in, frames out, on a virtual clock (Pipecat's
``tests/utils.py`` ``run_test`` does the same for its processors).

    harness = StageHarness(ClauseStage(max_sentences=2))
    down = await harness.run([LlmText(...), LlmRoundEnd(...)])
    assert [f.text for f in harness.of(Clause)] == [...]

Frames the stage pushes down are in ``harness.down``, those it pushes up in
``harness.up``. The stage's ``clock`` is ``harness.clock``, a ``VirtualClock`` that only
moves when the test (or a scripted model) advances it, so timings are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from voice.pipeline.frames import Direction, Frame
from voice.pipeline.stage import Stage

F = TypeVar("F", bound=Frame)


class VirtualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class StageHarness:
    """One stage between two recording edges."""

    def __init__(self, stage: Stage, *, clock: VirtualClock | None = None) -> None:
        self.stage = stage
        self.clock = clock or VirtualClock()
        self.down: list[Frame] = []
        self.up: list[Frame] = []
        stage.clock = self.clock
        stage._edge = self._collect

    async def _collect(self, frame: Frame, direction: Direction) -> None:
        (self.down if direction is Direction.DOWN else self.up).append(frame)

    async def send(self, frame: Frame, direction: Direction = Direction.DOWN) -> None:
        """Queue one frame (system frames are handled before this returns)."""
        self.stage.start()
        await self.stage.queue(frame, direction)

    async def run(self, frames: Iterable[Frame],
                  direction: Direction = Direction.DOWN) -> list[Frame]:
        """Send ``frames`` in order, wait until the stage is idle; the frames sent down."""
        for frame in frames:
            await self.send(frame, direction)
        await self.stage.idle()
        return self.down

    def of(self, kind: type[F], direction: Direction = Direction.DOWN) -> list[F]:
        frames = self.down if direction is Direction.DOWN else self.up
        return [frame for frame in frames if isinstance(frame, kind)]

    async def close(self) -> None:
        await self.stage.stop()
