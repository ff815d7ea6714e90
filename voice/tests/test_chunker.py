from __future__ import annotations

import pytest

from voice.chunker import Chunker


def _run(tokens: list[str]) -> list[str]:
    chunker = Chunker()
    out = []
    for token in tokens:
        out += chunker.feed(token)
    return out + chunker.flush()


def test_first_clause_leaves_early_then_sentences() -> None:
    chunker = Chunker()
    got = []
    for token in ["Yes", ",", " the", " brake", " pads", " fit", ",", " they", " cost"]:
        got += chunker.feed(token)
    assert got == ["Yes, the brake pads fit,"]  # comma after four words: speak now
    for token in [" 49", ".", "90", " euros", ".", " Anything", " else", "?"]:
        got += chunker.feed(token)
    got += chunker.flush()
    assert got == ["Yes, the brake pads fit,", "they cost 49.90 euros.", "Anything else?"]


def test_abbreviations_do_not_end_sentences() -> None:
    out = _run(["Das", " passt", " z.B.", " für", " den", " Golf", " 7.", " Gern", "."])
    assert out == ["Das passt z.B. für den Golf 7.", "Gern."]


@pytest.mark.parametrize("tokens", [
    ["Das", " passt", " z. B.", " für", " den", " Golf", ". Gern", "."],
    # "z." arrives alone: whether " B." follows is not known yet, so nothing is cut.
    ["Das", " passt", " z.", " ", "B.", " für", " den", " Golf", ". Gern", "."],
])
def test_a_spaced_abbreviation_is_not_split(tokens: list[str]) -> None:
    # The first clause may end at the phrase boundary after it ("für"), never inside it.
    assert _run(tokens) == ["Das passt z. B.", "für den Golf.", "Gern."]


def test_a_word_ending_like_an_abbreviation_still_ends_a_sentence() -> None:
    assert _run(["Das ist Mica.", " Gern", "."]) == ["Das ist Mica.", "Gern."]


@pytest.mark.parametrize(("tokens", "clauses"), [
    (["Wir", " haben", " am", " 3", ".", " ", "Ma", "i", " geöffnet", ".", " Bis", " dann", "."],
     ["Wir haben am 3. Mai geöffnet.", "Bis dann."]),
    (["Nimm", " den", " 2.", " von", " links", ".", " Danke", "."],
     ["Nimm den 2. von links.", "Danke."]),
    # A capitalised word that is no month: the number did end the sentence.
    (["Das", " passt", " zum", " Golf", " 7.", " Danke", "."],
     ["Das passt zum Golf 7.", "Danke."]),
    (["Es", " sind", " 12.", " Wir", " haben", " alle", "."],
     ["Es sind 12.", "Wir haben alle."]),
])
def test_german_ordinals_do_not_end_sentences(tokens: list[str], clauses: list[str]) -> None:
    assert _run(tokens) == clauses


def test_an_ordinal_at_the_end_of_the_reply_is_flushed() -> None:
    assert _run(["Am", " 3."]) == ["Am 3."]


def test_braces_and_tags_are_just_text_here() -> None:
    # Tool calls never reach the chunker (voice.llm_tags); whatever arrives is spoken.
    assert _run(["Less", " than", " <", " five", "."]) == ["Less than < five."]


@pytest.mark.parametrize(("tokens", "first"), [
    (["Our", " opening", " hours", " on", " Saturday", " are", " 10", " AM", " to", " 5", " PM."],
     "Our opening hours on Saturday are 10 AM"),
    # Not before "for": three words are too few to say alone; eight words are enough.
    (["An", " oil", " filter", " for", " a", " Ford", " Focus", " III", " costs", " 12", " euros."],
     "An oil filter for a Ford Focus III"),
    (["Wir", " liefern", " nach", " Hamburg", " in", " zwei", " Tagen."],
     "Wir liefern nach Hamburg"),
])
def test_a_long_first_sentence_is_cut_at_a_phrase_boundary(tokens: list[str],
                                                            first: str) -> None:
    out = _run(tokens)
    assert out[0] == first or out[0].startswith(first)
    assert " ".join(out) == "".join(tokens).strip()
    assert len(out) == 2  # only the first clause is cut early; the rest stays a sentence


def test_a_phrase_word_still_being_typed_is_not_cut_before() -> None:
    chunker = Chunker()
    assert chunker.feed("We are open from Monday to") == []  # "to" may become "today"
    assert chunker.feed(" Friday") == ["We are open from Monday"]
