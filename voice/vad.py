"""Frame classifiers for the VAD state machine (voice/dsp/vad.py), chosen by
``TOM_VAD_BACKEND`` through voice.backends."""

from __future__ import annotations

import abc
import threading
from pathlib import Path
from typing import Any

import numpy as np
import webrtcvad
from django.conf import settings
from django.core.checks import CheckMessage, Error

from voice import backends
from voice.dsp.resample import Resampler
from voice.dsp.vad import dbfs

WEBRTC_RATES = (8000, 16000, 32000, 48000)


class VadBackend(abc.ABC):
    """What ``TOM_VAD_BACKEND`` names. Unlike the models, a classifier carries one call's
    stream state, so the handler loads the class once and each call builds its own."""

    @classmethod
    def create(cls, *, rate: int, aggressiveness: int | None = None) -> VadBackend:
        """A classifier for one call at ``rate``; ``aggressiveness`` (0-3) is for the
        backends that have one (default ``TOM_VAD_AGGRESSIVENESS``)."""
        return cls(rate=rate)  # type: ignore[call-arg]  # a subclass's own constructor

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System-check messages about this backend's configuration."""
        return []

    @abc.abstractmethod
    def is_speech(self, frame: bytes, *, level: float | None = None) -> bool:
        """Decide one 10/20/30 ms frame of 16-bit mono PCM (``level``: its dBFS, if known)."""


def make_classifier(*, rate: int, engine: str | None = None,
                    aggressiveness: int | None = None) -> VadBackend:
    """A classifier from ``TOM_VAD_BACKEND`` (``webrtc``: microseconds a frame, or
    ``silero``: ONNX, or a dotted path); ``engine`` names another for this one.

    Raises ``BackendUnavailable`` when the setting names nothing loadable.
    """
    try:
        cls = backends.backend_class("vad", spec=engine)
    except backends.BackendError as exc:
        raise backends.BackendUnavailable(str(exc)) from None
    classifier: VadBackend = cls.create(rate=rate, aggressiveness=aggressiveness)
    return classifier


class WebrtcClassifier(VadBackend):
    """webrtcvad's decision, gated by a minimum level so line hiss is not speech."""

    @classmethod
    def create(cls, *, rate: int, aggressiveness: int | None = None) -> VadBackend:
        return cls(rate=rate, aggressiveness=settings.TOM_VAD_AGGRESSIVENESS
                   if aggressiveness is None else aggressiveness)

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


class SileroClassifier(VadBackend):
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
    def check(cls) -> list[CheckMessage]:
        try:
            path = cls._model_path()
        except ImportError as exc:
            problem = f"faster-whisper is not installed ({exc})"
        else:
            problem = "" if path.exists() else f"{path} does not exist"
        if not problem:
            return []
        return [Error(f"TOM_VAD_BACKEND is silero but its model is missing: {problem}.",
                      hint="Reinstall faster-whisper (it ships silero_vad_v6.onnx), or use "
                           "TOM_VAD_BACKEND=webrtc.", id="voice.E014")]

    @staticmethod
    def _model_path() -> Path:
        from faster_whisper.utils import get_assets_path

        return Path(get_assets_path()) / "silero_vad_v6.onnx"

    @classmethod
    def _load(cls) -> Any:
        with cls._session_lock:
            if cls._session is None:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.inter_op_num_threads = options.intra_op_num_threads = 1
                cls._session = onnxruntime.InferenceSession(
                    str(cls._model_path()), providers=["CPUExecutionProvider"],
                    sess_options=options)
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
