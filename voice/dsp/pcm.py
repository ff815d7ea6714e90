"""Inbound audio decoding: whatever the fork module sends, as 16-bit mono PCM of the caller."""

from __future__ import annotations

import numpy as np

from voice.dsp import g711

ENCODINGS = ("l16", "pcmu", "pcma")


def decode_inbound(data: bytes, *, encoding: str, channels: int) -> bytes:
    """Decode one message's audio to 16-bit little-endian mono PCM of the caller.

    Stereo forks interleave left = what FreeSWITCH receives from the caller (its
    media bug's read stream) and right = what it sends to the caller
    (``switch_core_media_bug_read()``; voice/protocols/SOURCES.md §0): keep the left.
    """
    if encoding == "pcmu":
        pcm = g711.ulaw_decode(data)
    elif encoding == "pcma":
        pcm = g711.alaw_decode(data)
    elif encoding == "l16":
        pcm = data
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    if channels == 1:
        return pcm
    frame = 2 * channels
    usable = len(pcm) - len(pcm) % frame
    samples = np.frombuffer(pcm[:usable], dtype="<i2").reshape(-1, channels)
    return np.ascontiguousarray(samples[:, 0]).tobytes()


def pcm_ms(pcm_bytes: int, rate: int) -> float:
    """Duration of 16-bit mono PCM in milliseconds."""
    return pcm_bytes / 2 / rate * 1000
