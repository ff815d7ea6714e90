"""Frame classifiers for the VAD state machine (voice/dsp/vad.py)."""

from __future__ import annotations

import webrtcvad

from voice.dsp.resample import Resampler
from voice.dsp.vad import dbfs

WEBRTC_RATES = (8000, 16000, 32000, 48000)


class WebrtcClassifier:
    """webrtcvad's decision, gated by a minimum level so line hiss is not speech."""

    def __init__(self, *, rate: int, aggressiveness: int, min_dbfs: float = -55.0) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.min_dbfs = min_dbfs
        # webrtcvad takes 8/16/32/48 kHz only; other rates (24 kHz) are resampled to 16 kHz.
        self._rate = rate if rate in WEBRTC_RATES else 16000
        self._resampler = None if rate in WEBRTC_RATES else Resampler(rate, 16000)

    def is_speech(self, frame: bytes, *, level: float | None = None) -> bool:
        """Decide one 10/20/30 ms frame of 16-bit mono PCM (``level``: its dBFS, if known)."""
        if (dbfs(frame) if level is None else level) < self.min_dbfs:
            return False
        if self._resampler is not None:
            frame = self._resampler.process(frame)
        return bool(self._vad.is_speech(frame, self._rate))
