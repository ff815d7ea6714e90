"""The speech server's models: Whisper models and Piper voices, loaded once, warmed, shared.

The HTTP side (voice.speech.server) turns requests into calls here; transcriptions go
through the Whisper batcher and syntheses through the clause-priority queue, so requests
of several calls (and of several web processes) share the models and their cores.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from voice import models
from voice.dsp.resample import resample
from voice.speech.synth_queue import SynthesisQueue, TtsJob
from voice.speech.whisper_batch import SttJob, WhisperBatcher
from voice.stt import WHISPER_RATE, Transcription, WhisperStt
from voice.tts import PiperTts, TtsBackend, TtsError

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 120.0  # a request still queued then is answered with an error
WARM_UP_TEXT = {"en": "Hello, how can I help you today?",
                "de": "Hallo, wie kann ich Ihnen heute helfen?"}
# What OpenAI clients send as "model" when they name none of TOM's: the default model.
GENERIC_MODELS = ("", "whisper-1")


class BadRequest(ValueError):
    """The request names something this server cannot serve; the message says what."""


class SpeechService:
    def __init__(self, *, max_batch: int, tts_workers: int) -> None:
        self.whispers: dict[str, WhisperStt] = {}
        self.voices: dict[tuple[Any, ...], TtsBackend] = {}
        self._loading = threading.Lock()
        self.batcher = WhisperBatcher(models=self.whispers, max_batch=max_batch)
        self.synth = SynthesisQueue(workers=tts_workers or os.cpu_count() or 2)
        self.warm = threading.Event()
        self.warm_seconds: float | None = None

    # --- models ------------------------------------------------------------------

    def whisper_key(self, name: str) -> str:
        """The folder of the Whisper model ``name`` (a TOM name, a folder, or "" for
        ``TOM_STT_MODEL``), loaded on first use."""
        try:
            folder = models.stt_model_dir(None if name in GENERIC_MODELS else name)
        except models.ModelError as exc:
            raise BadRequest(str(exc)) from None
        key = str(folder)
        if key not in self.whispers:
            with self._loading:
                if key not in self.whispers:
                    if not (Path(folder) / "model.bin").exists():
                        raise BadRequest(f"no Whisper model {name!r} ({folder} has no model.bin)")
                    started = time.perf_counter()
                    self.whispers[key] = WhisperStt(
                        Path(folder), device=settings.TOM_STT_DEVICE,
                        compute_type=settings.TOM_STT_COMPUTE_TYPE,
                        beam_size=settings.TOM_STT_BEAM_SIZE)
                    logger.info("speech.whisper_loaded", extra={
                        "model": key, "seconds": round(time.perf_counter() - started, 2)})
        return key

    def voice(self, *, language: str, voice: str, length_scale: float | None) -> TtsBackend:
        """The Piper voice (espeak-ng where none speaks ``language``), loaded on first use."""
        if voice and not (voice.endswith(".onnx") and Path(voice).is_file()):
            raise BadRequest(f"no Piper voice at {voice!r}")
        key = PiperTts.settings_key(language=language, voice=voice, length_scale=length_scale)
        if key not in self.voices:
            with self._loading:
                if key not in self.voices:
                    self.voices[key] = PiperTts.from_settings(
                        language=language, voice=voice, length_scale=length_scale)
                    logger.info("speech.voice_loaded", extra={"voice": str(key[1])})
        return self.voices[key]

    # --- requests ----------------------------------------------------------------

    def transcribe(self, *, pcm: bytes, rate: int, model: str, language: str | None,
                   prompt: str = "", hotwords: str = "") -> tuple[Transcription, int]:
        """The text of 16-bit mono ``pcm``, and how many utterances were decoded with it."""
        key = self.whisper_key(model)
        audio16 = pcm if rate == WHISPER_RATE else resample(pcm, rate, WHISPER_RATE)
        audio = np.frombuffer(audio16, dtype="<i2").astype(np.float32) / 32768.0
        job = self.batcher.submit(SttJob(model_key=key, audio=audio, language=language or None,
                                         prompt=prompt, hotwords=hotwords))
        return job.wait(REQUEST_TIMEOUT_S), job.batch_size

    def synthesize(self, *, text: str, language: str, voice: str, length_scale: float | None,
                   clause: int) -> tuple[bytes, int]:
        """16-bit mono PCM of ``text`` and its rate."""
        engine = self.voice(language=language, voice=voice, length_scale=length_scale)
        job = self.synth.submit(TtsJob(engine=engine, text=text, clause=clause))
        pcm = job.wait(REQUEST_TIMEOUT_S)
        return pcm, job.rate or engine.rate

    # --- start-up ----------------------------------------------------------------

    def warm_up(self) -> None:
        """Load every configured model and voice and run each once: ready means warm."""
        started = time.perf_counter()
        language = (settings.TOM_LANGUAGE or "en").split("-")[0].lower()
        pcm, rate = self.synthesize(text=WARM_UP_TEXT.get(language, WARM_UP_TEXT["en"]),
                                    language=language, voice="", length_scale=None, clause=0)
        if not pcm:
            raise TtsError("the warm-up sentence gave no audio")
        names = dict.fromkeys([settings.TOM_STT_MODEL, *settings.TOM_STT_MODELS.values()])
        for name in names:
            heard, _ = self.transcribe(pcm=pcm, rate=rate, model=name, language=language)
            logger.info("speech.warm_transcription", extra={"model": name, "ms": heard.ms})
        self.warm_seconds = round(time.perf_counter() - started, 2)
        self.warm.set()
        logger.info("speech.warm", extra={"seconds": self.warm_seconds,
                                          "models": list(self.whispers)})

    def health(self) -> dict[str, Any]:
        default = next(iter(self.voices.values()), None)
        return {"status": "ok" if self.warm.is_set() else "loading", "pid": os.getpid(),
                "warm_seconds": self.warm_seconds, "models": list(self.whispers),
                "rate": default.rate if default is not None else None,
                "stt": self.batcher.stats(), "tts": self.synth.stats()}
