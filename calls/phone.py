"""Phone numbers: normalise to E.164, then hash with HMAC-SHA256 under a key ring.

A raw number exists only in memory while a call starts or a supervisor searches;
it is never stored, logged or used in a query. Each hash records the id of the key
that made it, so keys can rotate: new hashes use the newest key, look-ups try every
active key (README: "Rotating the phone hash key").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from django.conf import settings

KEY_ID_LENGTH = 8
# Characters people type in phone numbers; anything else is not a number.
_PHONE_CHARS_RE = re.compile(r"^\+?[\d\s\-/().]+$")
_MIN_DIGITS = 3  # internal extensions are short; "anonymous" has none
_MAX_EXTENSION_DIGITS = 5  # "1001" is a PBX extension, not a number in the default region
# A phone-number-shaped run inside free text: 7+ digits with the usual separators.
_EMBEDDED_RE = re.compile(r"(?<![\w.])\+?\d(?:[ \-/().]{0,2}\d){6,17}(?!\w)")
# UUIDs (call ids) hold digit groups the pattern above would take for numbers.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class PhoneHash:
    """A keyed hash of one normalised number, and the id of the key that made it."""

    key_id: str
    digest: str

    @property
    def short(self) -> str:
        """What the admin shows: enough to tell callers apart, too little to brute-force."""
        return f"{self.key_id[:4]}…{self.digest[:10]}"


@dataclass(frozen=True, slots=True)
class HashKey:
    key_id: str
    secret: bytes


def key_id_for(secret: str) -> str:
    """A stable, non-reversible id for a key: a fingerprint, never the key itself."""
    return hmac.new(secret.encode(), b"tom.phone-hash.key-id", hashlib.sha256).hexdigest()[
        :KEY_ID_LENGTH
    ]


@lru_cache(maxsize=8)
def _key_ring(current: str, old: tuple[str, ...]) -> tuple[HashKey, ...]:
    return tuple(HashKey(key_id_for(secret), secret.encode()) for secret in (current, *old))


def key_ring() -> tuple[HashKey, ...]:
    """All active keys, newest first."""
    return _key_ring(settings.TOM_PHONE_HASH_KEY, tuple(settings.TOM_PHONE_HASH_OLD_KEYS))


def current_key_id() -> str:
    return key_ring()[0].key_id


def looks_like_phone_number(text: str) -> bool:
    """Whether ``text`` is written like a phone number (digits and the usual separators)."""
    stripped = _strip_uri(text)
    return bool(_PHONE_CHARS_RE.match(stripped)) and _digit_count(stripped) >= _MIN_DIGITS


def contains_phone_number(text: str) -> bool:
    """Whether free text holds something written like a full phone number (7+ digits)."""
    return bool(_EMBEDDED_RE.search(_UUID_RE.sub("uuid", text)))


def redact_phone_numbers(text: str) -> str:
    """``text`` with anything written like a phone number replaced by ``[number]``."""
    uuids: list[str] = []

    def keep(match: re.Match[str]) -> str:
        uuids.append(match.group(0))
        return f"\x00{len(uuids) - 1}\x00"

    redacted = _EMBEDDED_RE.sub("[number]", _UUID_RE.sub(keep, text))
    return re.sub("\x00(\\d+)\x00", lambda m: uuids[int(m.group(1))], redacted)


def normalise(raw: str, *, region: str | None = None) -> str | None:
    """Return the number in E.164 where it parses, else its digits; ``None`` if none.

    Accepts what telephony sends: ``+49 30 1234567``, ``030/1234567``,
    ``sip:+49301234567@pbx``, ``tel:+49-30-1234567``, ``0049301234567`` and short
    internal extensions. Withheld numbers ("anonymous", "unknown") give ``None``.
    """
    text = _strip_uri(raw)
    if not text or not looks_like_phone_number(text):
        return None
    digits = re.sub(r"\D", "", text)
    if len(digits) <= _MAX_EXTENSION_DIGITS and not text.startswith("+"):
        return digits
    region = (region or settings.TOM_DEFAULT_REGION or "DE").upper()
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # Odd carrier formats: digits alone still hash consistently.
    return ("+" + digits) if text.lstrip().startswith("+") else digits


def hash_with(key: HashKey, normalised: str) -> PhoneHash:
    digest = hmac.new(key.secret, normalised.encode(), hashlib.sha256).hexdigest()
    return PhoneHash(key_id=key.key_id, digest=digest)


def phone_hash(raw: str) -> PhoneHash | None:
    """Hash ``raw`` under the newest key; ``None`` for a withheld or empty number."""
    normalised = normalise(raw)
    return None if normalised is None else hash_with(key_ring()[0], normalised)


def phone_hash_candidates(raw: str) -> list[PhoneHash]:
    """Hashes of ``raw`` under every active key, newest first, for look-ups."""
    normalised = normalise(raw)
    if normalised is None:
        return []
    return [hash_with(key, normalised) for key in key_ring()]


def _strip_uri(raw: str) -> str:
    text = (raw or "").strip()
    lowered = text.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    # "user@host" and URI parameters (";phone-context=...") are not part of the number.
    return text.split("@", 1)[0].split(";", 1)[0].strip()


def _digit_count(text: str) -> int:
    return sum(ch.isdigit() for ch in text)
