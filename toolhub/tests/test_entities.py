"""Catalog words for speech: the hotword list, entity correction, and both transcripts kept."""

from __future__ import annotations

import pytest

from toolhub import matching
from toolhub.catalog import ImportReport, catalog_vocabulary, vehicle_terms
from toolhub.entities import HOTWORDS_MAX_CHARS, Vocabulary, cologne, correct, metaphone, phonetic

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


def test_kolner_phonetik_follows_postels_rules_at_the_word_edges() -> None:
    # A leading X is "48" (X = K + S) and a final C, before nothing, is "8": the
    # hand-written key had "837" and "14".
    assert cologne("Xaver") == "4837"
    assert cologne("Bac") == "18" and cologne("Bac") != cologne("Bak")


def test_digits_in_a_key_are_kept_apart_from_its_sounds() -> None:
    # Kölner codes are digits, so bare digits merged with them ("Golf 7" = "Golf R",
    # "A4" = "Ak"), and the code's own dropping of repeats and zeros merged numbers.
    assert cologne("Golf 7") != cologne("Golf R") and cologne("A4") != cologne("Ak")
    numbers = ("TP-10098", "TP-10089", "TP-19800", "TP-1098")
    for language in ("de", "en"):
        keys = {phonetic(number, language) for number in numbers}
        assert len(keys) == len(numbers), (language, keys)
    assert metaphone("TP-10098") != metaphone("TP-1098")


def test_english_sh_and_ch_are_not_ks() -> None:
    # "sh"/"ch" were rewritten to "x" and then to "ks": "shoes" and "chess" keyed as "kiss".
    assert metaphone("shoes") == metaphone("chess") != metaphone("kiss")
    assert metaphone("ship") == metaphone("sheep") != metaphone("kips")


def test_close_part_numbers_are_not_corrected_into_each_other() -> None:
    vocabulary = Vocabulary(terms=["TP-10098"])
    for language in ("de", "en"):
        assert correct("TP-10089", vocabulary, language=language) == ("TP-10089", [])
        assert correct("TP-19800", vocabulary, language=language) == ("TP-19800", [])


def test_term_keys_are_computed_once_per_vocabulary_and_follow_its_terms() -> None:
    vocabulary = Vocabulary(terms=["Bremsbeläge"])
    first = vocabulary.terms_keyed("de")
    assert correct("Bremsbelege", vocabulary, language="de")[0] == "Bremsbeläge"
    assert vocabulary.terms_keyed("de") is first  # no re-keying on the next transcript
    assert vocabulary.terms_keyed("en") is not first  # keyed per language
    vocabulary.terms.append("Zündkerzen")  # as catalog_vocabulary fills it in place
    assert correct("Zündkerzn", vocabulary, language="de")[0] == "Zündkerzen"
    assert vocabulary.terms_keyed("de") is not first


def test_corrected_transcripts_find_the_vehicle(sample_parts: ImportReport) -> None:
    heard = "Do you have Bremsbelege for a Volkswagon Golf sieben"
    text, corrections = correct(heard, catalog_vocabulary(language="de"), language="de")
    assert "Bremsbelege" in {c.heard for c in corrections} and "Volkswagen" in text
    best = matching.vehicle_match(text, vehicle_terms())[0]
    assert best.score >= 0.85


@pytest.mark.parametrize(("text", "reason"), [
    ("Do you have brake pads for my Golf 7?", "category"),
    # Whisper's unbiased mishearing sounds like the category: the biased pass fixes it.
    ("Stop, I only need the price of brick pads.", "category"),
    ("Can I break this up into two payments?", ""),
    ("Is TP-10098 in stock?", "number"),
    ("What is the part number of that one?", "number"),
    ("I drive a Volkswagen Golf seven.", "vehicle"),
    ("Do you sell anything for BMW?", "make"),
    ("Do you ship to Austria?", ""),  # correction's "Astra", but no catalog request
    ("What are your opening hours on Saturday?", ""),
    ("Can I return a part that I have not used?", ""),
])
def test_a_catalog_request_is_told_from_a_plain_question(
        sample_parts: ImportReport, text: str, reason: str) -> None:
    from toolhub.catalog import catalog_vocabulary
    from toolhub.entities import catalog_request

    vocabulary = catalog_vocabulary(language="en")
    assert catalog_request(text=text, vocabulary=vocabulary) == reason
