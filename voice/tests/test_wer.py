"""Word error rate, used by the real-model tests, greenlights and the speech benchmark."""

from __future__ import annotations

from voice.wer import word_error_rate


def said(text: str) -> list[str]:
    return text.split()


def test_word_error_rate() -> None:
    ref = said("brake pads for a golf 7")
    assert word_error_rate(ref, ref) == 0.0
    assert word_error_rate(ref, said("break pads for a golf 7")) == 1 / 6  # substitution
    assert word_error_rate(ref, said("brake pads for golf 7")) == 1 / 6  # deletion
    assert word_error_rate(ref, said("uh brake pads for a golf 7")) == 1 / 6  # insertion
    assert word_error_rate(ref, []) == 1.0
    assert word_error_rate([], ["noise"]) == 1.0
