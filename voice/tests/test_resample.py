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


@pytest.mark.parametrize(("in_rate", "out_rate"), [(22050, 8000), (8000, 22050), (48000, 8000)])
def test_any_chunking_gives_the_same_signal(in_rate: int, out_rate: int) -> None:
    """Empty, one-sample and odd-sized chunks, and chunks past one gather block."""
    signal = _tone(440, in_rate)
    sizes = [0, 1, 1, 3, 7, 441, 0, 160, 5000, 2, 20000]
    streamer, pieces, at = Resampler(in_rate, out_rate), [], 0
    for size in sizes * 3:
        pieces.append(streamer.process(signal[at:at + 2 * size]))
        at += 2 * size
    pieces.append(streamer.process(signal[at:]))
    streamed = np.frombuffer(b"".join(pieces), dtype="<i2").astype(int)
    whole = np.frombuffer(resample(signal, in_rate, out_rate), dtype="<i2").astype(int)
    assert len(streamed) == len(whole) and np.max(np.abs(streamed - whole)) <= 1


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


def _settled(pcm: bytes, rate: int) -> np.ndarray:
    """Past the filter's start-up (8 ms of the lower rate): a tone switching on from
    silence is a click, not a tone."""
    return np.frombuffer(pcm, dtype="<i2").astype(float)[rate // 100:]


def _level_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples ** 2)) + 1e-9))


@pytest.mark.parametrize(("in_rate", "out_rate"), [(22050, 8000), (16000, 8000), (24000, 8000),
                                                    (48000, 8000), (8000, 16000), (8000, 22050)])
@pytest.mark.parametrize("freq", [1000, 3400])
def test_telephone_band_keeps_its_level_both_ways(in_rate: int, out_rate: int,
                                                  freq: int) -> None:
    original = _tone(freq, in_rate)
    out = resample(original, in_rate, out_rate)
    # Filters counted in input samples lost 1.0, 1.2 and 3.0 dB at 3.4 kHz going
    # from 22050, 24000 and 48000 Hz to 8 kHz.
    assert abs(_level_db(_settled(out, out_rate)) - _db(original)) <= 0.5


@pytest.mark.parametrize("in_rate", [22050, 16000, 24000, 48000])
@pytest.mark.parametrize("freq", [4400, 5000, 6000, 7000])
def test_tones_above_the_8k_nyquist_are_rejected_by_70db(in_rate: int, freq: int) -> None:
    """4.4 kHz folds onto 3.6 kHz at 8 kHz: the caller would hear it inside the band."""
    original = _tone(freq, in_rate)
    out = _settled(resample(original, in_rate, 8000), 8000)
    assert _db(original) - _level_db(out) >= 70


@pytest.mark.parametrize("in_rate", [22050, 16000, 24000, 48000])
def test_a_sweep_over_the_whole_stopband_is_rejected_by_70db(in_rate: int) -> None:
    """Every frequency from 4.4 kHz to near the input's Nyquist, streamed in 20 ms chunks
    through one Resampler as a call does."""
    seconds, low, high = 2.0, 4400.0, 0.95 * in_rate / 2
    t = np.arange(int(in_rate * seconds)) / in_rate
    # Linear chirp: the instantaneous frequency runs from low to high.
    sweep = 12000 * np.sin(2 * np.pi * (low * t + (high - low) / (2 * seconds) * t ** 2))
    pcm = sweep.astype("<i2").tobytes()
    streamer = Resampler(in_rate, 8000)
    out = _settled(b"".join(streamer.process(c) for c in _chunks(pcm, in_rate)), 8000)
    # Nowhere in the sweep does the alias rise above -70 dB, not even for 20 ms.
    windows = out[:len(out) // 160 * 160].reshape(-1, 160)
    assert _db(pcm) - max(_level_db(w) for w in windows) >= 70


@pytest.mark.parametrize("out_rate", [16000, 22050, 24000, 48000])
@pytest.mark.parametrize("freq", [1000, 3000, 3400])
def test_upsampling_leaves_no_images_above_4khz(out_rate: int, freq: int) -> None:
    """Zero-stuffing 8 kHz puts images at 8000 - f, 8000 + f, ...; all must go."""
    out = _settled(resample(_tone(freq, 8000), 8000, out_rate), out_rate)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out)))) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / out_rate)
    tone = spectrum[np.abs(freqs - freq) < 50].sum()
    images = spectrum[freqs > 4000].sum()
    assert 10 * np.log10(tone / images) >= 70


def test_telephone_band_is_flat_through_8k_16k_8k() -> None:
    for freq in (300, 1000, 3000, 3400):
        tone = _tone(freq, 8000)
        back = resample(resample(tone, 8000, 16000), 16000, 8000)
        assert abs(_db(back[1000:]) - _db(tone[1000:])) < 1.0, freq


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (22050, 8000),
                                                    (24000, 8000), (8000, 22050)])
def test_delay_is_a_few_milliseconds(in_rate: int, out_rate: int) -> None:
    click = np.zeros(in_rate // 10, dtype="<i2")
    click[in_rate // 80] = 20000  # at 12.5 ms
    out = np.frombuffer(resample(click.tobytes(), in_rate, out_rate), dtype="<i2")
    delay_ms = int(np.argmax(np.abs(out))) / out_rate * 1000 - 12.5
    assert 0 <= delay_ms <= 5


def test_reset_forgets_history() -> None:
    streamer = Resampler(8000, 16000)
    first = streamer.process(_tone(440, 8000, 0.1))
    streamer.reset()
    assert streamer.process(_tone(440, 8000, 0.1)) == first


def test_same_rate_passes_through_and_bad_input_is_refused() -> None:
    assert Resampler(8000, 8000).process(b"\x01\x02") == b"\x01\x02"
    assert Resampler(22050, 8000).process(b"") == b""  # an empty chunk is no chunk
    with pytest.raises(ValueError, match="even number"):
        Resampler(8000, 16000).process(b"\x01")
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
