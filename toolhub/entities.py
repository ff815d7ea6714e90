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


def phonetic(word: str, language: str) -> str:
    return cologne(word) if language.startswith("de") else metaphone(word)


@dataclass
class Vocabulary:
    """Catalog terms per language: what to bias towards and what to correct to."""

    terms: list[str] = field(default_factory=list)
    # term -> canonical spelling to write ("Golf sieben" -> "Golf VII").
    canonical: dict[str, str] = field(default_factory=dict)
    # What Whisper is biased towards, most useful first (makes, models, part names).
    hints: list[str] = field(default_factory=list)

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


def _ngrams(words: list[str], size: int) -> list[tuple[int, int]]:
    return [(i, i + size) for i in range(len(words) - size + 1)]


def correct(text: str, vocabulary: Vocabulary, *, language: str,
            min_ratio: float = MIN_RATIO) -> tuple[str, list[Correction]]:
    """``text`` with catalog terms it mishears replaced, and what was replaced.

    A span is replaced when its phonetic key equals a term's and the spellings are at
    least ``min_ratio`` alike, or when the spellings alone are very alike (0.9); short
    and common words are left alone. Longer spans are tried first.
    """
    words = text.split()
    keyed = [(term, phonetic(term, language), fold(term), len(term.split()))
             for term in vocabulary.terms if len(fold(term)) >= MIN_LENGTH]
    taken = [False] * len(words)
    replacements: dict[int, tuple[int, str]] = {}
    corrections: list[Correction] = []
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
