"""Caller utterances out of 20 ms frames: VAD, pre-roll, and the barge-in decision."""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from django.conf import settings

from voice import metrics
from voice.dsp.vad import VadEvent, VadMachine, VadParams, VadState, dbfs
from voice.vad import make_classifier

logger = logging.getLogger(__name__)

FRAME_S = 0.02


@dataclass(frozen=True, slots=True)
class Utterance:
    pcm: bytes  # the caller's speech, trailing silence removed
    started: bool  # this frame confirmed speech onset (SPEECH_START)


class UtteranceSegmenter:
    def __init__(self, *, rate: int, stop_ms: int | None = None,
                 barge_in_ms: int | None = None) -> None:
        self.barge_in_ms = barge_in_ms or settings.TOM_BARGE_IN_MIN_SPEECH_MS
        self.params = VadParams(frame_s=FRAME_S, start_s=settings.TOM_VAD_START_MS / 1000,
                                stop_s=(stop_ms or settings.TOM_VAD_STOP_MS) / 1000)
        self.vad = VadMachine(self.params)
        self.classifier = make_classifier(rate=rate,  # the engine TOM_VAD_BACKEND names
                                          aggressiveness=settings.TOM_VAD_AGGRESSIVENESS)
        # Frames before the VAD confirms speech belong to the utterance too.
        self._preroll: deque[bytes] = deque(maxlen=self.params.start_frames + 2)
        self._frames: list[bytes] = []
        self._loud = 0
        # Noise the VAD takes for speech (a fan, music on hold) never ends an utterance:
        # past this many frames it is cut, so the buffer and the STT input stay bounded.
        self.max_frames = max(1, round(settings.TOM_MAX_UTTERANCE_S / FRAME_S))

    @property
    def in_speech(self) -> bool:
        return self.vad.state is not VadState.QUIET

    @property
    def speech_onset_ago_s(self) -> float:
        return self.vad.speech_frames * FRAME_S

    @property
    def loud_ms(self) -> float:
        """Milliseconds of loud speech in the current utterance."""
        return self._loud * FRAME_S * 1000

    def barge_in_ready(self) -> bool:
        """Loud speech has lasted long enough to interrupt the agent.

        Backchannels ("hm", "ja") and the agent's own echo are short or quiet: demand both
        ``TOM_BARGE_IN_MIN_SPEECH_MS`` and ``TOM_BARGE_IN_MIN_DBFS``.
        """
        return self._loud * FRAME_S * 1000 >= self.barge_in_ms

    def push(self, frame: bytes, *, loud_dbfs: float | None = None
             ) -> tuple[VadEvent | None, bytes | None]:
        """Feed a frame; return the VAD event, and the utterance when one just ended.

        ``loud_dbfs`` raises the level that counts as loud for barge-in (the echo guard).
        """
        level = dbfs(frame)
        event = self.vad.update(self.classifier.is_speech(frame, level=level))
        if self.vad.state is VadState.QUIET and event is None:
            self._preroll.append(frame)
            self._loud = 0
            return None, None
        if not self._frames:
            self._frames.extend(self._preroll)
            self._preroll.clear()
        self._frames.append(frame)
        if level >= max(settings.TOM_BARGE_IN_MIN_DBFS, loud_dbfs or -math.inf):
            self._loud += 1
        if event is VadEvent.SPEECH_END:
            return event, self.take()
        if len(self._frames) >= self.max_frames:
            # Handled as if the caller had paused: the turn answers what was said so far.
            metrics.UTTERANCES_CUT.inc()
            logger.warning("segmenter.utterance_cut",
                           extra={"seconds": round(len(self._frames) * FRAME_S, 2)})
            return VadEvent.SPEECH_END, self.take()
        return event, None

    @property
    def trailing_silence_ms(self) -> float:
        """How long the caller has been silent in an utterance not yet ended."""
        return self.vad.silent_frames * FRAME_S * 1000

    def peek(self) -> bytes | None:
        """The utterance so far without its trailing silence, leaving it in place.

        If no more speech comes, ``take`` at the end of the turn returns these same bytes,
        so a transcription started now can stand for the turn's.
        """
        if not self._frames or not self.vad.silent_frames:
            return None
        return b"".join(self._frames[:max(1, len(self._frames) - self.vad.silent_frames)])

    def prepend(self, pcm: bytes) -> None:
        """Put ``pcm`` before the utterance that just started: the caller's earlier words,
        which were not answered yet, so that one transcript hears the whole question."""
        if self._frames:
            self._frames.insert(0, pcm)

    def take(self) -> bytes | None:
        """The utterance so far (trailing silence dropped), and start afresh."""
        if not self._frames:
            return None
        keep = max(1, len(self._frames) - (self.params.stop_frames
                                           if self.vad.state is VadState.QUIET else 0))
        pcm = b"".join(self._frames[:keep])
        self._frames, self._loud = [], 0
        self.vad.reset()
        return pcm
