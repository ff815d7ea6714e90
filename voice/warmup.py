"""Ready means warm: the web process loads its models and runs one turn through the real
pipeline before it reports ready (``/healthz``, ``tom_run``, systemd's ``READY=1``).

A cold process made its first caller wait for every lazy path: the models loading,
llama.cpp evaluating the system prompt and tools, Whisper's and Piper's first run, ONNX
sessions, resampler filter banks (measured on 2 cores: end of speech to first audio
4.5-6.2 s and barge-in 0.5-2.2 s on the first call, 2.5 s and 17-25 ms from then on).
Here a ``voice.session.local.LocalSession`` with the process's own models hears a
Piper-spoken question, is cut off by a second one mid-reply, and answers that: every
path of a call, the barge-in included, has run once before a caller comes.

The warm-up starts at the server's first event-loop tick (``voice_warm_up_schedule``,
from ``tomsite.asgi``), not from ASGI lifespan, which daphne does not send. It runs on
the server's own loop, so its model work takes the same slots (voice.session.slots) a
call does; models load in worker threads. A call that arrives meanwhile is served: it
waits for the models as it would have without the warm-up, and the warm-up's turn is
cancelled the moment the call's row is created, so the call never waits behind it.
No Call row is written for the warm-up. At the server's start, the warm-up then measures
how many turns at once the models serve within the latency goal (voice.capacity), unless
``TOM_CAPACITY_CALLS`` says so; a call cancels that the same way.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.signals import post_save

from calls.models import Call
from voice import metrics, models, stt, tts
from voice.admission import admission_busy_prepare, admission_capacity_publish
from voice.capacity import capacity_at_start
from voice.dsp.resample import resample
from voice.pipeline.tts_stage import engine_for
from voice.protocols.metadata import CallStart
from voice.session.apology import apology_text
from voice.session.events import (
    AgentAudio,
    EndCall,
    Interruption,
    SpeechResumed,
    Transcript,
)
from voice.session.local import LocalSession
from voice.tools import default_hook

logger = logging.getLogger(__name__)

RATE = 8000  # a telephone line: the rate, resamplers and VAD path most calls take
FRAME = RATE // 50 * 2  # 20 ms of L16, as the fork module sends it
TRAILING_SILENCE_S = 1.0  # ends the caller's turn: longer than any variant's vad_stop_ms
LIMIT_S = 300.0  # a warm-up still running then has failed (a hung model)
QUESTIONS = {"en": ("Hello, what are your opening hours on Saturday?",
                    "Sorry, one more question: do you have brake pads?"),
             "de": ("Hallo, wann haben Sie am Samstag geöffnet?",
                    "Entschuldigung, noch eine Frage: haben Sie Bremsbeläge?")}


class WarmState(enum.StrEnum):
    NONE = "none"  # no server here (a command, a test client): this process takes no calls
    PENDING = "pending"  # scheduled: the server's loop has not run it yet
    WARMING = "warming"
    WARM = "warm"
    FAILED = "failed"  # the process cannot answer calls; the log says why
    OFF = "off"  # TOM_WARM_UP=false: ready at once, not warmed


@dataclass(frozen=True, slots=True)
class WarmStatus:
    state: WarmState
    seconds: float | None = None
    error: str = ""  # the exception's type only: /healthz is public, the log has the rest
    preempted: bool = False  # a call came first and cut the warm-up turn short
    note: str = ""  # why nothing was warmed (the echo session, TOM_WARM_UP=false)

    @property
    def warm(self) -> bool:
        return self.state is WarmState.WARM

    @property
    def ready(self) -> bool:
        """Whether the process may report ready: warm, or not meant to warm up."""
        return self.state in (WarmState.WARM, WarmState.OFF, WarmState.NONE)

    def as_dict(self) -> dict[str, Any]:
        return {"state": str(self.state), "seconds": self.seconds, "error": self.error,
                "preempted": self.preempted, "note": self.note}


class WarmUpFailed(RuntimeError):
    """The warm-up turn did not come back as a reply (no answer, or the apology)."""


Listener = Callable[[WarmStatus], None]
# Only a process that serves (tomsite.asgi scheduled its warm-up) waits to be warm: the
# self-check command reads the web process's readiness through its /healthz instead.
_status = WarmStatus(WarmState.NONE)
_task: asyncio.Task[WarmStatus] | None = None  # owned here: the process's one warm-up


def warm_up_wanted() -> bool:
    """The echo session has nothing to load; ``TOM_WARM_UP=false`` reports ready at once."""
    return bool(settings.TOM_WARM_UP) and settings.TOM_SESSION_BACKEND != "echo"


def warm_status() -> WarmStatus:
    """This process's readiness, as ``/healthz`` reports it."""
    if settings.TOM_SESSION_BACKEND == "echo":
        return WarmStatus(WarmState.WARM, seconds=0.0, note="the echo session loads no models")
    if not settings.TOM_WARM_UP:
        return WarmStatus(WarmState.OFF, note="TOM_WARM_UP=false")
    return _status


