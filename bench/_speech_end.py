"""Where a caller WAV's speech ends: the shared definition of "end of speech" for TOM's
and Pipecat's latency benches (numpy only, so the Pipecat venv can import it too)."""

from __future__ import annotations

import numpy as np

FRAME_MS = 10
# A 10 ms frame louder than this is speech (or its tail); the corpus's silence is digital
# zero through the mu-law round trip, a real line's hiss sits near -60 dBFS.
SPEECH_DBFS = -45.0


def last_speech_s(pcm: bytes, rate: int) -> float:
    """Seconds from the start of 16-bit mono ``pcm`` to the end of its last speech frame
    (0.0 for silence)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    size = rate * FRAME_MS // 1000
    frames = samples[: samples.size // size * size].reshape(-1, size)
    if not frames.size:
        return 0.0
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.nonzero(20 * np.log10(np.maximum(rms, 1e-10)) > SPEECH_DBFS)[0]
    return 0.0 if not loud.size else float((loud[-1] + 1) * FRAME_MS / 1000)
