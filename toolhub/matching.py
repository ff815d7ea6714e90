"""What callers say about cars and parts, matched to the catalog's words.

Pure functions, no database: ``vehicle_match`` scores catalog vehicles against a phrase
("Golf sieben", "VW Golf VII von 2015", "my Focus mark three"), ``category_match``
finds the part category ("Bremsbeläge", "brake pads", "Bremsklötze"). Transcripts come
from speech recognition, so numbers arrive as words, digits or Roman numerals and
names arrive slightly misspelt: everything is normalised first, then compared with an
edit-distance ratio.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Indel

# Number words as callers say a generation ("Golf sieben", "Focus three", "Dreier").
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "first": 1, "second": 2, "third": 3, "fourth": 4,
    "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "eins": 1, "zwei": 2, "drei": 3, "vier": 4, "fuenf": 5, "sechs": 6, "sieben": 7,
    "acht": 8, "neun": 9, "zehn": 10, "einser": 1, "zweier": 2, "dreier": 3, "vierer": 4,
    "fuenfer": 5, "sechser": 6, "siebener": 7, "achter": 8,
    "erste": 1, "zweite": 2, "dritte": 3, "vierte": 4, "fuenfte": 5, "sechste": 6,
    "siebte": 7, "achte": 8,
}
# Roman numerals are only read as numbers right after a model name: "I" is a pronoun.
_ROMAN = {"ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
_GENERATION_PREFIX = re.compile(r"^(mk|mark)(\d+)$")
MAKE_ALIASES = {
    "vw": "volkswagen", "volkswagon": "volkswagen", "merc": "mercedes",
    "mercedes benz": "mercedes", "mercedesbenz": "mercedes", "benz": "mercedes",
    "bmw": "bmw", "beemer": "bmw", "chevy": "chevrolet",
}
_FILLER_WORDS = """
    a an the my for of from to and our your ein eine einen einem einer der die das den dem
    des fuer vom von zum zur mit und ich mein meine meinen brauche need needs have habe hab
    i im is it its car auto wagen model modell baujahr year"""
_FILLER = frozenset(_FILLER_WORDS.split())


def fold(text: str) -> str:
    """Lower case, umlauts as two letters (Kölner Phonetik would be overkill here), no
    accents or punctuation: "Bremsbeläge" -> "bremsbelaege", "C-Klasse" -> "c klasse"."""
    text = text.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace(
        "ß", "ss")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def tokens(text: str) -> list[str]:
    """Folded words, with number words and "Mk7" written as digits."""
    out: list[str] = []
    for word in fold(text).split():
        prefixed = _GENERATION_PREFIX.match(word)
        if prefixed:
            out.append(prefixed.group(2))
        elif word in _NUMBER_WORDS:
            out.append(str(_NUMBER_WORDS[word]))
        elif re.fullmatch(r"\d+er", word):  # "3er", "7er"
            out.append(word[:-2])
        else:
            out.append(word)
    # "mark 3", "mk 7": the prefix word adds nothing once the digit follows.
    return [w for i, w in enumerate(out)
            if not (w in {"mk", "mark"} and i + 1 < len(out) and out[i + 1].isdigit())]


def similar(a: str, b: str) -> float:
    """How alike two spellings are, 0..1: difflib's ratio (2 x matching / total length)
    over the longest common subsequence, in C (rapidfuzz): the router calls it for every
    window of every vehicle and category name on each turn. difflib's greedy blocks
    could find fewer matches, so a score here is never lower than difflib's."""
    return Indel.normalized_similarity(a, b)


def generation_number(label: str) -> int | None:
    """7 for "VII", "Mk7", "7"; None for codes like "B8" or "F30"."""
    folded = fold(label).replace(" ", "")
    if folded in _ROMAN or folded == "i":
        return _ROMAN.get(folded, 1)
    prefixed = _GENERATION_PREFIX.match(folded)
    if prefixed:
        return int(prefixed.group(2))
    return int(folded) if folded.isdigit() else None


@dataclass(frozen=True, slots=True)
class VehicleTerms:
    """A catalog vehicle as the matcher sees it."""

    key: int
    make: str
    model: str
    generation: str = ""
    year_from: int | None = None
    year_to: int | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    key: int
    score: float
    why: str


