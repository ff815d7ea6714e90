from __future__ import annotations

import math

import numpy as np
import pytest

from voice.dsp.vad import VadEvent, VadMachine, VadParams, VadState, dbfs
from voice.vad import WebrtcClassifier


def _run(machine: VadMachine, pattern: str) -> list[tuple[int, VadEvent]]:
    return [(i, e) for i, ch in enumerate(pattern) if (e := machine.update(ch == "s"))]


def test_short_blips_do_not_start_an_utterance() -> None:
    machine = VadMachine(VadParams(frame_s=0.02, start_s=0.06, stop_s=0.1))
    assert _run(machine, "s.s.ss..s.") == []
    assert machine.state is VadState.QUIET


def test_start_and_end_are_confirmed_after_their_durations() -> None:
    machine = VadMachine(VadParams(frame_s=0.02, start_s=0.06, stop_s=0.1))
    events = _run(machine, "..sss" + "ss.ss" + "....." + "..")
    assert events == [(4, VadEvent.SPEECH_START), (14, VadEvent.SPEECH_END)]


def test_a_pause_shorter_than_stop_s_keeps_one_utterance() -> None:
    machine = VadMachine(VadParams(frame_s=0.02, start_s=0.02, stop_s=0.1))
    events = _run(machine, "sss....sss.....")
    assert [e for _, e in events] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]


def test_states_are_explicit() -> None:
    machine = VadMachine(VadParams(frame_s=0.02, start_s=0.04, stop_s=0.04))
    seen = []
    for ch in "ss.s..":
        machine.update(ch == "s")
        seen.append(machine.state)
    assert seen == [VadState.STARTING, VadState.SPEAKING, VadState.STOPPING, VadState.SPEAKING,
                    VadState.STOPPING, VadState.QUIET]


def test_dbfs() -> None:
    full = (np.ones(160) * 32767).astype("<i2").tobytes()
    assert abs(dbfs(full)) < 0.01
    assert dbfs(bytes(320)) == -math.inf


def _voiced(rate: int, ms: int = 20) -> bytes:
    # A buzzy vowel-like signal: harmonics of 140 Hz, which webrtcvad takes for speech.
    t = np.arange(rate * ms // 1000) / rate
    wave = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    return (6000 * wave / np.max(np.abs(wave))).astype("<i2").tobytes()


def test_webrtc_classifier_hears_voice_not_silence_at_every_rate() -> None:
    for rate in (8000, 16000, 24000):
        classifier = WebrtcClassifier(rate=rate, aggressiveness=2)
        decisions = [classifier.is_speech(_voiced(rate)) for _ in range(10)]
        assert sum(decisions) >= 8, rate
        assert not classifier.is_speech(bytes(rate * 20 // 1000 * 2))


@pytest.mark.models
def test_silero_hears_a_spoken_sentence_and_not_silence() -> None:
    from voice import tts
    from voice.dsp.resample import resample
    from voice.vad import SileroClassifier

    engine = tts.get_tts("en")
    speech = resample(engine.synthesize("Do you have brake pads for my car?"), engine.rate, 8000)
    classifier = SileroClassifier(rate=8000)
    frames = [speech[i:i + 320] for i in range(0, len(speech) - 319, 320)]
    decisions = [classifier.is_speech(frame) for frame in frames]
    assert sum(decisions) / len(decisions) > 0.5
    quiet = SileroClassifier(rate=8000)
    assert not any(quiet.is_speech(bytes(320)) for _ in range(50))
