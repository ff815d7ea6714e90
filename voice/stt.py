"""Speech-to-text: faster-whisper on one caller utterance at a time.

Models load once per process and are shared by every call; inference runs in worker
threads (the caller of ``transcribe`` uses ``asyncio.to_thread``) so the event loop
never blocks. int8 on the CPU, float16 on CUDA.
"""

from __future__ import annotations

import abc
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.checks import CheckMessage, Error

from voice import backends, models
from voice.dsp.resample import resample

WHISPER_RATE = 16000
# Whisper decodes at most 448 tokens. A caller says at most ~4 words a second and a
# German word is ~2.5 tokens, so anything past 10 tokens a second (plus a margin) is a
# repetition loop, which biasing makes likelier: measured at up to 14.6 s for one
# noisy 3 s clip before this cap and the single-temperature decode below.
TOKENS_PER_SECOND = 10
TOKEN_MARGIN = 12
MAX_NEW_TOKENS = 220
# A run of 1-6 words, the first with a letter (digits said thrice are a part number).
_REPEAT = re.compile(r"\b((?=\w*[^\W\d])\w+(?:\W+\w+){0,5}?)(?:\W+\1\b){2,}", re.IGNORECASE)


def repeats_collapsed(text: str) -> str:
    """One copy of any run of words said three or more times in a row ("the the the",
    "für einen Golf, für einen Golf, für einen Golf"): Whisper's loops, not speech."""
    previous = None
    while previous != text:
        previous, text = text, _REPEAT.sub(r"\1", text)
    return text


def max_new_tokens(*, samples: int, rate: int) -> int:
    return min(MAX_NEW_TOKENS, int(samples / rate * TOKENS_PER_SECOND) + TOKEN_MARGIN)


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    language: str
    ms: int


class SttBackend(abc.ABC):
    """What ``TOM_STT_BACKEND`` names: built once per ``settings_key`` (voice.backends)."""

    @classmethod
    def from_settings(cls, *, model: str | None = None) -> SttBackend:
        """A backend configured from settings; ``model`` is a call's model choice."""
        return cls()

    @classmethod
    def settings_key(cls, *, model: str | None = None) -> tuple[Any, ...]:
        """What ``from_settings`` reads: instances are shared while it stays the same."""
        return (model,)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System-check messages about this backend's configuration."""
        return []

    @abc.abstractmethod
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        """Transcribe 16-bit mono PCM at ``rate``; blocking (run it in a thread).

        ``hotwords`` or ``prompt``: catalog terms to bias recognition towards, as
        faster-whisper's hotwords or as an initial prompt (toolhub.entities).
        """


class EncodedCache:
    """The last few utterances' encoder outputs, by audio digest: a second decode of the
    same audio (with the catalog's prompt) skips the encoder. Threads share it."""

    def __init__(self, size: int = 8) -> None:
        self.size, self._items = size, OrderedDict[Any, Any]()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _cuda_available() -> bool:
    from voice.gpu import cuda_device_count

    return cuda_device_count() > 0  # and its cuBLAS/cuDNN loaded (the ``gpu`` extra)


class WhisperStt(SttBackend):
    def __init__(self, model_dir: Path, *, device: str = "auto", compute_type: str = "auto",
                 beam_size: int = 1) -> None:
        from faster_whisper import WhisperModel

        if not (model_dir / "model.bin").exists():
            raise models.ModelError(f"no Whisper model in {model_dir}: run manage.py tom_models")
        self.device = ("cuda" if _cuda_available() else "cpu") if device == "auto" else device
        if self.device == "cuda":
            from voice.gpu import cuda_libraries_preload

            cuda_libraries_preload()  # TOM_STT_DEVICE=cuda skips the probe that loads them
        if compute_type == "auto":
            compute_type = "float16" if self.device == "cuda" else "int8"
        self.model = WhisperModel(str(model_dir), device=self.device, compute_type=compute_type)
        self.english_only = model_dir.name.endswith(".en") or "tiny_en" in str(model_dir) or (
            model_dir == models.tiny_en_dir())
        self.beam_size = beam_size
        self.encoded = EncodedCache()

    @classmethod
    def from_settings(cls, *, model: str | None = None) -> SttBackend:
        return cls(models.stt_model_dir(model), device=settings.TOM_STT_DEVICE,
                   compute_type=settings.TOM_STT_COMPUTE_TYPE,
                   beam_size=settings.TOM_STT_BEAM_SIZE)

    @classmethod
    def settings_key(cls, *, model: str | None = None) -> tuple[Any, ...]:
        return (str(models.stt_model_dir(model)), settings.TOM_STT_DEVICE,
                settings.TOM_STT_COMPUTE_TYPE, settings.TOM_STT_BEAM_SIZE)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        # The default and every per-language model (a variant's is checked when saved).
        for name in dict.fromkeys([settings.TOM_STT_MODEL, *settings.TOM_STT_MODELS.values()]):
            try:
                stt_dir = models.stt_model_dir(name)
                problem = "" if (stt_dir / "model.bin").exists() else f"{stt_dir} has no model.bin"
            except models.ModelError as exc:
                problem = str(exc)
            if problem:
                messages.append(Error(
                    f"STT model {name} is not available: {problem}.",
                    hint="Run `python manage.py tom_models` (whisper-small: `tom_models "
                         "whisper-small`), or set TOM_STT_MODEL / TOM_STT_MODELS to a "
                         "CTranslate2 Whisper folder.", id="voice.E001"))
        return messages

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        started = time.perf_counter()
        audio16 = pcm if rate == WHISPER_RATE else resample(pcm, rate, WHISPER_RATE)
        audio = np.frombuffer(audio16, dtype="<i2").astype(np.float32) / 32768.0
        lang = "en" if self.english_only else (language or None)
        if settings.TOM_STT_WINDOW_S < 30 and audio.size <= 30 * WHISPER_RATE:
            # One window, shortened: the speech server's decode, so that both designs
            # hear alike (voice.speech.whisper_batch.window_frames).
            from voice.speech.whisper_batch import SttJob, decode_batch

            [heard] = decode_batch(self, [SttJob(model_key="", audio=audio, language=lang,
                                                 prompt=prompt, hotwords=hotwords)])
            return Transcription(text=heard.text, language=heard.language,
                                 ms=round((time.perf_counter() - started) * 1000))
        segments, info = self.model.transcribe(
            audio, language=lang, beam_size=self.beam_size,
            condition_on_previous_text=False,  # no hallucinated carry-over between turns
            vad_filter=False,  # TOM's own VAD already cut the utterance
            hotwords=hotwords or None,
            initial_prompt=prompt or None,
            # One greedy pass: the temperature fallback re-decodes up to five more times
            # when a loop trips the compression-ratio check, which is what made looping
            # clips slow. The token cap ends a loop early and the text is de-duplicated.
            temperature=0.0,
            max_new_tokens=max_new_tokens(samples=audio.size, rate=WHISPER_RATE),
        )
        text = repeats_collapsed(" ".join(segment.text.strip() for segment in segments).strip())
        return Transcription(text=text, language=info.language,
                             ms=round((time.perf_counter() - started) * 1000))


def get_stt(model: str | None = None) -> SttBackend:
    """The process-wide ``TOM_STT_BACKEND`` for ``model`` (default ``TOM_STT_MODEL``)."""
    backend: SttBackend = backends.backend_instance("stt", model=model)
    return backend
