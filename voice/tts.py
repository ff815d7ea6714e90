"""Text-to-speech: Piper voices (any by path), espeak-ng as the fallback engine.

``synthesize`` is blocking and returns 16-bit mono PCM at the engine's own rate; the
session resamples to the call's rate with voice/dsp. Voices load once per process.
"""

from __future__ import annotations

import abc
import contextvars
import io
import shutil
import subprocess
import threading
import wave
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from voice import backends, models

ESPEAK_TIMEOUT_S = 20
# Less audio than this for text with words in it is an engine that said nothing: espeak-ng
# gives ~7 ms for bare punctuation, a single letter takes ~500 ms.
MIN_SPEECH_MS = 30


# The index in its reply of the clause being synthesized (0: the first), set by the TTS
# stage for the thread that speaks it: an engine serving several calls at once
# (voice.speech) speaks every caller's first clause before anyone's later ones.
clause_index: contextvars.ContextVar[int] = contextvars.ContextVar("tts_clause_index",
                                                                   default=0)


class TtsError(RuntimeError):
    """The engine could not speak (missing voice or binary, or no audio); the message says which."""


def speakable(text: str) -> bool:
    """Whether ``text`` holds anything to say (a letter or a digit), not only punctuation."""
    return any(ch.isalnum() for ch in text)


class TtsBackend(abc.ABC):
    """What ``TOM_TTS_BACKEND`` names: built once per ``settings_key`` (voice.backends).

    ``language``, ``voice`` (a Piper .onnx path) and ``length_scale`` come from the
    call's policy variant; a backend uses what applies to it.
    """

    rate: int

    @classmethod
    def from_settings(cls, *, language: str, voice: str = "",
                      length_scale: float | None = None) -> TtsBackend:
        """A backend configured from settings for one call's language and variant."""
        return cls()

    @classmethod
    def settings_key(cls, *, language: str, voice: str = "",
                     length_scale: float | None = None) -> tuple[Any, ...]:
        """What ``from_settings`` reads: instances are shared while it stays the same."""
        return (_language(language), voice, length_scale)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System-check messages about this backend's configuration."""
        return []

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

    @classmethod
    def from_settings(cls, *, language: str, voice: str = "",
                      length_scale: float | None = None) -> TtsBackend:
        if not piper_speaks(language=language, voice=voice):
            return EspeakTts.from_settings(language=language, length_scale=length_scale)
        return cls(Path(voice) if voice else models.piper_voice_path(),
                   length_scale=_scale(length_scale))

    @classmethod
    def settings_key(cls, *, language: str, voice: str = "",
                     length_scale: float | None = None) -> tuple[Any, ...]:
        if not piper_speaks(language=language, voice=voice):
            return EspeakTts.settings_key(language=language, length_scale=length_scale)
        return ("piper", str(Path(voice) if voice else models.piper_voice_path()),
                _scale(length_scale))

    @classmethod
    def check(cls) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if settings.TOM_PIPER_VOICE and not Path(settings.TOM_PIPER_VOICE).exists():
            messages.append(Error(f"TOM_PIPER_VOICE {settings.TOM_PIPER_VOICE} does not exist.",
                                  hint="Point it at a Piper .onnx voice (its .onnx.json "
                                       "beside it).", id="voice.E003"))
        if shutil.which("espeak-ng") is None:
            messages.append(Warning("espeak-ng is not installed: languages without a Piper "
                                    "voice cannot be spoken.", hint="apt-get install espeak-ng",
                                    id="voice.W001"))
        return messages

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

    @classmethod
    def from_settings(cls, *, language: str, voice: str = "",
                      length_scale: float | None = None) -> TtsBackend:
        return cls(settings.TOM_ESPEAK_VOICE or _language(language),
                   speed_wpm=_espeak_speed(_scale(length_scale)))

    @classmethod
    def settings_key(cls, *, language: str, voice: str = "",
                     length_scale: float | None = None) -> tuple[Any, ...]:
        return ("espeak", settings.TOM_ESPEAK_VOICE or _language(language),
                _espeak_speed(_scale(length_scale)))

    @classmethod
    def check(cls) -> list[CheckMessage]:
        if shutil.which("espeak-ng") is not None:
            return []
        return [Error("TOM_TTS_BACKEND is espeak but espeak-ng is not installed: no call "
                      "could be spoken.", hint="apt-get install espeak-ng", id="voice.E013")]

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


def _language(language: str) -> str:
    return (language or settings.TOM_LANGUAGE or "en").split("-")[0].lower()


def _scale(length_scale: float | None) -> float:
    return settings.TOM_TTS_LENGTH_SCALE if length_scale is None else length_scale


def _espeak_speed(scale: float) -> int:
    """``TOM_ESPEAK_SPEED_WPM`` slowed by the length scale, within espeak-ng's range."""
    return max(80, min(450, round(settings.TOM_ESPEAK_SPEED_WPM / scale)))


def piper_speaks(*, language: str, voice: str) -> bool:
    # The packaged voice is English; a configured or variant voice speaks its language.
    return bool(voice or settings.TOM_PIPER_VOICE) or _language(language) == "en"


def get_tts(language: str, *, voice: str = "", length_scale: float | None = None
            ) -> TtsBackend:
    """The ``TOM_TTS_BACKEND`` engine for ``language``; ``piper`` speaks through
    espeak-ng where no Piper voice speaks the language.

    ``voice`` (a Piper .onnx path) and ``length_scale`` come from a policy variant; the
    length scale slows espeak-ng too (``TOM_ESPEAK_SPEED_WPM`` divided by it).
    """
    engine: TtsBackend = backends.backend_instance(
        "tts", language=language, voice=voice, length_scale=length_scale)
    return engine


def fallback_tts(language: str) -> TtsBackend:
    """espeak-ng in ``language`` at the configured speed: what speaks an apology when the
    call's own engine is the part that failed. Raises ``TtsError`` without espeak-ng."""
    return _espeak(settings.TOM_ESPEAK_VOICE or _language(language),
                   settings.TOM_ESPEAK_SPEED_WPM)


_lock = threading.Lock()
_loaded: dict[tuple[Any, ...], TtsBackend] = {}


def caller_voice() -> TtsBackend:
    """The packaged Piper voice loaded in this process: what speaks the *caller's* side of
    TOM's own test calls (the demo, greenlight probes, benches). A test caller must not
    need the TTS service it is testing: the demo call of an echo session starts no speech
    server, and a probe through a dead one should fail on TOM's side, not before dialling."""
    key = ("caller", str(models.piper_voice_path()))
    with _lock:
        if key not in _loaded:
            _loaded[key] = PiperTts(models.piper_voice_path())
        return _loaded[key]


def _espeak(voice: str, speed: int) -> TtsBackend:
    key = ("espeak", voice, speed)
    with _lock:
        if key not in _loaded:
            _loaded[key] = EspeakTts(voice, speed_wpm=speed)
        return _loaded[key]
