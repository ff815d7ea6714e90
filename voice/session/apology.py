"""The spoken apology: what a turn says when a stage failed or every model slot stayed
busy, so the caller never hears silence."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from tomsite.metrics import error_count
from voice import tts
from voice.dsp.resample import resample
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

APOLOGY_EN = "Sorry, I need a moment. Please say that again."
APOLOGY_DE = "Entschuldigung, einen Moment bitte. Sagen Sie das bitte noch einmal."


GOODBYE_EN = "Thank you for calling. Goodbye."
GOODBYE_DE = "Vielen Dank für Ihren Anruf. Auf Wiederhören."


def apology_text(*, language: str) -> str:
    return APOLOGY_DE if language.startswith("de") else APOLOGY_EN


def goodbye_text(*, language: str) -> str:
    """What TOM says when a supervisor hangs up the call."""
    return GOODBYE_DE if language.startswith("de") else GOODBYE_EN


async def apology_audio(*, text: str, rate: int, language: str, turn: int,
                        voice: Callable[[], Awaitable[tts.TtsBackend]] | None) -> bytes:
    """The apology in the call's ``voice``, or in espeak-ng's when that voice is what
    failed (``voice`` None) or fails again here; no audio only when no engine can speak."""
    engines: list[Callable[[], Awaitable[tts.TtsBackend]]] = [] if voice is None else [voice]
    engines.append(partial(asyncio.to_thread, tts.fallback_tts, language))
    for engine_for in engines:
        try:
            engine = await engine_for()
            pcm = await asyncio.to_thread(tts.speech_synthesize, engine=engine, text=text)
            return resample(pcm, engine.rate, rate)
        except tts.TtsError:
            logger.warning("session.apology_engine_failed", exc_info=True, extra={"turn": turn})
    error_count(component="session")
    logger.error("session.apology_unspoken", extra={"turn": turn})
    return b""


def apology_speech(*, text: str, pcm: bytes, turn: int, rate: int, speech_end_at: float,
                   failed: AgentSpeech | None) -> AgentSpeech:
    """The apology as the turn's utterance; it keeps what the caller said (and the
    timings and tool calls so far) from the reply that ``failed``, if one was begun."""
    speech = AgentSpeech(turn=turn, text=text, rate=rate, caller_speech_end_at=speech_end_at)
    if failed is not None:
        speech.caller_text, speech.caller_text_raw = failed.caller_text, failed.caller_text_raw
        speech.timings, speech.tool_calls = dict(failed.timings), list(failed.tool_calls)
    speech.clauses.append((text, 0.0))
    speech.audio += pcm
    speech.audio_bytes, speech.complete = len(pcm), True
    return speech
