"""The VAD state machine: per-frame speech decisions in, utterance start/end events out.

quiet → starting (speech heard, not yet long enough) → speaking → stopping (silence
heard, not yet long enough) → quiet. Timings are in seconds, counted in frames, so the
machine is deterministic and needs no clock.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np


class VadState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


class VadEvent(enum.Enum):
    SPEECH_START = "speech_start"  # confirmed: start_s of speech heard
    SPEECH_END = "speech_end"  # confirmed: stop_s of silence after speech


@dataclass(frozen=True, slots=True)
class VadParams:
    frame_s: float = 0.02
    start_s: float = 0.06
    stop_s: float = 0.45

    @property
    def start_frames(self) -> int:
        return max(1, math.ceil(self.start_s / self.frame_s - 1e-9))

    @property
    def stop_frames(self) -> int:
        return max(1, math.ceil(self.stop_s / self.frame_s - 1e-9))


class VadMachine:
    """Debounce frame decisions into utterances."""

    def __init__(self, params: VadParams) -> None:
        self.params = params
        self.state = VadState.QUIET
        self._run = 0  # consecutive frames supporting the pending transition
        self.speech_frames = 0  # frames since the utterance's first speech frame

    def update(self, is_speech: bool) -> VadEvent | None:
        """Feed one frame's decision; return an event when the state is confirmed."""
        state = self.state
        if state in (VadState.SPEAKING, VadState.STOPPING, VadState.STARTING):
            self.speech_frames += 1
        if state is VadState.QUIET:
            if is_speech:
                self.state, self._run, self.speech_frames = VadState.STARTING, 1, 1
                if self._run >= self.params.start_frames:
                    self.state = VadState.SPEAKING
                    return VadEvent.SPEECH_START
        elif state is VadState.STARTING:
            if not is_speech:
                self.state, self._run, self.speech_frames = VadState.QUIET, 0, 0
            else:
                self._run += 1
                if self._run >= self.params.start_frames:
                    self.state = VadState.SPEAKING
                    return VadEvent.SPEECH_START
        elif state is VadState.SPEAKING:
            if not is_speech:
                self.state, self._run = VadState.STOPPING, 1
                if self._run >= self.params.stop_frames:
                    return self._end()
        elif is_speech:  # STOPPING, speech again: same utterance
            self.state, self._run = VadState.SPEAKING, 0
        else:
            self._run += 1
            if self._run >= self.params.stop_frames:
                return self._end()
        return None

    @property
    def silent_frames(self) -> int:
        """Frames of silence so far while STOPPING (0 in any other state)."""
        return self._run if self.state is VadState.STOPPING else 0

    def _end(self) -> VadEvent:
        self.state, self._run, self.speech_frames = VadState.QUIET, 0, 0
        return VadEvent.SPEECH_END

    def reset(self) -> None:
        self.state, self._run, self.speech_frames = VadState.QUIET, 0, 0


def dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit PCM relative to full scale; -inf dB for silence."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if not len(samples):
        return -math.inf
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf
