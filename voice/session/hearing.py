"""What the session counts as the caller speaking (over the agent's own echo), what it
tells Whisper before it listens (the catalog's words as a bias) and how it reads the
transcript after (mis-heard catalog terms corrected)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from voice.dsp.vad import dbfs
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

ECHO_MARGIN_DB = 6.0


def echo_floor(*, speech: AgentSpeech | None, now: float, mixed: bool) -> float | None:
    """In mixed forks the agent's own voice is in the caller channel: only speech
    ``ECHO_MARGIN_DB`` louder than what is being played counts toward barge-in."""
    if not mixed or speech is None or not speech.playing(now):
        return None
    offset = int(speech.heard_ms(now) * speech.rate / 1000) * 2
    playing = bytes(speech.audio[offset:offset + 2 * speech.rate // 50])
    return dbfs(playing) + ECHO_MARGIN_DB if playing else None


def stt_hints(*, vocabulary: Any, language: str) -> dict[str, str]:
    """Keyword arguments for ``SttBackend.transcribe`` as ``TOM_STT_BIAS`` asks."""
    if vocabulary is not None and settings.TOM_STT_BIAS == "hotwords":
        return {"hotwords": vocabulary.hotwords()}
    if vocabulary is not None and settings.TOM_STT_BIAS == "prompt":
        return {"prompt": vocabulary.prompt(language)}
    return {}


def transcript_understood(*, heard: str, vocabulary: Any, language: str, turn: int) -> str:
    """The transcript with mis-heard catalog terms corrected (the raw one is kept)."""
    if vocabulary is None or not settings.TOM_ENTITY_CORRECTION:
        return heard
    from toolhub.entities import correct

    text, corrections = correct(heard, vocabulary, language=language)
    if corrections:
        logger.info("session.entities_corrected", extra={"turn": turn,
                                                         "corrections": len(corrections)})
    return text
