"""Catalog words in what the caller said: biasing Whisper towards them, and correcting what
it still mishears before the LLM sees it.

``hotwords`` lists the catalog's vehicles and part names for faster-whisper's
``hotwords`` prompt, capped to what fits Whisper's prompt. ``correct`` matches the
transcript's n-grams against the same vocabulary with a phonetic key that fits the
language (Kölner Phonetik for German, Metaphone for English) plus an edit ratio, and
replaces them only when both agree strongly enough. Pure functions over a
``Vocabulary`` the caller builds from the database (``catalog_vocabulary``); each
vocabulary keys its terms once, not on every transcript.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cologne_phonetics
import jellyfish
from rapidfuzz import fuzz, process

from toolhub.matching import fold

HOTWORDS_MAX_CHARS = 600  # about 150 tokens: half of Whisper's 224-token prompt window
MIN_RATIO = 0.72
SURE_RATIO = 0.9  # spellings this alike are corrected whatever they sound like
MIN_LENGTH = 4
# rapidfuzz scores are floats on 0..100: a ratio of exactly 0.72 or 0.9 must still count
# (as it did with difflib's 0..1) whatever the rounding of ratio x 100.
_EPSILON = 1e-6
_RUN = re.compile(r"[a-z]+|\d+")


def _key_runs(word: str, encode: Callable[[str], str]) -> str:
    """Letter runs through ``encode``, digit runs kept as they are behind a "#": a
    phonetic code is itself made of digits (Kölner) or may hold "0" (Metaphone's "th"),
    so bare digits would collide with it ("Golf 7" = "Golf R" = 4537, "A4" = "Ak"), and
    codes drop repeated digits and zeros ("TP-10098" = "TP-19800" = "TP-1098")."""
    text = fold(word).replace(" ", "")  # one name: "Müller-Lüdenscheidt" is one word
    return "".join("#" + run if run.isdigit() else encode(run) for run in _RUN.findall(text))


def _cologne_letters(letters: str) -> str:
    return str(cologne_phonetics.encode(letters)[0][1])


_REPEATED = re.compile(r"(.)\1+")


def _metaphone_letters(letters: str) -> str:
    # Two merges on jellyfish's Metaphone. "th" (its "0") is "t": German callers say
    # "tree series" for "three series", and the telephone band loses most of the /θ/
    # hiss anyway. A sound repeated is one sound: jellyfish keys "Fvcus" as "FFKS" and
    # "Papsat" as "PPST", so a doubled or swapped letter in Whisper's spelling would
    # miss "Focus" and "Passat".
    return _REPEATED.sub(r"\1", jellyfish.metaphone(letters).replace("0", "T"))


def cologne(word: str) -> str:
    """Kölner Phonetik (Postel, 1969): German sounds-alike codes ("Maier" = "Meyer");
    digits kept verbatim after a "#" ("A4" -> "0#4")."""
    return _key_runs(word, _cologne_letters)


def metaphone(word: str) -> str:
    """Metaphone for English ("brake" = "break", "Focus" = "Fokus"), "th" merged into
    "t"; digits kept verbatim after a "#"."""
    return _key_runs(word, _metaphone_letters)


# Letters whose names rhyme, which a phone line (and Whisper) confuses inside a model
# code: "Passat V7" for "B7", "E90" for "T90". English "bee, cee, dee, ...", German
# "Be, Ce, De, ...". A code is keyed by its class's first letter and its digits.
_LETTER_CLASSES = {
    "en": ("bcdegptvz", "ahjk", "flmnsx", "iy", "quw"),
    "de": ("bcdegptw", "ahk", "flmns", "qu"),
}
_CODE = re.compile(r"([a-z])(\d{1,3})")


def _letter_class(letter: str, language: str) -> str:
    for group in _LETTER_CLASSES["de" if language.startswith("de") else "en"]:
        if letter in group:
            return group[0]
    return letter


def phonetic(word: str, language: str) -> str:
    """The sounds-alike key of a word or span, word by word; model codes ("B7", "F30")
    keyed by the rhyme class of their letter, so a misheard letter still finds the code."""
    key = cologne if language.startswith("de") else metaphone
    out = []
    for token in fold(word).split():
        code = _CODE.fullmatch(token)
        # Lower case: no Kölner code (digits) or Metaphone code (upper case) looks so.
        out.append(_letter_class(code[1], language) + code[2] if code else key(token))
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class _Terms:
    """A vocabulary's terms of one word count, folded and keyed for one language."""

    terms: tuple[str, ...]
    folded: tuple[str, ...]
    keys: tuple[str, ...]
    exact: dict[str, int]  # folded spelling -> index of the first term spelt so


def _terms_index(terms: list[str], language: str) -> dict[int, _Terms]:
    by_size: dict[int, list[str]] = {}
    for term in terms:
        if len(fold(term)) >= MIN_LENGTH:
            by_size.setdefault(len(term.split()), []).append(term)
    index = {}
    for size, group in by_size.items():
        folded = tuple(fold(term) for term in group)
        exact: dict[str, int] = {}
        for i, spelling in enumerate(folded):
            exact.setdefault(spelling, i)
        index[size] = _Terms(terms=tuple(group), folded=folded,
                             keys=tuple(phonetic(term, language) for term in group),
                             exact=exact)
    return index


@dataclass
class Vocabulary:
    """Catalog terms per language: what to bias towards and what to correct to."""

    terms: list[str] = field(default_factory=list)
    # term -> canonical spelling to write ("Golf sieben" -> "Golf VII").
    canonical: dict[str, str] = field(default_factory=dict)
    # What Whisper is biased towards, most useful first (makes, models, part names).
    hints: list[str] = field(default_factory=list)
    # The catalog's part numbers by their digits ("12493" -> "TP-12493").
    part_numbers: dict[str, str] = field(default_factory=dict)
    # The router's matcher terms and the makes' words, for ``catalog_request``.
    vehicles: list[Any] = field(default_factory=list)
    categories: list[Any] = field(default_factory=list)
    makes: frozenset[str] = frozenset()
    # Per language: the terms as last keyed, and their keys by word count. Built on the
    # first ``correct`` (the catalog fills ``terms`` after construction) and again only
    # if ``terms`` changed since. Two threads correcting at once may both build it: the
    # same result, and one assignment wins.
    _keyed: dict[str, tuple[list[str], dict[int, _Terms]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def terms_keyed(self, language: str) -> dict[int, _Terms]:
        """The terms (of at least ``MIN_LENGTH`` letters) by word count, each folded and
        with its phonetic key, computed once per vocabulary and language."""
        lang = "de" if language.startswith("de") else "en"
        cached = self._keyed.get(lang)
        if cached is not None and cached[0] == self.terms:
            return cached[1]
        index = _terms_index(self.terms, lang)
        self._keyed[lang] = (list(self.terms), index)  # a copy: terms may be edited later
        return index

    def prompt(self, language: str) -> str:
        """The same words as a sentence, for Whisper's initial prompt."""
        lead = "Autoteile: " if language.startswith("de") else "Car parts: "
        return f"{lead}{self.hotwords()}."

    def hotwords(self) -> str:
        out, size = [], 0
        for term in dict.fromkeys(self.hints):
            if size + len(term) + 2 > HOTWORDS_MAX_CHARS:
                break
            out.append(term)
            size += len(term) + 2
        return ", ".join(out)


@dataclass(frozen=True, slots=True)
class Correction:
    heard: str
    wrote: str
    score: float


_PIECE = re.compile(r"[^\W\d_]+|\d+")
_NUMBER_WORD = re.compile(r"(?:number|nummer|no|nr)\W*$", re.IGNORECASE)


def part_numbers_correct(text: str, vocabulary: Vocabulary) -> tuple[str, list[Correction]]:
    """Part numbers as Whisper writes them when a caller reads one out ("PP12493",
    "P-P14720", "T, P103, 1 4") back to the catalog's spelling ("TP-12493").

    A span is up to two short letter groups then digit groups, separated by nothing but
    spaces, commas, dots or hyphens, whose digits are exactly one catalog part number's.
    Only digits that name a real part are rewritten, and only after letters or after the
    word "number", so a quantity or a price is never turned into a part number.
    """
    if not vocabulary.part_numbers:
        return text, []
    lengths = {len(digits) for digits in vocabulary.part_numbers}
    pieces = list(_PIECE.finditer(text))
    out, corrections, cursor, i = [], [], 0, 0
    while i < len(pieces):
        letters = 0
        j = i
        while j < len(pieces) and letters < 2 and pieces[j].group().isalpha() \
                and len(pieces[j].group()) <= 2 and _joined(text, pieces, j, i):
            letters, j = letters + 1, j + 1
        digits, end = "", j
        while end < len(pieces) and pieces[end].group().isdigit() \
                and len(digits) < max(lengths) and _joined(text, pieces, end, i):
            digits, end = digits + pieces[end].group(), end + 1
        said_number = bool(_NUMBER_WORD.search(text[:pieces[i].start()]))
        canonical = vocabulary.part_numbers.get(digits) if len(digits) in lengths else None
        if canonical and (letters or said_number):
            start, stop = pieces[i].start(), pieces[end - 1].end()
            heard = text[start:stop]
            if heard != canonical:
                corrections.append(Correction(heard=heard, wrote=canonical, score=1.0))
            out.append(text[cursor:start] + canonical)
            cursor, i = stop, end
        else:
            i += 1
    return "".join(out) + text[cursor:], corrections


def _joined(text: str, pieces: list[re.Match[str]], index: int, first: int) -> bool:
    """Whether piece ``index`` follows the one before it with only separators between."""
    if index == first:
        return True
    return re.fullmatch(r"[\s,.\-]{0,3}", text[pieces[index - 1].end():pieces[index].start()]) \
        is not None


def _ngrams(words: list[str], size: int) -> list[tuple[int, int]]:
    return [(i, i + size) for i in range(len(words) - size + 1)]


def correct(text: str, vocabulary: Vocabulary, *, language: str,
            min_ratio: float = MIN_RATIO) -> tuple[str, list[Correction]]:
    """``text`` with catalog terms it mishears replaced, and what was replaced.

    A span is replaced when its phonetic key equals a term's and the spellings are at
    least ``min_ratio`` alike, or when the spellings alone are very alike
    (``SURE_RATIO``); short and common words are left alone. Longer spans are tried
    first. CPU work of a few hundred microseconds: async callers run it in a thread.
    """
    text, corrections = part_numbers_correct(text, vocabulary)
    words = text.split()
    keyed = vocabulary.terms_keyed(language)
    taken = [False] * len(words)
    replacements: dict[int, tuple[int, str]] = {}
    for size in (3, 2, 1):
        terms = keyed.get(size)  # "a oil filter" is not "oil filter": same word count only
        if terms is None:
            continue
        for start, end in _ngrams(words, size):
            if any(taken[start:end]):
                continue
            span = " ".join(words[start:end])
            folded = fold(span)
            if len(folded) < MIN_LENGTH:
                continue
            best = _best_term(span, folded, terms, language=language, min_ratio=min_ratio)
            if best is None:
                continue
            wrote = vocabulary.canonical.get(best[1], best[1])
            if fold(wrote) == folded:
                for i in range(start, end):
                    taken[i] = True
                continue
            trailing = re.search(r"[,.!?;:]+$", words[end - 1])
            replacements[start] = (end, wrote + (trailing.group(0) if trailing else ""))
            corrections.append(Correction(heard=span, wrote=wrote, score=round(best[0], 3)))
            for i in range(start, end):
                taken[i] = True
    out, i = [], 0
    while i < len(words):
        if i in replacements:
            end, wrote = replacements[i]
            out.append(wrote)
            i = end
        else:
            out.append(words[i])
            i += 1
    return " ".join(out), corrections


def _best_term(span: str, folded: str, terms: _Terms, *, language: str,
               min_ratio: float) -> tuple[float, str] | None:
    """The term ``span`` most likely means, with its spelling ratio (0..1), or None.

    Said as the catalog says it wins outright (maybe only to canonicalise); otherwise
    the most alike spelling among those that sound alike or are spelt nearly alike,
    the earlier term on a tie. The span's phonetic key is computed only if needed.
    """
    exact = terms.exact.get(folded)
    if exact is not None:
        return 1.0, terms.terms[exact]
    found = process.extract(folded, terms.folded, scorer=fuzz.ratio, limit=None,
                            score_cutoff=100 * min_ratio - _EPSILON)
    best: tuple[float, int] | None = None
    key = None
    for _, score, i in found:
        if score < 100 * SURE_RATIO - _EPSILON:
            key = phonetic(span, language) if key is None else key
            if key != terms.keys[i]:
                continue
        if best is None or score > best[0] or (score == best[0] and i < best[1]):
            best = (score, i)
    return None if best is None else (best[0] / 100, terms.terms[best[1]])


def catalog_request(*, text: str, vocabulary: Vocabulary) -> str:
    """Why ``text`` reads as a catalog request, or "": a part number, a part category, a
    catalog vehicle as sure as the router wants it, or a make. Strict on purpose: a model
    name alone, or a word correction would rewrite, fired on plain English ("ship to
    Austria" is an Opel Astra), and a plain question must stay unbiased and uncorrected
    (bench/results/2026-12-01-stt-bias.md)."""
    from toolhub import matching
    from toolhub.router import PART_NUMBER, VEHICLE_MIN_SCORE

    if PART_NUMBER.search(text) or re.search(r"\b(part|teile)\s*(numbers?|nummern?)\b",
                                             text, re.IGNORECASE):
        return "number"
    if matching.category_match(text, vocabulary.categories) \
            or _sounds_like_category(text, vocabulary.categories):
        return "category"
    if any(m.score >= VEHICLE_MIN_SCORE
           for m in matching.vehicle_match(text, vocabulary.vehicles)):
        return "vehicle"
    if vocabulary.makes & set(matching.tokens(text)):
        return "make"
    return ""


def _sounds_like_category(text: str, categories: list[Any]) -> bool:
    """Whether words of ``text`` sound like a category name of two words or more, spelt
    at least ``MIN_RATIO`` alike: Whisper's unbiased "brick pads" is "brake pads". Only
    names of several words: one word that sounds like a part is too often plain talk."""
    words = fold(text).split()
    for category in categories:
        for name in category.names:
            needle = fold(name)
            size = len(needle.split())
            if size < 2:
                continue
            keys = {phonetic(needle, "en"), phonetic(needle, "de")}
            for start, end in _ngrams(words, size):
                span = " ".join(words[start:end])
                if fuzz.ratio(span, needle) >= 100 * MIN_RATIO - _EPSILON and (
                        phonetic(span, "en") in keys or phonetic(span, "de") in keys):
                    return True
    return False
