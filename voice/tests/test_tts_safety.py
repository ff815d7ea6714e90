"""Untrusted text reaches espeak-ng as text, never as options; an engine that says nothing
is a ``TtsError``; and a turn whose speech fails still gets a spoken apology.

Everything here runs the real espeak-ng (deploy/local/_system.sh installs it for the tests).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from voice import tts
from voice.protocols.metadata import CallStart
from voice.session import local
from voice.session.events import AgentAudio, Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tests.test_local_session import RATE, ScriptedLlm, ScriptedStt, ScriptedTts, _feed

# Read aloud, this takes about a minute; a few spoken words take a few seconds.
SECRET = " ".join(["The vault code is swordfish and the spare key lies under the mat."] * 12)


def _seconds(engine: tts.TtsBackend, pcm: bytes) -> float:
    return len(pcm) / 2 / engine.rate


@pytest.fixture
def espeak() -> tts.EspeakTts:
    assert shutil.which("espeak-ng"), "espeak-ng is missing: apt-get install espeak-ng"
    return tts.EspeakTts("en")


def test_a_clause_that_looks_like_a_file_option_is_spoken_not_read(
        espeak: tts.EspeakTts, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    reading_the_file = _seconds(espeak, espeak.synthesize(SECRET))
    assert reading_the_file > 30  # the comparison below means something
    pcm = espeak.synthesize(f"-f{secret}")
    # The path spoken as words: a few seconds, nowhere near the file's minute.
    assert 1.0 < _seconds(espeak, pcm) < 15, _seconds(espeak, pcm)
    hostname = espeak.synthesize("-f/etc/hostname")
    assert 1.0 < _seconds(espeak, hostname) < 10


def test_a_clause_starting_with_a_dash_produces_audio(espeak: tts.EspeakTts) -> None:
    # As an argument, espeak-ng printed "invalid option" and wrote nothing.
    pcm = espeak.synthesize("-x whatever")
    assert _seconds(espeak, pcm) > 0.5
    assert _seconds(espeak, espeak.synthesize("--help me please")) > 0.8


def test_an_engine_writing_no_audio_raises_tts_error(espeak: tts.EspeakTts) -> None:
    silent = tts.EspeakTts("en")
    silent.binary = shutil.which("true") or "/bin/true"  # exits 0, writes nothing
    with pytest.raises(tts.TtsError, match="no audio"):
        silent.synthesize("Your brake pads are in stock.")
    failing = tts.EspeakTts("en")
    failing.binary = shutil.which("false") or "/bin/false"  # exits 1
    with pytest.raises(tts.TtsError, match="failed"):
        failing.synthesize("Your brake pads are in stock.")
    with pytest.raises(tts.TtsError, match="failed"):  # the real binary, a voice it lacks
        tts.EspeakTts("xx-no-such-voice").synthesize("hello")


class SilentTts(tts.TtsBackend):
    """An engine from elsewhere (a provider) that answers with no audio at all."""

    rate = 8000

    def __init__(self) -> None:
        self.asked: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.asked.append(text)
        return b""


def test_every_engine_is_held_to_producing_audio() -> None:
    engine = SilentTts()
    with pytest.raises(tts.TtsError, match="SilentTts produced no audio"):
        tts.speech_synthesize(engine=engine, text="Fifty euros.")
    # Bare punctuation has nothing to say: no audio, and the engine is not even asked.
    assert tts.speech_synthesize(engine=engine, text=" ... ") == b""
    assert engine.asked == ["Fifty euros."]


def _call() -> CallStart:
    return CallStart(uuid="tts-fail", sample_rate=RATE, channels=1, mix_type="mono",
                     encoding="l16", language="en")


async def _first_agent_audio(session: LocalSession) -> tuple[list[Any], AgentAudio]:
    seen: list[Any] = []
    async with asyncio.timeout(30):
        while True:
            event = await session.events.get()
            seen.append(event)
            if isinstance(event, AgentAudio):
                return seen, event


async def test_a_turn_whose_voice_fails_gets_the_apology_from_espeak(
        settings: Any) -> None:
    settings.TOM_ESPEAK_VOICE = ""
    broken = tts.EspeakTts("en")
    broken.binary = shutil.which("true") or "/bin/true"  # a real process that says nothing
    session = LocalSession(call=_call(), stt_backend=ScriptedStt(), llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                           tts_backend=broken)
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    seen, audio = await _first_agent_audio(session)
    assert isinstance(seen[0], Transcript) and seen[0].role == "caller"
    assert audio.final and audio.text == local.APOLOGY_EN
    # Spoken by the real espeak-ng fallback: seconds of audio at the call's rate.
    assert len(audio.pcm) / 2 / RATE > 1.5
    assert audio.speech.caller_text == "Do you have brake pads?"  # the turn keeps it
    # Asked to say it again, the caller will: the failed exchange is not history.
    assert session.history == []
    await session.aclose()


class FailingStt(SttBackend):
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None) -> Transcription:
        raise RuntimeError("CTranslate2 lost its model")


async def test_a_failed_transcription_is_apologised_for_in_the_calls_voice() -> None:
    session = LocalSession(call=_call(), stt_backend=FailingStt(), llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                           tts_backend=ScriptedTts())
    await _feed(session, voiced(RATE, 0.6) + bytes(RATE), 0.0)
    _, audio = await _first_agent_audio(session)
    assert audio.final and audio.text == local.APOLOGY_EN
    # ScriptedTts: 200 ms per word, so the call's own engine said it.
    assert len(audio.pcm) == len(local.APOLOGY_EN.split()) * 200 * 16
    await session.aclose()
