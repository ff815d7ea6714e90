"""TTS: each clause spoken as soon as it arrives, at the call's rate, into its reply.

One stateful resampler per call for the outbound direction (TTS rate → call rate), so
clauses and replies join without a seam. The reply's handle gets each clause's audio and
text; after a backchannel (``Resumed``) the rest of the reply goes to its continuation.
A failed turn gets the spoken apology (in another voice when this one failed), never
silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from django.conf import settings

from voice import metrics, tts
from voice.dsp.resample import Resampler
from voice.pipeline.frames import (
    AgentReplied,
    Clause,
    Direction,
    Frame,
    LlmRoundEnd,
    Resumed,
    SpeechAudio,
    TranscriptLine,
    TurnFailed,
)
from voice.pipeline.stage import Stage
from voice.session.apology import apology_audio, apology_speech, apology_text
from voice.session.events import AgentSpeech
from voice.session.slots import run_in_slot

Engine = Callable[[], Awaitable[tts.TtsBackend]]


class TtsStage(Stage):
    name = "tts"

    def __init__(self, *, engine: Engine, rate: int, language: str) -> None:
        super().__init__()
        self._engine, self.rate, self.language = engine, rate, language
        self._resampler: Resampler | None = None
        self._routes: dict[int, AgentSpeech] = {}  # id(reply) → its continuation

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, Clause) and frame.turn is not None:
            await self._say(frame)
        elif isinstance(frame, LlmRoundEnd) and frame.turn is not None:
            if frame.final:
                await self._finish(frame.speech)
            else:
                await self.push(frame, direction)
        elif isinstance(frame, TurnFailed):
            await self._apologise(frame)
        elif isinstance(frame, Resumed):
            self._routes[id(frame.speech)] = frame.continuation
            await self.push(frame, direction)
        else:
            await self.push(frame, direction)

    def _route(self, speech: AgentSpeech) -> AgentSpeech:
        """Where the reply's audio goes now: the reply, or its resumed continuation."""
        while id(speech) in self._routes:
            speech = self._routes[id(speech)]
        return speech

    async def _say(self, clause: Clause) -> None:
        speech, engine, started = clause.speech, await self._engine(), self.clock()
        tts.clause_index.set(len(speech.clauses))  # this frame's own task: no reset needed
        pcm = await run_in_slot(stage="tts", size=settings.TOM_TTS_MAX_CONCURRENCY,
                                fn=tts.speech_synthesize, kwargs={"engine": engine,
                                                                  "text": clause.text})
        if self._resampler is None or self._resampler.in_rate != engine.rate:
            self._resampler = Resampler(engine.rate, self.rate)
        pcm = self._resampler.process(pcm)
        speech.mark("tts_first_audio", self.clock())
        if "tts_first_audio_ms" not in speech.timings:
            speech.timings["tts_first_audio_ms"] = round((self.clock() - started) * 1000)
            metrics.TTS_LATENCY.observe(speech.timings["tts_first_audio_ms"] / 1000)
        speech.clauses.append((clause.text, speech.audio_ms))
        speech.audio += pcm
        speech.audio_bytes += len(pcm)
        if clause.filler:
            speech.filler = clause.text
        speech.text = " ".join(c for c, _ in speech.clauses)
        out = self._route(speech)
        if out is not speech:  # resumed after a backchannel: the rest goes there
            out.audio += pcm
            out.audio_bytes += len(pcm)
            out.clauses.append((clause.text, out.audio_ms - len(pcm) / 2 / out.rate * 1000))
            out.text = f"{out.text} {clause.text}".strip()
        await self.push(SpeechAudio(speech=out, pcm=pcm, text=clause.text, turn=clause.turn))

    async def _finish(self, speech: AgentSpeech) -> None:
        speech.complete = True
        await self.push(AgentReplied(speech=speech, text=speech.spoken_text), Direction.UP)
        out = self._route(speech)
        out.complete = True
        await self.push(SpeechAudio(speech=out, pcm=b"", final=True, turn=speech.turn))
        await self.push(TranscriptLine(role="agent", text=speech.text, final=True,
                                       line_turn=speech.turn))

    async def _apologise(self, failed: TurnFailed) -> None:
        if failed.overload:
            metrics.BACKPRESSURE.labels(stage="overload").inc()
        text = apology_text(language=self.language)
        turn = failed.turn or 0
        pcm = await apology_audio(text=text, rate=self.rate, language=self.language,
                                  turn=turn, voice=None if failed.engine_failed else self._engine)
        speech = apology_speech(text=text, pcm=pcm, turn=turn, rate=self.rate,
                                speech_end_at=failed.speech_end_at, failed=failed.speech)
        if failed.speech is not None:
            await self.push(AgentReplied(speech=speech, text=text, apology=True), Direction.UP)
        await self.push(SpeechAudio(speech=speech, pcm=pcm, final=True, text=text, turn=turn))


async def engine_for(*, language: str, voice: str, speaking_rate: float | None,
                     fixed: tts.TtsBackend | None) -> tts.TtsBackend:
    """The call's voice: a fixed engine (tests), else the process-wide one for it."""
    if fixed is not None:
        return fixed
    return await asyncio.to_thread(tts.get_tts, language, voice=voice,
                                   length_scale=speaking_rate)