def _set(status: WarmStatus, listener: Listener | None) -> WarmStatus:
    global _status
    _status = status
    if listener is not None:
        try:
            listener(status)
        except Exception:  # a listener (sd_notify) must not stop the warm-up
            logger.exception("voice.warm_listener_failed")
    return status


def voice_warm_up_schedule(*, on_change: Listener | None = None) -> bool:
    """Run the warm-up once the web server's event loop runs (called from tomsite.asgi).

    ``on_change`` hears each state (systemd's notify: ``READY=1`` once ready). Returns
    False where no server loop will run (a shell or a test imported the ASGI module).
    """
    def start() -> None:
        global _task
        if _task is None:
            _task = asyncio.get_running_loop().create_task(
                voice_warm_up(on_change=on_change, measure=True), name="voice-warm-up")
            _task.add_done_callback(_warm_up_done)

    try:
        asyncio.get_running_loop().call_soon(start)  # a server that imports inside its loop
    except RuntimeError:
        # daphne installs Twisted's asyncio reactor before it imports the application and
        # runs the loop only in reactor.run(), after its listeners are bound: callLater
        # runs on the loop's first tick (callWhenRunning fires before the loop runs).
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is None:
            return False
        reactor.callLater(0, start)
    if warm_up_wanted():
        _set(WarmStatus(WarmState.PENDING), None)
    return True


