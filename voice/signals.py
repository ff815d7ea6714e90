"""Test signals for calls without a speech model: a buzz that VADs take for a voice."""

from __future__ import annotations

import numpy as np


def voiced(rate: int, seconds: float, *, freq: float = 140.0, level: float = 6000) -> bytes:
    """A vowel-like buzz (harmonics of ``freq``) with 20 ms fades, as 16-bit mono PCM."""
    t = np.arange(int(rate * seconds)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 20))
    envelope = np.minimum(1, np.minimum(t, t[::-1]) / 0.02)  # fades: no clicks
    return (level * envelope * wave / np.max(np.abs(wave))).astype("<i2").tobytes()
