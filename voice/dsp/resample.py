"""Streaming polyphase resampling between telephony and model rates (8k…48k).

One ``Resampler`` per call and direction keeps the filter history between chunks, so
20 ms chunks join without seams: the streamed output equals resampling the whole
signal at once. The anti-aliasing filter is a Kaiser-windowed sinc (~80 dB stopband)
with its cutoff at 95 % of the lower Nyquist, applied polyphase so only the output
samples are computed.

The filter spans ``TAPS_PER_PHASE`` samples of the lower of the two rates, whichever
way the signal goes: decimating by ``down/up`` takes that many times more input samples
per output sample (177 for Piper's 22050 Hz to 8 kHz), because the transition band
narrows only with the filter's length measured against the cutoff. At 8 kHz that leaves
the telephone band flat to 3.4 kHz and anything from 4.2 kHz up (images when
upsampling, aliases when downsampling) at least 80 dB down.

Its delay is half the filter, 4 ms at the lower rate: 22050→8000 4.01 ms,
8000→16000 3.97 ms, 16000→8000 3.97 ms, 24000→8000 3.98 ms (a round trip through
16 kHz, 8 ms). soxr's streaming resampler was measured at 100 ms before its first
output sample on 20 ms chunks, too much for barge-in.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TAPS_PER_PHASE = 64  # at the lower rate: 8 ms of an 8 kHz side
KAISER_BETA = 8.6  # about 80 dB stopband attenuation
PASSBAND = 0.95  # cutoff as a fraction of the lower Nyquist: 3.8 kHz at 8 kHz, flat to 3.4 kHz
# Output samples computed per gather: a whole clause at once would gather
# outputs x taps floats (a 10 s Piper clause to 8 kHz: 110 MB); 1024 keeps it in cache.
BLOCK = 1024


def taps_per_phase(up: int, down: int) -> int:
    """Input samples behind each output sample for rates in the ratio ``up/down``.

    ``TAPS_PER_PHASE`` samples of the lower rate: when decimating (``down > up``) that is
    ``down/up`` times as many input samples, rounded up.
    """
    return -(-TAPS_PER_PHASE * max(up, down) // up)


@lru_cache(maxsize=32)
def _polyphase_bank(up: int, down: int) -> np.ndarray:
    """Filter bank ``[phase, tap]`` for upsampling by ``up`` and decimating by ``down``."""
    per_phase = taps_per_phase(up, down)
    length = up * per_phase
    # Cutoff in cycles per upsampled sample: the lower of the two Nyquists, less a margin.
    # A Kaiser filter's transition band is inversely proportional to its length in these
    # samples, so the length scales with max(up, down) as the cutoff does. Counting taps
    # in input samples made the 22050 -> 8000 filter 2.8 times too short: -32 dB at
    # 4.4 kHz, which folds onto 3.6 kHz.
    cutoff = PASSBAND * 0.5 / max(up, down)
    n = np.arange(length) - (length - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, KAISER_BETA)
    taps *= up / taps.sum()  # unity gain at DC after zero-stuffing by ``up``
    # taps[p + k * up] weighs the input k samples older than the newest one; each phase's
    # row is stored oldest first so that it lines up with a window of the input.
    return np.ascontiguousarray(taps.reshape(per_phase, up).T[:, ::-1])


class Resampler:
    """Resample 16-bit little-endian mono PCM from ``in_rate`` to ``out_rate``, chunk by chunk."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate, self.out_rate = in_rate, out_rate
        divisor = gcd(in_rate, out_rate)
        self._up, self._down = out_rate // divisor, in_rate // divisor
        self._bank = _polyphase_bank(self._up, self._down) if in_rate != out_rate else None
        self._taps = taps_per_phase(self._up, self._down)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new utterance, or after barge-in)."""
        self._history = np.zeros(self._taps - 1, dtype=np.float64)
        self._consumed = 0  # input samples seen, in total
        self._produced = 0  # output samples made, in total

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk; returns every output sample the input so far determines."""
        if len(pcm) % 2:
            raise ValueError("16-bit PCM must have an even number of bytes")
        if self._bank is None or not pcm:
            return pcm
        chunk = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        # buffer[j] holds absolute input sample (self._consumed - taps + 1 + j), so
        # windows[j] is the filter's input when absolute sample (self._consumed + j)
        # is the newest.
        buffer = np.concatenate([self._history, chunk])
        windows = sliding_window_view(buffer, self._taps)
        total = self._consumed + len(chunk)
        # Output n needs input floor(n * down / up); make all n whose input has arrived.
        last = (total * self._up - 1) // self._down if total else -1
        out = np.empty(last + 1 - self._produced, dtype=np.float64)
        for first in range(0, len(out), BLOCK):
            size = min(BLOCK, len(out) - first)
            m = np.arange(self._produced + first, self._produced + first + size,
                          dtype=np.int64) * self._down
            phase, newest = m % self._up, m // self._up
            out[first:first + size] = np.einsum("ij,ij->i", self._bank[phase],
                                                windows[newest - self._consumed])
        self._history = buffer[len(buffer) - (self._taps - 1):]
        self._consumed, self._produced = total, last + 1
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole signal at once (same filter as the streaming path)."""
    return Resampler(in_rate, out_rate).process(pcm)
