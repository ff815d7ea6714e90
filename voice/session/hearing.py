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
    """Keyword arguments for ``SttBackend.transcribe`` as ``TOM_STT_BIAS`` asks (the
    first pass's: under "conditional" it is unbiased)."""
    if vocabulary is not None and settings.TOM_STT_BIAS == "hotwords":
        return {"hotwords": vocabulary.hotwords()}
    if vocabulary is not None and settings.TOM_STT_BIAS == "prompt":
        return {"prompt": vocabulary.prompt(language)}
    return {}


def catalog_heard(*, heard: str, vocabulary: Any) -> str:
    """Why the transcript reads as a catalog request ("" if not, or without a catalog)."""
    if vocabulary is None or not heard:
        return ""
    from toolhub.entities import catalog_request

    return catalog_request(text=heard, vocabulary=vocabulary)


def second_pass_hints(*, catalog: str, vocabulary: Any, language: str) -> dict[str, str]:
    """Under "conditional", the catalog prompt for a transcript that read as a catalog
    request (``catalog``, from ``catalog_heard``); otherwise no second pass."""
    if settings.TOM_STT_BIAS != "conditional" or not catalog or vocabulary is None:
        return {}
    return {"prompt": vocabulary.prompt(language)}


def transcript_understood(*, heard: str, vocabulary: Any, language: str, turn: int,
                          catalog: bool = True) -> str:
    """The transcript with mis-heard catalog terms corrected (the raw one is kept).
    Under "conditional", only a catalog request is corrected: correction turned "ship to
    Austria" into "Astra"."""
    if vocabulary is None or not settings.TOM_ENTITY_CORRECTION:
        return heard
    if settings.TOM_STT_BIAS == "conditional" and not catalog:
        return heard
    from toolhub.entities import correct

    text, corrections = correct(heard, vocabulary, language=language)
    if corrections:
        logger.info("session.entities_corrected", extra={"turn": turn,
                                                         "corrections": len(corrections)})
    return text
