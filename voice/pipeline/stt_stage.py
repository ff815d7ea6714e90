"""STT: a caller utterance becomes text, and the reply's handle is made.

A transcription started early (``EarlyUtterance``, during the end-of-turn silence) stands
for the turn's when it read exactly the utterance's audio; otherwise it is cancelled.
Whisper runs in a worker thread holding an STT slot until it returns (voice.session.slots).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from django.conf import settings

from voice import metrics, stt
from voice.pipeline.frames import (
    CallerText,
    Direction,
    EarlyUtterance,
    Frame,
    SpeechContinued,
    TurnDone,
    Utterance,
)
from voice.pipeline.inbound import RATE
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech
from voice.session.hearing import stt_hints, transcript_understood
from voice.session.slots import run_in_slot


class SttStage(Stage):
    name = "stt"

    def __init__(self, *, backend: Callable[[], stt.SttBackend], language: str,
                 vocabulary: Callable[[], Any], reply_rate: int) -> None:
        super().__init__()
        self._backend, self._vocabulary = backend, vocabulary
        self.language, self.reply_rate = language, reply_rate
        self._early: tuple[bytes, asyncio.Task[stt.Transcription]] | None = None

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, EarlyUtterance):
            self._drop_early()
            self._early = (frame.pcm, asyncio.create_task(self._transcribe(frame.pcm),
                                                          name="stt-early"))
        elif isinstance(frame, SpeechContinued):
            self._drop_early()
            self.discard(lambda queued: isinstance(queued, EarlyUtterance))
            await self.push(frame, direction)
        elif isinstance(frame, Utterance) and frame.turn is not None:
            await self._utterance(frame, frame.turn)
        else:
            await self.push(frame, direction)

    async def _utterance(self, frame: Utterance, turn: int) -> None:
        early = self._take_early(frame.pcm)
        try:
            heard = await early if early is not None else await self._transcribe(frame.pcm)
        finally:
            if early is not None and not early.done():
                early.cancel()
        metrics.STT_LATENCY.observe(heard.ms / 1000)
        if not heard.text:
            await self.push(TurnDone(turn=turn))
            return
        understood = await asyncio.to_thread(
            transcript_understood, heard=heard.text, vocabulary=self._vocabulary(),
            language=self.language, turn=turn)
        speech = AgentSpeech(turn=turn, text="", rate=self.reply_rate, caller_text=understood,
                             caller_text_raw=heard.text, caller_speech_end_at=frame.speech_end_at,
                             timings={"stt_ms": heard.ms})
        await self.push(CallerText(speech=speech, turn=turn))

    async def _transcribe(self, pcm: bytes) -> stt.Transcription:
        hints = stt_hints(vocabulary=self._vocabulary(), language=self.language)
        return await run_in_slot(stage="stt", size=settings.TOM_STT_MAX_CONCURRENCY,
                                 fn=self._backend().transcribe, args=(pcm,),
                                 kwargs={"rate": RATE, "language": self.language, **hints})

    def _take_early(self, pcm: bytes) -> asyncio.Task[stt.Transcription] | None:
        early, self._early = self._early, None
        if early is None:
            return None
        if early[0] == pcm:
            return early[1]
        early[1].cancel()
        return None

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early[1].cancel()

    @property
    def early_pending(self) -> bool:
        return self._early is not None

    async def aclose(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await early[1]
