from __future__ import annotations

import numpy as np
import pytest

from voice.dsp.resample import TAPS_PER_PHASE, Resampler, resample

RATES = [8000, 16000, 22050, 24000, 48000]


def _tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 12000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def _chunks(pcm: bytes, rate: int, ms: int = 20) -> list[bytes]:
    size = rate * ms // 1000 * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def _db(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(float)
    return 20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-9)


@pytest.mark.parametrize("in_rate", RATES)
@pytest.mark.parametrize("out_rate", RATES)
def test_chunked_equals_one_shot_without_clicks(in_rate: int, out_rate: int) -> None:
    if in_rate == out_rate:
        return
    signal = _tone(440, in_rate)
    streamer = Resampler(in_rate, out_rate)
    pieces = [streamer.process(chunk) for chunk in _chunks(signal, in_rate)]
    streamed = np.frombuffer(b"".join(pieces), dtype="<i2").astype(int)
    whole = np.frombuffer(resample(signal, in_rate, out_rate), dtype="<i2").astype(int)
    assert len(streamed) == len(whole)
    assert abs(len(whole) - len(signal) // 2 * out_rate / in_rate) <= 1
    assert np.max(np.abs(streamed - whole)) <= 1  # rounding only
    # No clicks: the largest sample-to-sample step at chunk seams is no larger than
    # the largest step anywhere in the steady tone.
    seams = np.cumsum([len(p) // 2 for p in pieces])[:-1]
    steps = np.abs(np.diff(streamed))
    settled = steps[TAPS_PER_PHASE * 4:]
    seam_steps = steps[[s - 1 for s in seams if s > TAPS_PER_PHASE * 4]]
    assert seam_steps.max() <= settled.max()


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (22050, 8000),
                                                    (24000, 8000), (8000, 48000)])
def test_8k_chunks_give_exact_frame_sizes(in_rate: int, out_rate: int) -> None:
    streamer = Resampler(in_rate, out_rate)
    sizes = [len(streamer.process(chunk)) for chunk in _chunks(_tone(300, in_rate), in_rate)]
    expected = out_rate * 20 // 1000 * 2
    assert sizes[1:-1] == [expected] * (len(sizes) - 2)  # the seam trap: 638 instead of 640


def test_passband_tone_keeps_its_level() -> None:
    for in_rate, out_rate in [(8000, 16000), (16000, 8000), (22050, 8000)]:
        out = resample(_tone(1000, in_rate), in_rate, out_rate)
        assert abs(_db(out) - _db(_tone(1000, in_rate))) < 0.5


def test_6khz_tone_is_rejected_by_60db_when_downsampling_to_8k() -> None:
    original = _tone(6000, 16000)
    out = resample(original, 16000, 8000)
    # Past the filter's start-up (the tone switching on from silence is not a tone).
    settled = out[TAPS_PER_PHASE * 2 * 2:]
    assert _db(original) - _db(settled) >= 60


def test_telephone_band_is_flat_through_8k_16k_8k() -> None:
    for freq in (300, 1000, 3000, 3400):
        tone = _tone(freq, 8000)
        back = resample(resample(tone, 8000, 16000), 16000, 8000)
        assert abs(_db(back[1000:]) - _db(tone[1000:])) < 1.0, freq


def test_delay_is_a_few_milliseconds() -> None:
    click = np.zeros(800, dtype="<i2")
    click[100] = 20000
    out = np.frombuffer(resample(click.tobytes(), 8000, 16000), dtype="<i2")
    delay_ms = (int(np.argmax(np.abs(out))) / 16000 - 100 / 8000) * 1000
    assert 0 <= delay_ms <= 5


def test_reset_forgets_history() -> None:
    streamer = Resampler(8000, 16000)
    first = streamer.process(_tone(440, 8000, 0.1))
    streamer.reset()
    assert streamer.process(_tone(440, 8000, 0.1)) == first


def test_same_rate_passes_through_and_bad_input_is_refused() -> None:
    assert Resampler(8000, 8000).process(b"\x01\x02") == b"\x01\x02"
    with pytest.raises(ValueError, match="even number"):
        Resampler(8000, 16000).process(b"\x01")
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
