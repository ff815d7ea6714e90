from __future__ import annotations

import warnings

import numpy as np
import pytest

from voice.dsp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference: CPython's C implementation of ITU-T G.711

ALL_PCM = np.arange(65536, dtype=np.uint16).tobytes()  # every 16-bit sample, little-endian
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_reference_on_every_sample() -> None:
    assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_matches_reference_on_every_sample() -> None:
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def test_ulaw_decode_matches_reference_on_every_code() -> None:
    assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_reference_on_every_code() -> None:
    assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_round_trip_keeps_a_tone_within_companding_error() -> None:
    t = np.arange(160) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    back = np.frombuffer(g711.ulaw_decode(g711.ulaw_encode(tone.tobytes())), dtype="<i2")
    assert np.max(np.abs(back.astype(int) - tone)) <= 256  # top segment step / 2


def test_odd_length_pcm_is_refused() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.ulaw_encode(b"\x00\x01\x02")
