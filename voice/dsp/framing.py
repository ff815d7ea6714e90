"""Framing: network chunks of any size in, exact frames out; agent audio buffered for pacing.

mod_audio_fork writes whatever its media bug collected (usually 20 ms, not always), and
TTS produces sentences of any length. VAD, STT and the outbound pacer want exact 20 ms
frames, so both directions pass through here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BYTES_PER_SAMPLE = 2


def frame_bytes(rate: int, ms: int = 20) -> int:
    """Size of one frame of 16-bit mono PCM."""
    return rate * ms // 1000 * BYTES_PER_SAMPLE


class FrameBuffer:
    """Collect chunks and hand out exact frames of ``size`` bytes, in order."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % BYTES_PER_SAMPLE:
            raise ValueError("frame size must be a positive, even number of bytes")
        self.size = size
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._pending)

    def push(self, data: bytes) -> list[bytes]:
        """Add a chunk; return every frame it completes."""
        self._pending += data
        count = len(self._pending) // self.size
        if not count:
            return []
        cut = count * self.size
        frames = [bytes(self._pending[i:i + self.size]) for i in range(0, cut, self.size)]
        del self._pending[:cut]
        return frames

    def flush(self) -> bytes | None:
        """The partial frame left over, padded with silence; ``None`` if nothing is left."""
        if not self._pending:
            return None
        frame = bytes(self._pending) + bytes(self.size - len(self._pending))
        self._pending.clear()
        return frame

    def clear(self) -> None:
        self._pending.clear()


@dataclass
class OutboundStats:
    frames_played: int = 0
    underruns: int = 0  # frames of silence sent while an utterance was still arriving
    overruns: int = 0  # frames dropped because the buffer was full
    cleared: int = 0  # frames dropped by barge-in


class OutboundBuffer:
    """Agent audio waiting to be sent at real-time pace, in exact frames.

    ``write`` adds audio as TTS produces it; the pacer calls ``read`` once per frame
    period. While an utterance is open and the buffer runs dry, ``read`` returns
    silence and counts an underrun; a full buffer drops its oldest frames (counted).
    ``clear`` empties it at barge-in and says how much was never played.
    """

    def __init__(self, size: int, max_frames: int) -> None:
        self._framer = FrameBuffer(size)
        self._frames: deque[bytes] = deque()
        self._max_frames = max_frames
        self._open = False
        self.size = size
        self.stats = OutboundStats()

    @property
    def queued_frames(self) -> int:
        return len(self._frames)

    @property
    def idle(self) -> bool:
        """Nothing queued and no utterance arriving."""
        return not self._frames and not self._open

    def write(self, pcm: bytes, *, final: bool = False) -> None:
        """Queue agent audio; ``final`` ends the utterance (its last partial frame is padded)."""
        self._open = not final
        frames = self._framer.push(pcm)
        if final and (tail := self._framer.flush()) is not None:
            frames.append(tail)
        self._frames.extend(frames)
        excess = len(self._frames) - self._max_frames
        for _ in range(max(excess, 0)):
            self._frames.popleft()
            self.stats.overruns += 1

    def read(self) -> bytes | None:
        """The next frame; silence on underrun; ``None`` when idle (nothing to send)."""
        if self._frames:
            self.stats.frames_played += 1
            return self._frames.popleft()
        if self._open:
            self.stats.underruns += 1
            return bytes(self.size)
        return None

    def clear(self) -> int:
        """Drop everything queued or partial (barge-in); return the frames dropped."""
        dropped = len(self._frames) + (1 if self._framer.pending else 0)
        self._frames.clear()
        self._framer.clear()
        self._open = False
        self.stats.cleared += dropped
        return dropped
