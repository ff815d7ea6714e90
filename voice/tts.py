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
# Less audio than this for text with words in it is an engine that said nothing: espeak-ng
# gives ~7 ms for bare punctuation, a single letter takes ~500 ms.
MIN_SPEECH_MS = 30


class TtsError(RuntimeError):
    """The engine could not speak (missing voice or binary, or no audio); the message says which."""


def speakable(text: str) -> bool:
    """Whether ``text`` holds anything to say (a letter or a digit), not only punctuation."""
    return any(ch.isalnum() for ch in text)


class TtsBackend(abc.ABC):
    rate: int

    @abc.abstractmethod
    def synthesize(self, text: str) -> bytes:
        """Speak ``text``; 16-bit mono PCM at ``self.rate``. Blocking."""


def speech_synthesize(*, engine: TtsBackend, text: str) -> bytes:
    """``engine.synthesize(text)`` held to what every engine owes the caller: audio.

    Text with nothing to say gives no audio without asking the engine. Anything else
    that comes back silent (an engine that exits cleanly but writes nothing) raises
    ``TtsError``, so the turn apologises instead of going quiet.
    """
    if not speakable(text):
        return b""
    pcm = engine.synthesize(text)
    if len(pcm) < 2 * engine.rate * MIN_SPEECH_MS // 1000:
        raise TtsError(f"{type(engine).__name__} produced no audio ({len(pcm)} bytes)")
    return pcm


class PiperTts(TtsBackend):
    def __init__(self, voice_path: Path, *, length_scale: float = 1.0) -> None:
        from piper import PiperVoice, SynthesisConfig

        if not voice_path.exists():
            raise TtsError(f"Piper voice {voice_path} does not exist")
        self.voice = PiperVoice.load(str(voice_path))
        self.rate = int(self.voice.config.sample_rate)
        self.config = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> bytes:
        pcm = b"".join(chunk.audio_int16_bytes
                       for chunk in self.voice.synthesize(text, syn_config=self.config))
        if speakable(text) and len(pcm) < 2 * self.rate * MIN_SPEECH_MS // 1000:
            raise TtsError(f"Piper wrote no audio for a {len(text)}-character clause")
        return pcm


class EspeakTts(TtsBackend):
    """espeak-ng from Debian: every language, robotic but intelligible."""

    rate = 22050

    def __init__(self, voice: str, *, speed_wpm: int = 160) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise TtsError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.binary, self.voice, self.speed = binary, voice, speed_wpm

    def synthesize(self, text: str) -> bytes:
        # The text goes in on stdin, never as an argument: a clause such as
        # "-f/etc/passwd" would otherwise be read as an option (espeak-ng then speaks
        # the file), and "-x whatever" makes it print "invalid option" and write nothing.
        try:
            result = subprocess.run(  # noqa: S603  (fixed binary and options; text on stdin)
                [self.binary, "-v", self.voice, "-s", str(self.speed), "-b", "1", "--stdin",
                 "--stdout"],
                input=text.encode("utf-8", "replace"), capture_output=True,
                timeout=ESPEAK_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TtsError(f"espeak-ng did not run: {exc}") from exc
        if result.returncode != 0:
            raise TtsError(f"espeak-ng failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()[:200]}")
        try:
            with wave.open(io.BytesIO(result.stdout)) as wav:
                rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise TtsError(f"espeak-ng wrote no audio ({len(result.stdout)} bytes)") from exc
        if speakable(text) and len(pcm) < 2 * rate * MIN_SPEECH_MS // 1000:
            raise TtsError(f"espeak-ng wrote no audio ({len(pcm)} bytes of samples)")
        self.rate = rate
        return pcm


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
    if not use_piper:
        return _espeak(settings.TOM_ESPEAK_VOICE or lang, speed)
    key = ("piper", str(voice_path), scale)
    with _lock:
        if key not in _loaded:
            _loaded[key] = PiperTts(voice_path, length_scale=scale)
        return _loaded[key]


def fallback_tts(language: str) -> TtsBackend:
    """espeak-ng in ``language`` at the configured speed: what speaks an apology when the
    call's own engine is the part that failed. Raises ``TtsError`` without espeak-ng."""
    lang = (language or settings.TOM_LANGUAGE or "en").split("-")[0].lower()
    return _espeak(settings.TOM_ESPEAK_VOICE or lang, settings.TOM_ESPEAK_SPEED_WPM)


def _espeak(voice: str, speed: int) -> TtsBackend:
    key = ("espeak", voice, speed)
    with _lock:
        if key not in _loaded:
            _loaded[key] = EspeakTts(voice, speed_wpm=speed)
        return _loaded[key]
