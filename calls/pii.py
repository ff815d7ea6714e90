"""Personal data in what callers say and in fork metadata, found before anything is stored.

A caller reads out a phone number ("call me back on 030 1234 5678", or as Whisper writes
spoken digits, "0 3 0 1 2 3 4 5 6 7" or "zero one seven one …"); the turn's transcript
keeps ``[number]`` instead. Part numbers ("TP-12493", "TP-1234567"), prices, decimals
and dates are not numbers a person can be called on and stay as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache

MASK = "[number]"
# Between two digits of one number: spaces, dashes, slashes, dots, brackets, or the comma
# Whisper puts between digits read out one by one ("0, 3, 0, …").
_SEP = r"(?:[ \-/.()]|, ?){0,3}"
# Not inside a word, a decimal or a part number ("TP-1234567": letters, then a dash).
_BEFORE = r"(?<![\w.])(?<!\d,)(?<![^\W\d_]-)"
_DIGIT_WORDS = (
    "zero|oh|one|two|three|four|five|six|seven|eight|nine|"
    "null|eins|zwei|zwo|drei|vier|fünf|sechs|sieben|acht|neun"
)
_DATES = re.compile(
    r"(?:19|20)\d\d-[01]?\d-[0-3]?\d"  # 2026-11-30
    r"|[0-3]?\d[./-][01]?\d[./-](?:19|20)\d\d"  # 30.11.2026, 30/11/2026
)


@lru_cache(maxsize=8)
def _patterns(min_digits: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    written = re.compile(
        rf"{_BEFORE}\+?\(?\d(?:{_SEP}\d){{{min_digits - 1},}}(?!\w)")
    token = rf"(?:{_DIGIT_WORDS}|\d+)"
    spoken = re.compile(
        rf"(?<!\w){token}(?:[\s,.\-]+{token}){{{min_digits - 1},}}(?!\w)", re.IGNORECASE)
    return written, spoken


def _digit_count(run: str) -> int:
    words = re.findall(rf"{_DIGIT_WORDS}|\d+", run, flags=re.IGNORECASE)
    return sum(len(w) if w.isdigit() else 1 for w in words)


def numbers_redact(*, text: str, min_digits: int = 7) -> str:
    """``text`` with every phone-number-like run of ``min_digits`` or more digits, written
    or spoken as words, replaced by ``[number]``; dates are kept."""
    written, spoken = _patterns(max(3, min_digits))

    def mask_written(match: re.Match[str]) -> str:
        run = match.group(0)
        parts = run.split(",")
        if len(parts) > 1 and any(_digit_count(part) > 2 for part in parts):
            # Commas join digits read out one by one; between longer groups they separate
            # items ("parts 12493, 12494"), each judged on its own.
            return ",".join(numbers_redact(text=part, min_digits=min_digits) for part in parts)
        return run if _DATES.fullmatch(run) else MASK

    def mask_spoken(match: re.Match[str]) -> str:
        run = match.group(0)
        # Runs of digits alone were judged above; a run that still has words in it is a
        # number read out word by word.
        return MASK if _digit_count(run) >= min_digits and re.search(
            _DIGIT_WORDS, run, re.IGNORECASE) else run

    return spoken.sub(mask_spoken, written.sub(mask_written, text))


# Words of a metadata key that make it name a party of the call (its number, name or
# address), in any SIP stack's or telephony API's spelling: callerName, caller_id_number,
# CallerIdNumber, sip_from_user, from_display, ANI, DNIS, originator, P-Asserted-Identity.
_PARTY_WORDS = frozenset({
    "ani", "caller", "callee", "cid", "cld", "cli", "clid", "contact", "ddi", "dest", "did",
    "display", "dnis", "ext", "fax", "from", "identity", "mail", "msisdn", "name", "names",
    "nr", "num", "number", "origin", "pai", "party", "phone", "ppi", "rpid", "tel", "to",
    "uri", "user",
})
# The same inside words run together ("callerid", "fromdisplayname", "e164").
_PARTY_STEMS = ("asserted", "callee", "caller", "called", "calling", "contact", "destination",
                "display", "diversion", "dnis", "e164", "email", "identity", "mobile", "msisdn",
                "number", "originat", "party", "phone", "referred", "subscriber", "telephone")
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def party_key(key: str) -> bool:
    """Whether a metadata key names a party of the call, whatever its value looks like.

    Keys are split into words at camelCase humps and separators, so ``sampleRate``,
    ``mixType``, ``direction``, ``language`` and ``callSid`` stay while ``callerName``,
    ``CallerIdNumber``, ``from_display`` and ``ani`` go.
    """
    words = {word.lower() for word in _KEY_WORDS.findall(key)}
    joined = key.lower()
    return bool(words & _PARTY_WORDS) or any(stem in joined for stem in _PARTY_STEMS)
