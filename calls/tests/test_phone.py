from __future__ import annotations

import pytest
from django.test import override_settings

from calls import phone

SAME_NUMBER = [
    "+49 30 1234567",
    "+49301234567",
    "030 1234567",
    "030/123 45 67",
    "0049 30 1234567",
    "(030) 1234567",
    "sip:+49301234567@pbx.example",
    "tel:+49-30-1234567",
    "sip:030 1234567@10.0.0.1;user=phone",
]


@pytest.mark.parametrize("raw", SAME_NUMBER)
def test_formats_of_one_number_normalise_and_hash_alike(raw: str) -> None:
    assert phone.normalise(raw) == "+49301234567"
    assert phone.phone_hash(raw) == phone.phone_hash("+49301234567")


def test_different_numbers_hash_differently() -> None:
    assert phone.phone_hash("+49 30 1234567") != phone.phone_hash("+49 30 1234568")


def test_different_key_gives_a_different_hash_and_key_id() -> None:
    first = phone.phone_hash("+49 30 1234567")
    with override_settings(TOM_PHONE_HASH_KEY="another-key-" + "x" * 32):
        second = phone.phone_hash("+49 30 1234567")
    assert first is not None and second is not None
    assert first.digest != second.digest
    assert first.key_id != second.key_id


def test_hash_is_hmac_not_a_bare_digest() -> None:
    import hashlib

    hashed = phone.phone_hash("+49301234567")
    assert hashed is not None
    assert hashed.digest != hashlib.sha256(b"+49301234567").hexdigest()
    assert len(hashed.digest) == 64


@pytest.mark.parametrize("raw", ["", "anonymous", "unknown", "sip:anonymous@pbx", "12"])
def test_withheld_numbers_have_no_hash(raw: str) -> None:
    assert phone.phone_hash(raw) is None
    assert phone.phone_hash_candidates(raw) == []


def test_extensions_hash_by_their_digits() -> None:
    assert phone.normalise("1001") == "1001"
    assert phone.phone_hash("sip:1001@pbx") == phone.phone_hash("1001")


def test_default_region_decides_national_numbers() -> None:
    with override_settings(TOM_DEFAULT_REGION="AT"):
        assert phone.normalise("01 5123456") == "+4315123456"


def test_candidates_cover_every_active_key_newest_first() -> None:
    with override_settings(TOM_PHONE_HASH_KEY="new-" + "n" * 40,
                           TOM_PHONE_HASH_OLD_KEYS=["old-" + "o" * 40]):
        candidates = phone.phone_hash_candidates("+49 30 1234567")
        assert [c.key_id for c in candidates] == [k.key_id for k in phone.key_ring()]
        assert candidates[0] == phone.phone_hash("+49 30 1234567")
    with override_settings(TOM_PHONE_HASH_KEY="old-" + "o" * 40, TOM_PHONE_HASH_OLD_KEYS=[]):
        assert candidates[1] == phone.phone_hash("+49 30 1234567")


def test_key_id_is_a_fingerprint_not_the_key() -> None:
    key_id = phone.key_id_for("secret-key")
    assert len(key_id) == phone.KEY_ID_LENGTH
    assert "secret" not in key_id
    assert key_id == phone.key_id_for("secret-key")


def test_short_form_shows_no_full_digest() -> None:
    hashed = phone.phone_hash("+49301234567")
    assert hashed is not None
    assert hashed.digest not in hashed.short
    assert hashed.short.startswith(hashed.key_id[:4])
