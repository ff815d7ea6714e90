"""Piper across calls: clauses interleaved so that every caller's first clause comes early.

Synthesis jobs wait in one priority queue worked by a few threads (default: one per
core). The priority is the clause's index in its reply, then arrival: when four callers'
replies are being spoken at once, each of them hears its first clause before anyone's
second is synthesized, where first come first served would let one long reply hold the
others' first words back. A later clause is still needed only after the first has been
played, which takes longer than synthesizing it.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from voice.tts import TtsBackend

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TtsJob:
    engine: TtsBackend
    text: str
    clause: int = 0  # 0: a reply's first clause
    done: threading.Event = field(default_factory=threading.Event)
    pcm: bytes = b""
    rate: int = 0
    error: BaseException | None = None
    order: int = -1  # the how-many-th job the workers started (tests, the log)

    def wait(self, timeout: float) -> bytes:
        if not self.done.wait(timeout):
            raise TimeoutError(f"no speech within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.pcm


class SynthesisQueue:
    """``workers`` threads taking ``TtsJob``s by (clause index, arrival)."""

    def __init__(self, *, workers: int) -> None:
        self.workers = max(1, workers)
        self._queue: queue.PriorityQueue[tuple[int, int, TtsJob]] = queue.PriorityQueue()
        self._arrival = itertools.count()
        self._started = itertools.count()
        self._guard = threading.Lock()
        self.busy = self.done = 0
        for index in range(self.workers):
            threading.Thread(target=self._work, name=f"tts-worker-{index}", daemon=True).start()

    def submit(self, job: TtsJob) -> TtsJob:
        self._queue.put((max(0, job.clause), next(self._arrival), job))
        return job

    def stats(self) -> dict[str, Any]:
        with self._guard:
            return {"workers": self.workers, "busy": self.busy, "done": self.done,
                    "queued": self._queue.qsize()}

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            with self._guard:
                self.busy += 1
                job.order = next(self._started)
            try:
                job.pcm = job.engine.synthesize(job.text)
                job.rate = job.engine.rate  # espeak-ng says its rate only once it has spoken
            except BaseException as exc:  # the request hears why; the worker lives on
                logger.warning("speech.tts_failed", exc_info=True,
                               extra={"engine": type(job.engine).__name__})
                job.error = exc
            finally:
                with self._guard:
                    self.busy -= 1
                    self.done += 1
                job.done.set()
