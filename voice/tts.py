"""Text-to-speech: Piper voices (any by path), espeak-ng as the fallback engine.

``synthesize`` is blocking and returns 16-bit mono PCM at the engine's own rate; the
session resamples to the call's rate with voice/dsp. Voices load once per process.
"""

from __future__ import annotations

import abc
import io
import shutil
import subprocess
import threading
import wave
from pathlib import Path
from typing import Any

from django.conf import settings

from voice import models

ESPEAK_TIMEOUT_S = 20


class TtsError(RuntimeError):
    """The engine could not speak (missing voice or binary); the message says which."""


class TtsBackend(abc.ABC):
    rate: int

    @abc.abstractmethod
    def synthesize(self, text: str) -> bytes:
        """Speak ``text``; 16-bit mono PCM at ``self.rate``. Blocking."""


class PiperTts(TtsBackend):
    def __init__(self, voice_path: Path, *, length_scale: float = 1.0) -> None:
        from piper import PiperVoice, SynthesisConfig

        if not voice_path.exists():
            raise TtsError(f"Piper voice {voice_path} does not exist")
        self.voice = PiperVoice.load(str(voice_path))
        self.rate = int(self.voice.config.sample_rate)
        self.config = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> bytes:
        return b"".join(chunk.audio_int16_bytes
                        for chunk in self.voice.synthesize(text, syn_config=self.config))


class EspeakTts(TtsBackend):
    """espeak-ng from Debian: every language, robotic but intelligible."""

    rate = 22050

    def __init__(self, voice: str, *, speed_wpm: int = 160) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise TtsError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.binary, self.voice, self.speed = binary, voice, speed_wpm

    def synthesize(self, text: str) -> bytes:
        result = subprocess.run(  # noqa: S603  (fixed binary; text goes in as one argument)
            [self.binary, "-v", self.voice, "-s", str(self.speed), "--stdout", text],
            capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=False,
        )
        if result.returncode != 0:
            raise TtsError(f"espeak-ng failed ({result.returncode})")
        with wave.open(io.BytesIO(result.stdout)) as wav:
            self.rate = wav.getframerate()
            return wav.readframes(wav.getnframes())


_lock = threading.Lock()
_loaded: dict[tuple[Any, ...], TtsBackend] = {}


def get_tts(language: str, *, voice: str = "", length_scale: float | None = None
            ) -> TtsBackend:
    """The engine for ``language``: Piper when a Piper voice speaks it, else espeak-ng.

    ``voice`` (a Piper .onnx path) and ``length_scale`` come from a policy variant; the
    length scale slows espeak-ng too (``TOM_ESPEAK_SPEED_WPM`` divided by it).
    """
    lang = (language or settings.TOM_LANGUAGE or "en").split("-")[0].lower()
    use_piper = settings.TOM_TTS_ENGINE == "piper" and (
        bool(voice or settings.TOM_PIPER_VOICE) or lang == "en")  # the packaged voice is English
    voice_path = Path(voice) if voice else models.piper_voice_path()
    scale = settings.TOM_TTS_LENGTH_SCALE if length_scale is None else length_scale
    speed = max(80, min(450, round(settings.TOM_ESPEAK_SPEED_WPM / scale)))
    key: tuple[Any, ...] = (("piper", str(voice_path), scale) if use_piper
                            else ("espeak", settings.TOM_ESPEAK_VOICE or lang, speed))
    with _lock:
        if key not in _loaded:
            if use_piper:
                _loaded[key] = PiperTts(voice_path, length_scale=scale)
            else:
                _loaded[key] = EspeakTts(settings.TOM_ESPEAK_VOICE or lang, speed_wpm=speed)
        return _loaded[key]
