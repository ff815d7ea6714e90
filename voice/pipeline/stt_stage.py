"""STT: a caller utterance becomes text, and the reply's handle is made.

A transcription started early (``EarlyUtterance``, during the end-of-turn silence) stands
for the turn's when it read exactly the utterance's audio; otherwise it is cancelled.
Once heard (and corrected), the early transcript goes on as ``EarlyCallerText`` so that
routing, tools and the LLM can start on it before the silence is over (speculation: kept
only if the turn asks the same). Whisper runs in a worker thread holding an STT slot until
it returns (voice.session.slots).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from voice import metrics, stt
from voice.pipeline.frames import (
    CallerText,
    Direction,
    EarlyCallerText,
    EarlyUtterance,
    Frame,
    SpeechContinued,
    TurnDone,
    Utterance,
)
from voice.pipeline.inbound import RATE
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech
from voice.session.hearing import (
    catalog_heard,
    second_pass_hints,
    stt_hints,
    transcript_understood,
)
from voice.session.slots import run_in_slot


@dataclass(frozen=True, slots=True)
class _Heard:
    transcription: stt.Transcription
    understood: str  # after entity correction
    started_at: float  # stage clock: the transcription began
    heard_at: float  # Whisper returned
    understood_at: float  # the correction returned


class SttStage(Stage):
    name = "stt"

    def __init__(self, *, backend: Callable[[], stt.SttBackend], language: str,
                 vocabulary: Callable[[], Any], reply_rate: int,
                 speculate: bool = False) -> None:
        super().__init__()
        self._backend, self._vocabulary = backend, vocabulary
        self.language, self.reply_rate, self.speculate = language, reply_rate, speculate
        # Told each turn's stage marks (the console's live stage); set by the session.
        self.observer: Callable[[str], None] | None = None
        # The audio an early transcription reads, and its task.
        self._early: tuple[bytes, asyncio.Task[_Heard]] | None = None

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, EarlyUtterance):
            self._drop_early()
            self._early = (frame.pcm, asyncio.create_task(
                self._hear_early(frame.pcm, frame.next_turn), name="stt-early"))
        elif isinstance(frame, SpeechContinued):
            self._drop_early()
            self.discard(lambda queued: isinstance(queued, EarlyUtterance))
            await self.push(frame, direction)
        elif isinstance(frame, Utterance) and frame.turn is not None:
            await self._utterance(frame, frame.turn)
        else:
            await self.push(frame, direction)

    async def _utterance(self, frame: Utterance, turn: int) -> None:
        turn_at = self.clock()
        early = self._take_early(frame.pcm)
        try:
            heard = await early if early is not None else await self._hear(frame.pcm, turn=turn)
        finally:
            if early is not None and not early.done():
                early.cancel()
        metrics.STT_LATENCY.observe(heard.transcription.ms / 1000)
        if not heard.transcription.text:
            await self.push(TurnDone(turn=turn))
            return
        speech = AgentSpeech(turn=turn, text="", rate=self.reply_rate,
                             caller_text=heard.understood,
                             caller_text_raw=heard.transcription.text,
                             caller_speech_end_at=frame.speech_end_at,
                             caller_speech_start_at=frame.speech_end_at - len(frame.pcm) / 2 / RATE,
                             timings={"stt_ms": heard.transcription.ms},
                             observer=self.observer)
        # stt_start before turn_start: the transcription began in the end-of-turn silence.
        for name, at in (("stt_start", heard.started_at), ("turn_start", turn_at),
                         ("stt_done", heard.heard_at), ("understood", heard.understood_at)):
            speech.mark(name, at)
        await self.push(CallerText(speech=speech, turn=turn))

    async def _hear(self, pcm: bytes, *, turn: int) -> _Heard:
        started, vocabulary = self.clock(), self._vocabulary()
        heard = await self._transcribe(pcm, stt_hints(vocabulary=vocabulary,
                                                      language=self.language))
        # Off the event loop: matching against a large catalog would stall every call.
        catalog = await asyncio.to_thread(catalog_heard, heard=heard.text,
                                          vocabulary=vocabulary)
        hints = second_pass_hints(catalog=catalog, vocabulary=vocabulary,
                                  language=self.language)
        if hints:  # a catalog request: heard again with the catalog's words as the prompt
            biased = await self._transcribe(pcm, hints)
            metrics.STT_SECOND_PASSES.inc()
            heard = stt.Transcription(text=biased.text or heard.text, language=heard.language,
                                      ms=heard.ms + biased.ms)
        heard_at = self.clock()
        understood = await asyncio.to_thread(
            transcript_understood, heard=heard.text, vocabulary=vocabulary,
            language=self.language, turn=turn, catalog=bool(catalog)) if heard.text else ""
        return _Heard(transcription=heard, understood=understood, started_at=started,
                      heard_at=heard_at, understood_at=self.clock())

    async def _transcribe(self, pcm: bytes, hints: dict[str, str]) -> stt.Transcription:
        return await run_in_slot(stage="stt", size=settings.TOM_STT_MAX_CONCURRENCY,
                                 fn=self._backend().transcribe, args=(pcm,),
                                 kwargs={"rate": RATE, "language": self.language, **hints})

    async def _hear_early(self, pcm: bytes, next_turn: int) -> _Heard:
        heard = await self._hear(pcm, turn=next_turn)
        if self.speculate and heard.understood:
            await self.push(EarlyCallerText(text=heard.understood, speculates=next_turn))
        return heard

    def _take_early(self, pcm: bytes) -> asyncio.Task[_Heard] | None:
        """The early transcription, if it read exactly ``pcm``."""
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
