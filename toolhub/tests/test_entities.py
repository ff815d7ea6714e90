"""Catalog words for speech: the hotword list, entity correction, and both transcripts kept."""

from __future__ import annotations

import pytest

from toolhub import matching
from toolhub.catalog import ImportReport, catalog_vocabulary, vehicle_terms
from toolhub.entities import HOTWORDS_MAX_CHARS, cologne, correct, metaphone

pytestmark = pytest.mark.django_db


def test_hotwords_come_from_the_catalog_and_fit_whispers_prompt(
        sample_parts: ImportReport) -> None:
    english = catalog_vocabulary(language="en").hotwords()
    german = catalog_vocabulary(language="de").hotwords()
    assert len(english) <= HOTWORDS_MAX_CHARS and len(german) <= HOTWORDS_MAX_CHARS
    for word in ("Volkswagen", "Golf", "Octavia", "brake pads", "3 Series"):
        assert word in english, word
    assert "Bremsbeläge" in german and "brake pads" not in german


def test_the_vocabulary_follows_the_catalog(sample_parts: ImportReport) -> None:
    from toolhub.models import Vehicle

    before = catalog_vocabulary(language="en")
    Vehicle.objects.create(make="Dacia", model="Sandero", generation="III")
    after = catalog_vocabulary(language="en")
    assert after is not before and "Dacia Sandero" in after.terms


@pytest.mark.parametrize(("language", "heard", "meant"), [
    ("de", "Haben Sie Bremsbeläge für einen Golf sieben?",
     "Haben Sie Bremsbeläge für einen Golf VII?"),
    ("de", "Bremsscheiben für den Golf 7", "Bremsscheiben für den Golf VII"),
    ("de", "Golf VII", "Golf VII"),
    ("de", "Ich brauche Bremsbelege für den Passat B8",
     "Ich brauche Bremsbeläge für den Passat B8"),
    ("de", "einen Ölfiltar für den Polo", "einen Ölfilter für den Polo"),
    ("en", "Do you have break pads for a Volkswagon Golf?",
     "Do you have brake pads for a Volkswagen Golf?"),
    ("en", "brake disks for the BMW tree series", "brake discs for the BMW three series"),
    ("en", "I have a Ford Fokus", "I have a Ford Focus"),
    # A letter that rhymes with the right one, inside a model code.
    ("en", "It is for a VW Passat V7.", "It is for a VW Passat B7."),
    ("de", "Für einen Passat P8 bitte", "Für einen Passat B8 bitte"),
])
def test_correction_fixes_catalog_terms(sample_parts: ImportReport, language: str, heard: str,
                                        meant: str) -> None:
    text, _ = correct(heard, catalog_vocabulary(language=language), language=language)
    assert text == meant


@pytest.mark.parametrize(("language", "text"), [
    ("en", "What are your opening hours on Saturday?"),
    ("en", "Hello, my name is Peter and I need a oil filter."),
    ("en", "Can I pay by card at the counter?"),
    ("de", "Wann haben Sie am Samstag geöffnet?"),
    ("de", "Ich wohne in Köln und komme morgen vorbei."),
])
def test_correction_leaves_other_words_alone(sample_parts: ImportReport, language: str,
                                             text: str) -> None:
    assert correct(text, catalog_vocabulary(language=language), language=language) == (text, [])


@pytest.mark.parametrize(("heard", "meant"), [
    # What Whisper wrote for "T P one two four nine three" on the telephone corpus.
    ("It's part number PP12493 in stock.", "It's part number TP-12493 in stock."),
    ("It's part number P-P14720 and stop.", "It's part number TP-14720 and stop."),
    ("Part number T, P103, 1 4, and Stock.", "Part number TP-10314, and Stock."),
    ("Ist die Teilenummer 12493 auf Lager?", "Ist die Teilenummer TP-12493 auf Lager?"),
    # Not a part number: digits that name no part, or no letters and no "number" before.
    ("It's part number PP12345 in stock.", "It's part number PP12345 in stock."),
    ("I need 2 pads, 12493 is my customer ID", "I need 2 pads, 12493 is my customer ID"),
    ("Two sets, TP 1 2 pieces", "Two sets, TP 1 2 pieces"),
])
def test_part_numbers_are_written_as_the_catalog_writes_them(
        sample_parts: ImportReport, heard: str, meant: str) -> None:
    from toolhub.router import PART_NUMBER

    text, corrections = correct(heard, catalog_vocabulary(language="en"), language="en")
    assert text == meant
    assert bool(corrections) == (heard != meant)
    if corrections:  # the router now finds the number it could not before
        assert PART_NUMBER.search(meant) and not PART_NUMBER.search(heard)


def test_phonetic_keys() -> None:
    assert cologne("Meier") == cologne("Mayr") == cologne("Maier")
    assert cologne("Müller-Lüdenscheidt") == "65752682"  # Postel's own example
    assert metaphone("brake") == metaphone("break") and metaphone("Focus") == metaphone("Fokus")
    assert metaphone("brake") != metaphone("bright")


def test_corrected_transcripts_find_the_vehicle(sample_parts: ImportReport) -> None:
    heard = "Do you have Bremsbelege for a Volkswagon Golf sieben"
    text, corrections = correct(heard, catalog_vocabulary(language="de"), language="de")
    assert "Bremsbelege" in {c.heard for c in corrections} and "Volkswagen" in text
    best = matching.vehicle_match(text, vehicle_terms())[0]
    assert best.score >= 0.85
