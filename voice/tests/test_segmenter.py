"""Utterances out of frames: the hard cap on an utterance's length."""

from __future__ import annotations

from typing import Any

from voice import metrics
from voice.dsp.vad import VadEvent
from voice.session.segmenter import UtteranceSegmenter
from voice.signals import voiced


def test_endless_speech_is_cut_at_the_maximum_and_the_buffer_starts_afresh(
        settings: Any) -> None:
    settings.TOM_MAX_UTTERANCE_S = 30
    segmenter = UtteranceSegmenter(rate=8000)
    noise = voiced(8000, 75.0)  # a fan the VAD takes for a voice, for 75 s
    cut_before = metrics.UTTERANCES_CUT._value.get()
    cuts: list[tuple[int, int]] = []
    for index, offset in enumerate(range(0, len(noise), 320)):
        event, utterance = segmenter.push(noise[offset:offset + 320])
        if utterance is not None:
            assert event is VadEvent.SPEECH_END
            cuts.append((index, len(utterance)))
    # 30 s each (16,000 bytes a second), handed over as they fill, not at the end.
    assert [size for _, size in cuts] == [30 * 16_000, 30 * 16_000]
    assert cuts[0][0] < 1_510 and cuts[1][0] < 3_020
    assert metrics.UTTERANCES_CUT._value.get() - cut_before == 2
    # What is left is the 15 s since the last cut, not all 75.
    rest = segmenter.take()
    assert rest is not None and len(rest) <= 15 * 16_000
