from __future__ import annotations

import pytest

from voice.dsp.framing import FrameBuffer, OutboundBuffer, frame_bytes


def test_frame_bytes() -> None:
    assert frame_bytes(8000) == 320 and frame_bytes(16000) == 640 and frame_bytes(24000, 10) == 480


def test_variable_chunks_come_out_as_exact_frames_in_order() -> None:
    buffer = FrameBuffer(320)
    stream = bytes(range(256)) * 10  # 2560 bytes = 8 frames
    sizes = [1, 319, 500, 13, 700, 1027]
    frames, start = [], 0
    for size in sizes:
        frames += buffer.push(stream[start:start + size])
        start += size
    assert [len(f) for f in frames] == [320] * 8
    assert b"".join(frames) == stream
    assert buffer.pending == 0 and buffer.flush() is None


def test_flush_pads_the_last_partial_frame_with_silence() -> None:
    buffer = FrameBuffer(320)
    assert buffer.push(b"\x01\x02" * 50) == []
    assert buffer.flush() == b"\x01\x02" * 50 + bytes(220)


def test_bad_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="even number"):
        FrameBuffer(321)


def test_outbound_underrun_sends_silence_only_while_an_utterance_is_open() -> None:
    out = OutboundBuffer(320, max_frames=50)
    assert out.read() is None and out.idle
    out.write(b"\x07" * 640)
    assert out.read() == b"\x07" * 320 and out.read() == b"\x07" * 320
    assert out.read() == bytes(320)  # TTS is still producing: keep the line fed
    assert out.stats.underruns == 1
    out.write(b"\x07" * 100, final=True)
    assert out.read() == b"\x07" * 100 + bytes(220)
    assert out.read() is None and out.idle


def test_outbound_overrun_drops_the_oldest_frames() -> None:
    out = OutboundBuffer(320, max_frames=3)
    out.write(b"".join(bytes([i]) * 320 for i in range(5)), final=True)
    assert out.stats.overruns == 2
    assert [out.read()[0] for _ in range(3)] == [2, 3, 4]  # type: ignore[index]


def test_clear_drops_queued_and_partial_audio() -> None:
    out = OutboundBuffer(320, max_frames=100)
    out.write(b"\x05" * 1000)
    assert out.clear() == 4  # three whole frames and a partial one
    assert out.read() is None and out.stats.cleared == 4