def _find(needle: list[str], hay: list[str], *, threshold: float) -> tuple[float, int]:
    """Best fuzzy position of the word sequence ``needle`` in ``hay``: (score, end index)."""
    best, end = 0.0, -1
    joined = " ".join(needle)
    for size in {len(needle), max(1, len(needle) - 1), len(needle) + 1}:
        for start in range(max(0, len(hay) - size) + 1):
            window = hay[start:start + size]
            score = max(similar(joined, " ".join(window)), similar(joined, "".join(window)))
            if score > best:
                best, end = score, start + size
    return (best, end) if best >= threshold else (0.0, -1)


def vehicle_match(phrase: str, vehicles: Iterable[VehicleTerms], *,
                  limit: int = 3) -> list[Match]:
    """Catalog vehicles that ``phrase`` names, best first, scored 0..1.

    The model name must match (fuzzily); make, generation and year then separate the
    candidates. A phrase naming a model but no generation scores every generation of it
    alike, so the caller can be asked which one.
    """
    words = [w for w in tokens(phrase) if w not in _FILLER]
    years = {int(w) for w in words if re.fullmatch(r"(19|20)\d\d", w)}
    folded_phrase = " ".join(words)
    made = {MAKE_ALIASES.get(w, w) for w in words}
    for alias, make in MAKE_ALIASES.items():
        if " " in alias and alias in folded_phrase:
            made.add(make)
    matches: list[Match] = []
    for vehicle in vehicles:
        names = [tokens(vehicle.model), *(tokens(a) for a in vehicle.aliases)]
        model_score, end = max((_find(n, words, threshold=0.8) for n in names if n),
                               default=(0.0, -1))
        code = fold(vehicle.generation).replace(" ", "")
        if not model_score:
            # Chassis codes name one car on their own: "BMW F30", "a W205".
            if re.fullmatch(r"[a-z]+\d+|\d+[a-z]+", code) and code in words:
                make = fold(vehicle.make).split()[0]
                bonus = 0.1 if make in made else 0.0
                matches.append(Match(key=vehicle.key, score=round(0.6 + bonus, 3),
                                     why="code" + ("+make" if bonus else "")))
            continue
        score, why = 0.6 * model_score, ["model"]
        make = fold(vehicle.make).split()[0]
        if make in made or any(similar(make, w) >= 0.85 for w in words):
            score += 0.1
            why.append("make")
        generation = _generation_said(words, end)
        wanted = generation_number(vehicle.generation) if vehicle.generation else None
        said = generation is not None and generation in {str(wanted), code}
        if said or (code and code in words):
            score += 0.25
            why.append("generation")
        elif generation is not None and wanted is not None:
            score -= 0.2  # the caller named another generation of this model
        if years and vehicle.year_from:
            last = vehicle.year_to or 9999
            if any(vehicle.year_from <= y <= last for y in years):
                score += 0.05 if "generation" in why else 0.25
                why.append("year")
            else:
                score -= 0.2
        matches.append(Match(key=vehicle.key, score=round(min(score, 1.0), 3),
                             why="+".join(why)))
    matches.sort(key=lambda m: (-m.score, m.key))
    return matches[:limit]


def _generation_said(words: Sequence[str], after: int) -> str | None:
    """The word right after the model name, if it reads as a generation."""
    if after < 0 or after >= len(words):
        return None
    word = words[after]
    if word in _ROMAN:
        return str(_ROMAN[word])
    if word.isdigit() and len(word) <= 2:
        return word
    if re.fullmatch(r"[a-z]{1,2}\d{1,3}|\d[a-z]", word) or len(word) == 1:
        return word  # a chassis code: "b8", "f30", "w205", "8v", "k"
    return None


@dataclass(frozen=True, slots=True)
class CategoryTerms:
    key: int
    names: tuple[str, ...]  # English and German names and their synonyms


def category_match(phrase: str, categories: Iterable[CategoryTerms], *,
                   threshold: float = 0.78) -> list[Match]:
    """Part categories ``phrase`` mentions, best first.

    German compounds are matched as words and as word stems ("Bremsbelag" in
    "Bremsbeläge", "Bremsbelägen"), so plural and case endings do not matter.
    """
    words = tokens(phrase)
    matches: list[Match] = []
    for category in categories:
        best = 0.0
        for name in category.names:
            needle = tokens(name)
            if not needle:
                continue
            score, _ = _find(needle, words, threshold=threshold)
            if len(needle) == 1 and len(needle[0]) >= 6:
                stem = needle[0][:-2]
                if any(w.startswith(stem) and abs(len(w) - len(needle[0])) <= 3
                       for w in words):
                    score = max(score, 0.9)
            best = max(best, score)
        if best:
            matches.append(Match(key=category.key, score=round(best, 3), why="name"))
    matches.sort(key=lambda m: (-m.score, m.key))
    return matches
