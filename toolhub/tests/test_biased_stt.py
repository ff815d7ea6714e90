"""With real Whisper over a telephone line: the catalog-biased transcription of a catalog
sentence finds the vehicle that the unbiased one misses."""

from __future__ import annotations

import pytest

from toolhub import matching
from toolhub.catalog import ImportReport, catalog_vocabulary, vehicle_terms
from voice import models, stt, tts
from voice.dsp import g711
from voice.dsp.resample import resample

pytestmark = [pytest.mark.models, pytest.mark.django_db]

# espeak-ng en-us over 8 kHz μ-law: Whisper base heard "oil filter for my BMW free
# bearing after the lean" without hints on this machine.
SENTENCE = "Oil filter for my BMW three series F30, please."


def _vehicle(text: str) -> str | None:
    found = [m for m in matching.vehicle_match(text, vehicle_terms()) if m.score >= 0.6]
    return str(found[0].key) if found else None


def test_biasing_finds_the_vehicle_the_plain_transcript_misses(
        sample_parts: ImportReport) -> None:
    models.assemble("whisper-base")
    engine = tts.EspeakTts("en-us")
    line = g711.ulaw_decode(g711.ulaw_encode(resample(engine.synthesize(SENTENCE),
                                                      engine.rate, 8000)))
    whisper = stt.get_stt("base")
    plain = whisper.transcribe(line, rate=8000, language="en").text
    biased = whisper.transcribe(line, rate=8000, language="en",
                                hotwords=catalog_vocabulary(language="en").hotwords()).text
    expected = next(str(v.key) for v in vehicle_terms()
                    if (v.make, v.model, v.generation) == ("BMW", "3 Series", "F30"))
    assert _vehicle(plain) != expected, plain
    assert _vehicle(biased) == expected, biased
