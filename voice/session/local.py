"""The local session: VAD → faster-whisper → llama.cpp → Piper, in this process.

Models load once per process (voice.stt/llm/tts) and run in worker threads, each stage
behind slots sized by ``TOM_*_MAX_CONCURRENCY`` that a thread holds until it returns
(voice.session.slots). A turn is one task the session owns: it transcribes the
utterance, streams the reply through the clause chunker (voice.session.reply), runs
the tool calls (voice.session.turn_tools) and speaks each clause as soon as it is
complete. Barge-in cancels the turn (the LLM stops
at its next token), and the history keeps only what the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from functools import partial
from typing import Any

from django.conf import settings

from calls import variants
from tomsite.metrics import error_count
from voice import llm as llm_module
from voice import metrics, models, stt, tts
from voice import tools as tool_hooks
from voice.chunker import ToolCall
from voice.dsp.resample import Resampler
from voice.dsp.vad import VadState
from voice.protocols.metadata import CallStart
from voice.session.apology import APOLOGY_EN as APOLOGY_EN  # re-exported for callers
from voice.session.apology import apology_audio, apology_speech, apology_text
from voice.session.base import RealtimeSession
from voice.session.events import (
    AgentAudio,
    AgentSpeech,
    BargeInConfirmed,
    Interruption,
    SpeechResumed,
    Transcript,
)
from voice.session.hearing import echo_floor, stt_hints, transcript_understood
from voice.session.reply import reply_speak
from voice.session.segmenter import UtteranceSegmenter
from voice.session.slots import run_in_slot
from voice.session.turn_tools import tools_capped, tools_route, tools_run

logger = logging.getLogger(__name__)

HISTORY_TURNS = 6  # earlier exchanges are dropped: a phone call needs little memory
# Loud caller speech over the agent for this long silences it at once (see push_audio).
KILL_AFTER_MS = 40


class LocalSession(RealtimeSession):
    """``stt``/``llm``/``tts`` default to the process-wide models; tests pass scripted ones."""

    def __init__(self, *, call: CallStart, stt_backend: stt.SttBackend | None = None,
                 llm_backend: llm_module.LlmBackend | None = None,
                 tts_backend: tts.TtsBackend | None = None,
                 tool_hook: tool_hooks.ToolHook | None = None,
                 call_id: int | None = None,
                 params: variants.VariantParameters | None = None) -> None:
        super().__init__(call=call)
        self._stt, self._llm, self._tts = stt_backend, llm_backend, tts_backend
        self.tools, self.call_id = tool_hook, call_id
        # The call's policy variant decides the persona, voice and turn-taking.
        self.params = params or variants.defaults()
        self.language = (self.params.language or call.language or settings.TOM_LANGUAGE
                         or "en").lower()
        self.stt_model = models.stt_model_name(language=self.language,
                                               variant=self.params.stt_model)
        self.segmenter = UtteranceSegmenter(rate=call.sample_rate,
                                            stop_ms=self.params.vad_stop_ms,
                                            barge_in_ms=self.params.barge_in_min_speech_ms)
        self.history: list[dict[str, str]] = []
        self._turn = 0
        self._task: asyncio.Task[None] | None = None
        self._cancel = threading.Event()
        self._held: AgentSpeech | None = None  # silenced by the caller, not yet confirmed
        self._held_confirmed = False
        self._continuations: dict[int, AgentSpeech] = {}
        # A transcription started during the end-of-turn silence, with the audio it read.
        self._early: tuple[bytes, asyncio.Task[stt.Transcription]] | None = None
        self.vocabulary: Any = None  # the catalog's words (hotwords, entity correction)
        self._outbound: tuple[AgentSpeech, Resampler] | None = None  # TTS -> call rate

    async def prepare(self) -> None:
        """Load (or reuse) the models before the call is answered."""
        self._stt = self._stt or await asyncio.to_thread(stt.get_stt, self.stt_model)
        self._llm = self._llm or await asyncio.to_thread(llm_module.get_llm)
        self._tts = self._tts or await self._engine()
        if self.tools is not None:
            await self.tools.prepare()
            try:
                self.vocabulary = await self.tools.vocabulary(language=self.language)
            except Exception:  # no catalog words: plain transcription still works
                logger.exception("session.vocabulary_failed")

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        """Barge-in in two steps, as LiveKit's false-interruption handling does.

        1. ``KILL_AFTER_MS`` of loud caller speech over the agent: the agent goes quiet at
           once (killAudio leaves within a frame or two of the VAD's onset).
        2. ``TOM_BARGE_IN_MIN_SPEECH_MS`` of it: a real interruption, the turn is
           cancelled and the history keeps the heard part. If the caller stops before
           that ("hm", "ja", a cough), the agent resumes from where it was cut.
        """
        speech = self.speech
        _, utterance = self.segmenter.push(frame, loud_dbfs=echo_floor(
            speech=speech, now=at, mixed=self.call.mix_type == "mixed"))
        if utterance is None:
            self._transcribe_early()
        if self._held is None and speech is not None and speech.playing(at) \
                and self.segmenter.in_speech and self.segmenter.loud_ms >= KILL_AFTER_MS:
            await self._silence_agent(speech, at)
        if self._held is not None and self.segmenter.in_speech \
                and self.segmenter.barge_in_ready():
            self._confirm_barge_in()
        if utterance is None:
            return
        if self._held is not None and not self._held_confirmed:
            self._take_early(None)
            await self._resume()  # a backchannel: carry on speaking
            return
        self._held, self._held_confirmed = None, False
        await self._start_turn(utterance, speech_end_at=at - self.segmenter.params.stop_s)

    async def _silence_agent(self, speech: AgentSpeech, now: float) -> None:
        speech.interrupted_at = now
        self._held, self._held_confirmed = speech, False
        await self.events.put(Interruption(
            speech=speech, speech_onset_at=now - self.segmenter.speech_onset_ago_s))

    def _confirm_barge_in(self) -> None:
        speech = self._held
        if speech is None or self._held_confirmed:
            return
        self._held_confirmed = True
        self._stop_turn()
        # The transport records the reply as a turn when told, not after a guessed delay.
        self.events.put_nowait(BargeInConfirmed(speech=speech))
        heard = speech.heard_text(speech.interrupted_at or 0.0).removeprefix(
            speech.filler).strip()
        if self.history and self.history[-1]["role"] == "assistant":
            self.history[-1]["content"] = heard
        elif heard:
            self.history.append({"role": "assistant", "content": heard})

    async def _resume(self) -> None:
        """Speak the rest of a reply that a backchannel cut off."""
        speech, self._held = self._held, None
        if speech is None or speech.interrupted_at is None:
            return
        heard_ms = speech.heard_ms(speech.interrupted_at)
        offset = int(heard_ms * speech.rate / 1000) * 2
        rest = AgentSpeech(turn=speech.turn, text=speech.unheard_text(heard_ms),
                           rate=speech.rate, caller_text=speech.caller_text,
                           timings=dict(speech.timings), inherited_e2e_ms=speech.e2e_ms,
                           tool_calls=speech.tool_calls, caller_text_raw=speech.caller_text_raw)
        speech.resumed_by = rest
        rest.audio += speech.audio[offset:]
        rest.audio_bytes, rest.complete = len(rest.audio), speech.complete
        self._continuations[id(speech)] = rest
        self.speech = rest
        await self.events.put(SpeechResumed(speech=speech, continuation=rest))
        if rest.audio or rest.complete:
            await self.events.put(AgentAudio(speech=rest, pcm=bytes(rest.audio),
                                             final=rest.complete, text=rest.text))

    def _route_audio(self, speech: AgentSpeech) -> AgentSpeech:
        """Where the turn's audio goes now: the reply, or its resumed continuation."""
        while id(speech) in self._continuations:
            speech = self._continuations[id(speech)]
        return speech

    def _stt_backend(self) -> stt.SttBackend:
        return self._stt or stt.get_stt(self.stt_model)

    async def _transcribe(self, pcm: bytes) -> stt.Transcription:
        hints = stt_hints(vocabulary=self.vocabulary, language=self.language)
        return await run_in_slot(stage="stt", size=settings.TOM_STT_MAX_CONCURRENCY,
                                 fn=self._stt_backend().transcribe, args=(pcm,),
                                 kwargs={"rate": self.call.sample_rate,
                                         "language": self.language, **hints})

    def _transcribe_early(self) -> None:
        """Preemptive STT, as LiveKit's preemptive generation: once the caller has been
        quiet for ``TOM_STT_PREEMPT_MS``, transcribe what they said while the VAD still
        waits out the end-of-turn silence. If they go on speaking, the guess is dropped."""
        segmenter, preempt = self.segmenter, settings.TOM_STT_PREEMPT_MS
        if self._early is not None and segmenter.vad.state is VadState.SPEAKING:
            self._take_early(None)  # the caller went on: that transcript is stale
        if not preempt or self._early is not None \
                or segmenter.trailing_silence_ms < preempt:
            return
        pcm = segmenter.peek()
        if pcm:
            self._early = (pcm, asyncio.create_task(self._transcribe(pcm),
                                                    name="local-stt-early"))

    def _take_early(self, pcm: bytes | None) -> asyncio.Task[stt.Transcription] | None:
        """The early transcription if it read exactly ``pcm``; otherwise cancel it."""
        early, self._early = self._early, None
        if early is None:
            return None
        if pcm is not None and early[0] == pcm:
            return early[1]
        early[1].cancel()
        return None

    def _stop_turn(self) -> None:
        self._cancel.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _start_turn(self, pcm: bytes, *, speech_end_at: float) -> None:
        self._stop_turn()  # a caller still talking supersedes a turn not yet spoken
        self._cancel = threading.Event()
        self._turn += 1
        self._task = asyncio.create_task(self._run_turn(
            pcm, speech_end_at, self._turn, self._cancel, self._take_early(pcm)),
            name="local-turn")
        self._task.add_done_callback(self._turn_done)

    def _turn_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            error_count(component="session")
            logger.error("session.turn_failed", exc_info=task.exception(),
                         extra={"turn": self._turn})

    async def _run_turn(self, pcm: bytes, speech_end_at: float, turn: int,
                        cancel: threading.Event,
                        early: asyncio.Task[stt.Transcription] | None) -> None:
        try:
            await self._answer_turn(pcm, speech_end_at, turn, cancel, early)
        except TimeoutError:
            # A model slot stayed busy for slots.BUSY_WAIT_S: say so, not silence.
            metrics.BACKPRESSURE.labels(stage="overload").inc()
            await self._apologise(turn, speech_end_at)
        except Exception as exc:
            # A stage failed (STT, the LLM, a TTS engine that said nothing): the caller
            # hears the same apology as for overload, never silence.
            error_count(component="session")
            logger.exception("session.turn_failed",
                             extra={"turn": turn, "error_type": type(exc).__name__})
            if not cancel.is_set():
                await self._apologise(turn, speech_end_at,
                                      engine_failed=isinstance(exc, tts.TtsError))

    async def _apologise(self, turn: int, speech_end_at: float, *,
                         engine_failed: bool = False) -> None:
        text = apology_text(language=self.language)
        failed = self.speech if self.speech is not None and self.speech.turn == turn else None
        if failed is not None and self.history and self.history[-1]["role"] == "user":
            self.history.append({"role": "assistant", "content": text})
        pcm = await apology_audio(text=text, rate=self.call.sample_rate, language=self.language,
                                  turn=self._turn, voice=None if engine_failed else self._engine)
        speech = apology_speech(text=text, pcm=pcm, turn=turn, rate=self.call.sample_rate,
                                speech_end_at=speech_end_at, failed=failed)
        self.speech = speech
        await self.events.put(AgentAudio(speech=speech, pcm=pcm, final=True, text=text))

    async def _answer_turn(self, pcm: bytes, speech_end_at: float, turn: int,
                           cancel: threading.Event,
                           early: asyncio.Task[stt.Transcription] | None) -> None:
        rate = self.call.sample_rate
        try:
            heard = await early if early is not None else await self._transcribe(pcm)
        finally:
            if early is not None and not early.done():
                early.cancel()
        metrics.STT_LATENCY.observe(heard.ms / 1000)
        if not heard.text:
            return
        understood = transcript_understood(heard=heard.text, vocabulary=self.vocabulary,
                                           language=self.language, turn=turn)
        await self.events.put(Transcript(role="caller", text=understood, final=True, turn=turn))
        speech = AgentSpeech(turn=turn, text="", rate=rate, caller_text=understood,
                             caller_text_raw=heard.text, caller_speech_end_at=speech_end_at,
                             timings={"stt_ms": heard.ms})
        self.speech = speech
        engine = await self._engine()
        outcomes = await self._run_tools(await tools_route(
            hook=self.tools, text=understood, language=self.language, turn=turn), speech, engine)
        self.history.append({"role": "user", "content": tool_hooks.with_facts(
            understood, outcomes, language=self.language)})
        schemas = await self.tools.schemas() if self.tools and not outcomes else []
        calls = await self._speak_reply(self._messages(), speech, cancel, engine, schemas)
        if calls and not cancel.is_set():
            # The model asked for tools (instead of answering, or after a clause such as
            # "Let me check."): run them, then let it answer from their results, without
            # tools this time so it cannot loop.
            outcomes = await self._run_tools(tools_capped(calls=calls, turn=turn), speech,
                                             engine)
            self.history[-1]["content"] = tool_hooks.with_facts(
                understood, outcomes, language=self.language)
            messages = self._messages()
            if speech.text.strip():  # the caller heard "Let me check.": go on, not again
                messages.append({"role": "assistant", "content": speech.text.strip()})
            await self._speak_reply(messages, speech, cancel, engine, [])
        await self._finish_reply(speech)

    def _messages(self) -> list[dict[str, Any]]:
        prompt = self.params.prompt(language=self.language,
                                    default=llm_module.system_prompt(language=self.language))
        return [{"role": "system", "content": prompt}, *self.history[-HISTORY_TURNS * 2:]]

    async def _engine(self) -> tts.TtsBackend:
        if self._tts is not None:
            return self._tts
        return await asyncio.to_thread(tts.get_tts, self.language,
                                       voice=self.params.piper_voice,
                                       length_scale=self.params.speaking_rate)

    async def _run_tools(self, calls: list[ToolCall], speech: AgentSpeech,
                         engine: tts.TtsBackend) -> list[tool_hooks.ToolOutcome]:
        # A filler only before anything was said: after "Let me check." it would repeat.
        filler = (partial(self._say, tool_hooks.filler(self.language), speech, engine, [],
                          filler=True)
                  if settings.TOM_FEATURE_FILLERS and self.params.fillers
                  and not speech.audio_bytes else None)
        return await tools_run(hook=self.tools, calls=calls, language=self.language,
                               call_id=self.call_id, speech=speech, say_filler=filler)

    async def _speak_reply(self, messages: list[dict[str, Any]], speech: AgentSpeech,
                           cancel: threading.Event, engine: tts.TtsBackend,
                           schemas: list[dict[str, Any]]) -> list[ToolCall]:
        """Stream one LLM reply into speech; return the tool calls it made as well."""
        model: llm_module.LlmBackend = (self._llm if self._llm is not None
                                        else await asyncio.to_thread(llm_module.get_llm))

        async def say(clause: str, spoken: list[str]) -> None:
            await self._say(clause, speech, engine, spoken)

        return await reply_speak(model=model, messages=messages, schemas=schemas,
                                 cancel=cancel, speech=speech,
                                 max_sentences=self.params.max_sentences, say=say)

    async def _finish_reply(self, speech: AgentSpeech) -> None:
        speech.complete = True
        self.history.append({"role": "assistant", "content": speech.spoken_text})
        out = self._route_audio(speech)
        out.complete = True
        await self.events.put(AgentAudio(speech=out, pcm=b"", final=True))
        await self.events.put(Transcript(role="agent", text=speech.text, final=True,
                                         turn=speech.turn))

    async def _say(self, clause: str, speech: AgentSpeech, engine: tts.TtsBackend,
                   spoken: list[str], *, filler: bool = False) -> None:
        started = time.perf_counter()
        pcm = await run_in_slot(stage="tts", size=settings.TOM_TTS_MAX_CONCURRENCY,
                                fn=tts.speech_synthesize, kwargs={"engine": engine,
                                                                  "text": clause})
        if self._outbound is None or self._outbound[0] is not speech \
                or self._outbound[1].in_rate != engine.rate:
            # One filter for all of a reply's clauses, so they join without a seam.
            self._outbound = (speech, Resampler(engine.rate, speech.rate))
        pcm = self._outbound[1].process(pcm)
        if "tts_first_audio_ms" not in speech.timings:
            speech.timings["tts_first_audio_ms"] = round((time.perf_counter() - started) * 1000)
            metrics.TTS_LATENCY.observe(speech.timings["tts_first_audio_ms"] / 1000)
        speech.clauses.append((clause, speech.audio_ms))
        speech.audio += pcm
        speech.audio_bytes += len(pcm)
        spoken.append(clause)
        if filler:
            speech.filler = clause
        speech.text = " ".join(c for c, _ in speech.clauses)
        out = self._route_audio(speech)
        if out is not speech:  # resumed after a backchannel: the rest goes there
            out.audio += pcm
            out.audio_bytes += len(pcm)
            out.clauses.append((clause, out.audio_ms - len(pcm) / 2 / out.rate * 1000))
            out.text = f"{out.text} {clause}".strip()
        await self.events.put(AgentAudio(speech=out, pcm=pcm, text=clause))

    async def end_of_input(self, *, at: float) -> None:
        pcm = self.segmenter.take()
        if pcm:
            await self._start_turn(pcm, speech_end_at=at)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 30)

    async def aclose(self) -> None:
        early = self._early[1] if self._early is not None else None
        self._take_early(None)
        self._stop_turn()
        for task in (early, self._task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
