"""Word error rate, used by the real-model tests, greenlights and the speech benchmark."""

from __future__ import annotations

from voice.wer import word_error_rate


def test_word_error_rate() -> None:
    ref = "brake pads for a golf 7".split()
    assert word_error_rate(ref, ref) == 0.0
    assert word_error_rate(ref, "break pads for a golf 7".split()) == 1 / 6  # substitution
    assert word_error_rate(ref, "brake pads for golf 7".split()) == 1 / 6  # deletion
    assert word_error_rate(ref, "uh brake pads for a golf 7".split()) == 1 / 6  # insertion
    assert word_error_rate(ref, []) == 1.0
    assert word_error_rate([], ["noise"]) == 1.0
