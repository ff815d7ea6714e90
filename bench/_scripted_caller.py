"""The caller of bench/barge_in.py: a fork client that listens before it talks.

Imported only after ``_server.use_repo``, so ``voice.client`` is the measured tree's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voice.client import ForkClient

RATE, FRAME_S = 8000, 0.02
FRAME = int(RATE * FRAME_S) * 2


@dataclass
class Step:
    kind: str  # "question", "barge", "backchannel"
    pcm: bytes
    onset: float | None = None  # call time of the first loud frame sent
    end: float | None = None
    skipped: bool = False  # talked over nothing: the agent had finished
    kill_ms: float | None = None  # onset -> killAudio
    resumed: bool = False  # backchannel: agent audio followed it (the same reply)


class ScriptedCaller(ForkClient):
    """Plays ``steps`` as a caller who listens: talks over a reply ``delay_s`` after it
    starts (or when it next plays, if it paused between clauses), and asks a question
    once the reply is over: its agent transcript came and its audio has played, or
    nothing has played for ``quiet_s``."""

    def __init__(self, *, steps: list[Step], delay_s: float, quiet_s: float,
                 reply_wait_s: float, **kwargs: Any) -> None:
        super().__init__(segments=[], **kwargs)
        self.steps, self.delay_s, self.quiet_s = steps, delay_s, quiet_s
        self.reply_wait_s = reply_wait_s
        self.agent_texts: list[float] = []  # call times agent transcripts came

    async def _on_text(self, ws: Any, text: str) -> None:
        before = len(self.report.transcripts)
        await super()._on_text(ws, text)
        if self.report.transcripts[before:] and \
                self.report.transcripts[-1].get("role") == "agent":
            self.agent_texts.append(self._now())

    def heard(self) -> list[Any]:
        """Agent audio the caller heard (a playback killAudio emptied is not audio)."""
        return [p for p in self.report.playbacks if p.end > p.start]

    def _audio_since(self, t: float) -> bool:
        return any(p.start >= t for p in self.heard())

    def _playing(self) -> bool:
        now = self._now()
        return any(p.start <= now < p.end for p in self.heard())

    def _reply_over(self, t: float) -> bool:
        """The reply to what was said before ``t`` began, was told complete and has
        played (or nothing has played for ``quiet_s``)."""
        if not self._audio_since(t) or self._playing():
            return False
        last = max((p.end for p in self.heard()), default=0.0)
        return any(a >= t for a in self.agent_texts) or self._now() - last >= self.quiet_s

    async def _silence(self, ws: Any, *, until: Any = None, seconds: float) -> None:
        silence = bytes(FRAME)
        deadline = self._now() + seconds
        while self._now() < deadline and not (until is not None and until()):
            await self._send_frame(ws, silence)

    async def _stream(self, ws: Any) -> None:
        last_end = 0.0
        await self._silence(ws, seconds=0.5)
        for step in self.steps:
            if step.kind != "question":
                await self._silence(ws, until=lambda t=last_end: self._audio_since(t),
                                    seconds=self.reply_wait_s)
                await self._silence(ws, seconds=self.delay_s)
                await self._silence(ws, until=lambda t=last_end: self._playing()
                                    or self._reply_over(t), seconds=self.reply_wait_s)
                step.skipped = not self._playing()
                if step.skipped and step.kind == "backchannel":
                    continue
            elif last_end:
                await self._silence(ws, until=lambda t=last_end: self._reply_over(t),
                                    seconds=self.reply_wait_s + 30)
                await self._silence(ws, seconds=0.5)
            # The speech onset on the line's clock: when its first frame is due.
            step.onset = self.report.frames_sent * FRAME_S
            self.report.segment_starts.append(step.onset)
            for i in range(0, len(step.pcm), FRAME):
                await self._send_frame(ws, step.pcm[i:i + FRAME].ljust(FRAME, b"\0"))
            step.end = last_end = self._now()
            self.report.segment_ends.append(step.end)
        # Hang up once the last reply has played out (its turn is then complete).
        await self._silence(ws, until=lambda: self._reply_over(last_end),
                            seconds=self.reply_wait_s + 30)
        await self._silence(ws, seconds=self.tail_s)
