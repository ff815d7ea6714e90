"""Catalog words in what the caller said: biasing Whisper towards them, and correcting what
it still mishears before the LLM sees it.

``hotwords`` lists the catalog's vehicles and part names for faster-whisper's
``hotwords`` prompt, capped to what fits Whisper's prompt. ``correct`` matches the
transcript's n-grams against the same vocabulary with a phonetic key that fits the
language (Kölner Phonetik for German, a Metaphone-style key for English) plus an edit
ratio, and replaces them only when both agree strongly enough. Pure functions over a
``Vocabulary`` the caller builds from the database (``vocabulary_build``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from toolhub.matching import fold

HOTWORDS_MAX_CHARS = 600  # about 150 tokens: half of Whisper's 224-token prompt window
MIN_RATIO = 0.72
MIN_LENGTH = 4


def cologne(word: str) -> str:
    """Kölner Phonetik (Postel, 1969): German sounds-alike codes ("Maier" = "Meyer")."""
    text = fold(word).replace(" ", "")
    text = text.replace("ae", "a").replace("oe", "o").replace("ue", "u")
    codes = []
    for i, char in enumerate(text):
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if char in "aeijouy":
            code = "0"
        elif char == "h":
            code = ""
        elif char == "b" or (char == "p" and after != "h"):
            code = "1"
        elif char in "dt":
            code = "8" if after in ("c", "s", "z") else "2"
        elif char in "fvw" or (char == "p" and after == "h"):
            code = "3"
        elif char in "gkq":
            code = "4"
        elif char == "c":
            if i == 0:
                code = "4" if after in "ahkloqrux" else "8"
            else:
                code = "8" if before in "sz" or after not in "ahkoqux" else "4"
        elif char == "x":
            code = "8" if before in "ckq" else "48"
        elif char == "l":
            code = "5"
        elif char in "mn":
            code = "6"
        elif char == "r":
            code = "7"
        elif char in "sz":
            code = "8"
        elif char.isdigit():
            code = char  # "A4", "i30": digits are part of the name
        else:
            code = ""
        codes.append(code)
    collapsed = ""
    for code in "".join(codes):
        if not collapsed or code != collapsed[-1]:
            collapsed += code
    return collapsed[:1] + collapsed[1:].replace("0", "") if collapsed else ""


_EN_RULES = [("ph", "f"), ("ck", "k"), ("sch", "sk"), ("sh", "x"), ("ch", "x"), ("th", "0"),
             ("wh", "w"), ("gh", ""), ("kn", "n"), ("wr", "r"), ("qu", "kw"), ("q", "k"),
             ("x", "ks"), ("z", "s"), ("c", "k"), ("v", "f"), ("d", "t"), ("b", "p"),
             ("g", "k"), ("j", "k")]


def metaphone(word: str) -> str:
    """A compact Metaphone-style key for English: consonant skeleton after the common
    spelling-to-sound rewrites, vowels kept only at the start ("brake" = "break")."""
    text = fold(word).replace(" ", "")
    for old, new in _EN_RULES:
        text = text.replace(old, new)
    if not text:
        return ""
    head, rest = text[0], re.sub(r"[aeiouyhw]", "", text[1:])
    key = head + rest
    return re.sub(r"(.)\1+", r"\1", key)


# Letters whose names rhyme, which a phone line (and Whisper) confuses inside a model
# code: "Passat V7" for "B7", "E90" for "T90". English "bee, cee, dee, ...", German
# "Be, Ce, De, ...". Each class is written as its first letter before the phonetic key.
_LETTER_CLASSES = {
    "en": ("bcdegptvz", "ahjk", "flmnsx", "iy", "quw"),
    "de": ("bcdegptw", "ahk", "flmns", "qu"),
}
_CODE = re.compile(r"\b([a-z])(\d{1,3})\b")


def _letter_class(letter: str, language: str) -> str:
    for group in _LETTER_CLASSES["de" if language.startswith("de") else "en"]:
        if letter in group:
            return group[0]
    return letter


def phonetic(word: str, language: str) -> str:
    """The sounds-alike key of a word or span; model codes ("B7", "F30") keyed by the
    rhyme class of their letter, so a misheard letter still finds the code."""
    word = _CODE.sub(lambda m: _letter_class(m.group(1), language) + m.group(2),
                     fold(word))
    return cologne(word) if language.startswith("de") else metaphone(word)


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
    least ``min_ratio`` alike, or when the spellings alone are very alike (0.9); short
    and common words are left alone. Longer spans are tried first.
    """
    text, corrections = part_numbers_correct(text, vocabulary)
    words = text.split()
    keyed = [(term, phonetic(term, language), fold(term), len(term.split()))
             for term in vocabulary.terms if len(fold(term)) >= MIN_LENGTH]
    taken = [False] * len(words)
    replacements: dict[int, tuple[int, str]] = {}
    for size in (3, 2, 1):
        for start, end in _ngrams(words, size):
            if any(taken[start:end]):
                continue
            span = " ".join(words[start:end])
            folded = fold(span)
            if len(folded) < MIN_LENGTH:
                continue
            key = phonetic(span, language)
            best: tuple[float, str] | None = None
            for term, term_key, term_folded, term_words in keyed:
                if term_words != size:  # "a oil filter" is not "oil filter"
                    continue
                ratio = SequenceMatcher(None, folded, term_folded).ratio()
                if ratio == 1.0:  # said as the catalog says it (maybe to canonicalise)
                    best = (1.0, term)
                    break
                alike = (key == term_key and ratio >= min_ratio) or ratio >= 0.9
                if alike and (best is None or ratio > best[0]):
                    best = (ratio, term)
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
