"""Frame classifiers for the VAD state machine (voice/dsp/vad.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import webrtcvad

from voice.dsp.resample import Resampler
from voice.dsp.vad import dbfs

WEBRTC_RATES = (8000, 16000, 32000, 48000)


class FrameClassifier(Protocol):
    def is_speech(self, frame: bytes, *, level: float | None = None) -> bool: ...


def make_classifier(*, rate: int, engine: str, aggressiveness: int) -> FrameClassifier:
    """``TOM_VAD_ENGINE``: ``webrtc`` (default, microseconds a frame) or ``silero`` (ONNX)."""
    if engine == "silero":
        return SileroClassifier(rate=rate)
    return WebrtcClassifier(rate=rate, aggressiveness=aggressiveness)


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


class SileroClassifier:
    """Silero VAD (the ONNX model shipped inside faster-whisper), run as a stream.

    The model reads 512-sample windows at 16 kHz with 64 samples of left context and
    carries an LSTM state (h, c) between windows; 20 ms frames are resampled to 16 kHz,
    gathered into windows, and each frame is judged by the latest window's probability.
    """

    WINDOW, CONTEXT = 512, 64
    _session: Any = None
    _session_lock = threading.Lock()

    def __init__(self, *, rate: int, threshold: float = 0.5, min_dbfs: float = -55.0) -> None:
        self.threshold, self.min_dbfs = threshold, min_dbfs
        self._resampler = None if rate == 16000 else Resampler(rate, 16000)
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self.probability = 0.0
        self.session = self._load()

    @classmethod
    def _load(cls) -> Any:
        with cls._session_lock:
            if cls._session is None:
                import onnxruntime
                from faster_whisper.utils import get_assets_path

                options = onnxruntime.SessionOptions()
                options.inter_op_num_threads = options.intra_op_num_threads = 1
                path = Path(get_assets_path()) / "silero_vad_v6.onnx"
                cls._session = onnxruntime.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"], sess_options=options)
            return cls._session

    def is_speech(self, frame: bytes, *, level: float | None = None) -> bool:
        pcm = frame if self._resampler is None else self._resampler.process(frame)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        while len(self._pending) >= self.WINDOW:
            window, self._pending = self._pending[: self.WINDOW], self._pending[self.WINDOW:]
            batch = np.concatenate([self._context, window])[None, :]
            probs, self._h, self._c = self.session.run(
                None, {"input": batch, "h": self._h, "c": self._c})
            self.probability = float(np.asarray(probs).reshape(-1)[-1])
            self._context = window[-self.CONTEXT:]
        if (dbfs(frame) if level is None else level) < self.min_dbfs:
            return False
        return self.probability >= self.threshold