def _warm_up_done(task: asyncio.Task[WarmStatus]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("voice.warm_task_failed", exc_info=task.exception())


async def voice_warm_up(*, on_change: Listener | None = None, language: str | None = None,
                        measure: bool = False) -> WarmStatus:
    """Load the models for ``language`` (default ``TOM_LANGUAGE``) and the live policy
    variants, run one turn with a barge-in through ``LocalSession``, and mark the process
    warm. Failures mark it failed (and are logged); nothing is raised. ``measure``: then
    measure the capacity (voice.capacity; the server's start, where it is wanted)."""
    admission_capacity_publish()  # the gauge shows the capacity in force until measured
    if not warm_up_wanted():
        return _set(warm_status(), on_change)
    _set(WarmStatus(WarmState.WARMING), on_change)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    call_came = asyncio.Event()

    def call_created(sender: Any, instance: Call, created: bool, **kwargs: Any) -> None:
        if created:  # in the ORM's thread: hand it to the loop
            loop.call_soon_threadsafe(call_came.set)

    post_save.connect(call_created, sender=Call, weak=False, dispatch_uid="voice-warm-up")
    try:
        extra = await asyncio.wait_for(_warm(language=language or settings.TOM_LANGUAGE,
                                             call_came=call_came, measure=measure), LIMIT_S)
    except Exception as exc:  # any failure leaves the process unready, with the reason
        logger.exception("voice.warm_failed", extra={"error_type": type(exc).__name__})
        return _set(WarmStatus(WarmState.FAILED, error=type(exc).__name__), on_change)
    finally:
        post_save.disconnect(sender=Call, dispatch_uid="voice-warm-up")
    seconds = round(time.perf_counter() - started, 2)
    metrics.WARM_UP_SECONDS.set(seconds)
    logger.info("voice.warm", extra={"seconds": seconds, **extra})
    return _set(WarmStatus(WarmState.WARM, seconds=seconds,
                           preempted=bool(extra["preempted"])), on_change)


async def _warm(*, language: str, call_came: asyncio.Event,
                measure: bool = False) -> dict[str, Any]:
    language = (language or "en").lower()
    call = CallStart(uuid="warm-up", sample_rate=RATE, channels=1, mix_type="mono",
                     encoding="l16", language=language)
    session = LocalSession(call=call, tool_hook=default_hook())
    started = time.perf_counter()
    try:
        await session.prepare()  # the models a call of this language loads, in threads
        # The busy message too, so the first caller over capacity hears it at once.
        admission_busy_prepare()
        engine = await engine_for(language=session.language, voice=session.params.piper_voice,
                                  speaking_rate=session.params.speaking_rate, fixed=None)
        lines = QUESTIONS["de" if session.language.startswith("de") else "en"]
        question, cut_in = [await asyncio.to_thread(_spoken, engine, text) for text in lines]
        load_s = round(time.perf_counter() - started, 2)
        outcome: dict[str, Any] = {"load_s": load_s, "language": session.language,
                                   "preempted": True, "barge_in": False, "variants": 0}
        if call_came.is_set():
            return outcome  # the call loads what it needs; nothing more to run first
        turn = asyncio.ensure_future(_converse(session, question, cut_in))
        came = asyncio.ensure_future(call_came.wait())
        try:
            await asyncio.wait({turn, came}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            came.cancel()
            if not turn.done():
                turn.cancel()  # a caller is here: give the model slots back now
                await asyncio.wait({turn})  # its own cancellation is not raised here
        if turn.cancelled():
            return outcome
        outcome.update(preempted=False, barge_in=turn.result(),
                       turn_s=round(time.perf_counter() - started - load_s, 2))
    finally:
        await session.aclose()
    outcome["variants"] = await _variants_warm(question=question, default=session)
    if measure and (measured := await capacity_at_start(
            question=question, language=session.language, call_came=call_came)) is not None:
        outcome["capacity_calls"] = measured.calls  # None: a call came, the default stays
    return outcome


def _spoken(engine: tts.TtsBackend, text: str) -> bytes:
    """``text`` in the call's voice, at the line's rate, then the silence that ends a turn."""
    pcm = resample(tts.speech_synthesize(engine=engine, text=text), engine.rate, RATE)
    return pcm + bytes(int(RATE * TRAILING_SILENCE_S) * 2)


async def _push(session: LocalSession, pcm: bytes) -> None:
    # Pushed at once rather than at the line's pace (the VAD counts frames, not seconds),
    # each stamped when pushed as the consumer stamps what it receives: stamps ahead of
    # the clock would put the barge-in after the end of the reply's playout.
    loop = asyncio.get_running_loop()
    for offset in range(0, len(pcm) - FRAME + 1, FRAME):
        await session.push_audio(pcm[offset:offset + FRAME], at=loop.time())


async def _converse(session: LocalSession, question: bytes, cut_in: bytes) -> bool:
    """Ask, talk over the first reply, and wait for the answer to that, playing the part
    of the transport (playout reports); True if the reply was cut (barge-in ran)."""
    loop, events = asyncio.get_running_loop(), session.events
    await _push(session, question)
    interrupted, cut_sent, answered_turn = False, False, 2
    while True:
        event = await events.get()
        events.task_done()
        now = loop.time()
        if isinstance(event, Interruption):
            interrupted = True
            speech = event.speech
            speech.playout_finished(played_ms=speech.heard_ms(now), interrupted=True, at=now)
        elif isinstance(event, SpeechResumed):
            answered_turn = 1  # taken for a backchannel: the first reply carries on
        elif isinstance(event, Transcript) and event.role == "agent" and event.final \
                and event.text == apology_text(language=session.language):
            raise WarmUpFailed("the warm-up turn was answered with the apology")
        elif isinstance(event, EndCall):
            raise WarmUpFailed("the session ended the warm-up call")
        elif isinstance(event, AgentAudio):
            speech = event.speech
            if event.pcm and not speech.playout_began:
                speech.playout_started(at=now)
                if not cut_sent:  # the caller talks over the first reply's first audio
                    cut_sent = True
                    await _push(session, cut_in)
            if event.final and speech.playout is None:
                speech.playout_finished(played_ms=speech.audio_ms, interrupted=False, at=now)
                if cut_sent and speech.turn >= answered_turn:
                    return interrupted


async def _variants_warm(*, question: bytes, default: LocalSession) -> int:
    """Load each live policy variant's Whisper and voice (RL on) and run each once:
    cheap next to the default's turn, and a variant's first caller no longer waits."""
    if not settings.TOM_FEATURE_RL:
        return 0
    from channels.db import database_sync_to_async

    from calls import policy, variants

    rows = await database_sync_to_async(policy.live_variants)()
    seen_stt, seen_tts = {default.stt_model}, {("", default.language, 1.0)}
    for row in rows:
        try:
            params = variants.parameters_clean(row.parameters)
        except ValueError:  # pydantic's ValidationError: the admin form refuses these
            continue
        language = (params.language or settings.TOM_LANGUAGE or "en").lower()
        name = models.stt_model_name(language=language, variant=params.stt_model)
        voice = (params.piper_voice, language, params.speaking_rate)
        try:
            if name not in seen_stt:
                seen_stt.add(name)
                whisper = await asyncio.to_thread(stt.get_stt, name)
                await asyncio.to_thread(whisper.transcribe, question, rate=RATE,
                                        language=language)
            if voice not in seen_tts:
                seen_tts.add(voice)
                engine = await engine_for(language=language, voice=params.piper_voice,
                                          speaking_rate=params.speaking_rate, fixed=None)
                await asyncio.to_thread(tts.speech_synthesize, engine=engine, text="Hello.")
        except Exception:  # a variant's missing model is its check's business (voice.E0xx)
            logger.warning("voice.warm_variant_failed", exc_info=True,
                           extra={"variant": row.name})
    return len(rows)
