"""Cut the LLM's spoken text into clauses for TTS.

The first clause goes to TTS as soon as it is complete (a comma after a few words is
enough), later ones at sentence ends, so the caller hears the answer start while the
rest is generated. Tool calls never reach this module: backends yield them as typed
deltas (voice.llm_deltas), and only text is fed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIRST_CLAUSE_MIN_WORDS = 4
# With no comma in sight, the first clause ends before the first of these words that has
# at least FIRST_CLAUSE_MIN_WORDS before it ("Our opening hours | on Saturday are ..."):
# a phrase boundary, so Piper's intonation stays natural, and the caller hears the answer
# start after four or five words instead of the whole first sentence (bench/voice_latency
# measured ~0.9 s from the LLM's first text to the first audio with whole sentences).
_PHRASE_WORDS = frozenset({
    "and", "but", "or", "because", "so", "to", "for", "from", "with", "at", "on", "in",
    "by", "until", "which", "that", "if", "when",
    "und", "aber", "oder", "weil", "denn", "für", "mit", "bis", "am", "um", "von", "zu",
    "ab", "im", "dass", "wenn"})
# Nor a phrase word within this many: the first clause ends after them anyway.
FIRST_CLAUSE_MAX_WORDS = 8
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…](?=[\s\"')\]]|$)")  # not "3.5" or "z.B.x"
_CLAUSE_END = re.compile("[,;:\u2014\u2013](?=\\s)")  # comma, semicolon, colon, dashes
# Abbreviations whose periods end no sentence (English and German callers). Those with a
# space ("z. B.") are matched across the space, so "z." alone does not end one either.
_ABBREVIATIONS = ("z.B.", "z. B.", "Z. B.", "d.h.", "d. h.", "u.a.", "u. a.", "bzw.", "ca.",
                  "Nr.", "Dr.", "Mr.", "Mrs.", "e.g.", "i.e.", "etc.", "St.", "Str.",
                  "inkl.", "evtl.", "ggf.", "usw.")
# A German ordinal ("am 3. Mai", "der 2. von links"): a one- or two-digit number whose
# period is followed by a month name or a lowercase word.
_ORDINAL = re.compile(r"(?:^|(?<=\s))\d{1,2}\.$")
_NEXT_WORD = re.compile(r"\s+(\w+)(\W)?")
_MONTHS = frozenset({"Januar", "Jänner", "Februar", "März", "April", "Mai", "Juni", "Juli",
                     "August", "September", "Oktober", "November", "Dezember", "Jan", "Feb",
                     "Mär", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Okt", "Nov", "Dez"})
_WAIT = -1  # the boundary depends on text that has not arrived yet


def _abbreviation_at(text: str, end: int, *, final: bool) -> int:
    """Whether the period before ``end`` belongs to an abbreviation: 1 if it does, 0 if
    not, ``_WAIT`` if the abbreviation may still be completing ("z." then " B.")."""
    for abbreviation in _ABBREVIATIONS:
        for cut in (i + 1 for i, char in enumerate(abbreviation) if char == "."):
            start = end - cut
            if start < 0 or text[start:end] != abbreviation[:cut]:
                continue
            if start and text[start - 1].isalnum():
                continue  # "Mica." is no "ca."
            rest, after = abbreviation[cut:], text[end:]
            if after.startswith(rest):
                return 1
            if not final and rest.startswith(after):
                return _WAIT
    return 0


def _ordinal_at(text: str, end: int, *, final: bool) -> int:
    """Whether the period before ``end`` ends a German ordinal: 1, 0 or ``_WAIT``."""
    if not _ORDINAL.search(text[:end]):
        return 0
    after = text[end:]
    word = _NEXT_WORD.match(after)
    if word is None:  # nothing after the period yet but spaces, or no word follows
        return _WAIT if not final and not after.strip() else 0
    if word.group(2) is None and not final:
        return _WAIT  # the word may go on ("Ma" of "Mai")
    following = word.group(1)
    return 1 if following[0].islower() or following in _MONTHS else 0


@dataclass
class Chunker:
    """Feed spoken text; take clauses out as they complete, and the rest at ``flush``."""

    buffer: str = ""
    emitted: int = 0

    def feed(self, text: str) -> list[str]:
        self.buffer += text
        return self._clauses(final=False)

    def flush(self) -> list[str]:
        return self._clauses(final=True)

    def _clauses(self, *, final: bool) -> list[str]:
        out = []
        while True:
            cut = self._boundary(final=final)
            if cut is None:
                break
            clause, self.buffer = self.buffer[:cut].strip(), self.buffer[cut:]
            if clause:
                out.append(clause)
                self.emitted += 1
        if final and self.buffer.strip():
            out.append(self.buffer.strip())
            self.emitted += 1
            self.buffer = ""
        return out

    def _boundary(self, *, final: bool) -> int | None:
        for match in _SENTENCE_END.finditer(self.buffer):
            end = match.end()
            if end == len(self.buffer) and not final:
                break  # "49." may continue as "49.90": wait for the next token
            if match.group() == ".":
                verdicts = (_abbreviation_at(self.buffer, end, final=final),
                            _ordinal_at(self.buffer, end, final=final))
                if 1 in verdicts:
                    continue
                if _WAIT in verdicts:
                    break
            return end
        if self.emitted == 0:
            for match in _CLAUSE_END.finditer(self.buffer):
                if len(self.buffer[: match.end()].split()) >= FIRST_CLAUSE_MIN_WORDS:
                    return match.end()
            return self._phrase_boundary()
        return None

    def _phrase_boundary(self) -> int | None:
        """Before a phrase word with enough words ahead of it, once that word is whole
        (text follows it): "to" might still become "today"."""
        words = list(_WORD.finditer(self.buffer))
        for index, word in enumerate(words[FIRST_CLAUSE_MIN_WORDS:-1],
                                     start=FIRST_CLAUSE_MIN_WORDS):
            # Case-sensitive: "am" (German "am Samstag") is a boundary, "10 AM" is not.
            if word.group() in _PHRASE_WORDS or index >= FIRST_CLAUSE_MAX_WORDS:
                return word.start()
        return None
