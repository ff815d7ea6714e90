"""Admission by capacity: how many calls this process serves within the latency goal, and
what a caller beyond that hears.

Each fork connection takes a place at its handshake, in one of three bands:

- up to the capacity (``TOM_CAPACITY_CALLS``, else measured at start by voice.capacity,
  else two per CPU: :func:`admission_capacity`): served;
- from there to the hard cap (``TOM_MAX_CONCURRENT_CALLS``): accepted, its Call row
  written, and the busy message played (a policy variant's ``busy_message``, else the
  language's default) through the connection's own transport, as a reply would go; once
  the transport reports it heard out, the consumer disconnects with reason ``busy`` and
  the call ends ``busy``. A refused handshake makes FreeSWITCH play nothing: the caller
  would hear silence, then the line drop;
- beyond the hard cap: refused at the handshake (HTTP 403), as before: that many
  connections at once are a flood, not callers.

The busy message is synthesized once per (TTS backend, language, voice, speaking rate,
text) and kept, so a busy moment costs no TTS time when it comes; the first call served
synthesizes the default one in the background. When the call's voice fails, espeak-ng
speaks it (voice.session.apology does the same for a turn's apology).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from calls.models import Call
from calls.variants import VariantParameters, defaults
from tomsite.metrics import error_count
from voice import metrics, tts
from voice.call_lifecycle import call_lifecycle_variant
from voice.dsp.resample import resample
from voice.protocols.adapters import ForkProtocol, MarkAnswer
from voice.protocols.metadata import CallStart
from voice.session.events import AgentSpeech
from voice.transport import Outbound, Send

logger = logging.getLogger(__name__)

# The default capacity with the models in this process: two calls per CPU. Measured on
# 2 cores with the real models (issue 16), two callers asking at the same moment got their
# first audio at 1.46x the single caller's p50, inside the goal (1.8x), and four at 2.4x,
# outside it: one turn at a time per core holds the goal. A call is not in a turn all the
# time (the caller speaks, then listens to the answer; model work is end of speech to the
# reply's last clause, half a call's time or less), so two calls a core rarely have their
# turns at once. Hosts that measured more (a GPU, llama-server's parallel slots) set
# TOM_CAPACITY_CALLS from bench/capacity.py. Unset, a warming process measures its own
# at start (voice.capacity, TOM_CAPACITY_MEASURE); this is the capacity until then, and
# after a measurement that a call cut short.
CALLS_PER_CPU = 2
CACHE_SIZE = 32  # busy messages kept: one per language and variant that set its own

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]
_Key = tuple[str, str, str, float, str]  # TTS backend, language, voice, speed, text

_connections = 0  # places taken, busy ones included (the hard cap counts them)
_served = 0  # places taken by calls being served (the capacity counts them)
_lock = threading.Lock()  # the caches below are filled from worker threads
_key_locks: dict[_Key, threading.Lock] = {}
_spoken: OrderedDict[_Key, tuple[bytes, int]] = OrderedDict()  # engine PCM, its rate
_at_rate: OrderedDict[tuple[_Key, int], bytes] = OrderedDict()  # resampled for a call
_prepared: threading.Thread | None = None  # the default's synthesis, started once


@dataclass(eq=False)
class Slot:
    """One connection's place: ``busy`` over capacity; ``held`` until released."""

    busy: bool
    held: bool = True


@dataclass(frozen=True, slots=True)
class Capacity:
    """The capacity in force and where it comes from (``/healthz``, the gauge)."""

    calls: int  # 0: every connection under the hard cap is served
    source: str  # configured (TOM_CAPACITY_CALLS), measured (at start), default
    turn_p50_ms: int | None = None  # measured: one turn alone, end of speech → first audio

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "source": self.source, "turn_p50_ms": self.turn_p50_ms}


_measured: Capacity | None = None  # set once the measurement at start (voice.capacity) ends


def admission_capacity() -> int:
    """Calls this process serves at once within the latency goal; 0: every connection
    under the hard cap is served."""
    return admission_capacity_status().calls


def admission_capacity_status() -> Capacity:
    """Configured wins; then the capacity measured at start; else two calls per CPU."""
    configured = settings.TOM_CAPACITY_CALLS
    if configured is not None:
        return Capacity(max(0, configured), "configured")
    if settings.TOM_SESSION_BACKEND == "echo":  # no model work: only the bridge's limits
        return Capacity(0, "default")
    if _measured is not None:
        return _measured
    return Capacity(CALLS_PER_CPU * _cpus(), "default")


def admission_capacity_measured(*, calls: int | None, turn_p50_ms: int | None = None) -> None:
    """The capacity measured at start (None: forget it, the default again)."""
    global _measured
    _measured = None if calls is None else Capacity(calls, "measured", turn_p50_ms)
    admission_capacity_publish()


def admission_capacity_publish() -> Capacity:
    """Set the ``tom_capacity_calls`` gauge: one series, labelled with its source."""
    status = admission_capacity_status()
    metrics.CAPACITY_CALLS.clear()
    metrics.CAPACITY_CALLS.labels(source=status.source).set(status.calls)
    return status


def _cpus() -> int:
    # The CPUs this process may run on (a systemd CPUAffinity or taskset), not the host's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def admission_reserve() -> Slot | None:
    """A place for a new connection, or None over the hard cap.

    Taken at once, in the event loop, before the handshake's first await: checked then
    counted after it, two handshakes arriving together could both pass the check.
    """
    global _connections, _served
    if _connections >= settings.TOM_MAX_CONCURRENT_CALLS:
        return None
    capacity = admission_capacity()
    busy = 0 < capacity <= _served
    _connections += 1
    if not busy:
        _served += 1
    metrics.ACTIVE_CALLS.inc()
    if not busy and 0 < capacity < settings.TOM_MAX_CONCURRENT_CALLS:
        admission_busy_prepare()  # a busy band exists: have its message ready
    return Slot(busy=busy)


def admission_release(*, slot: Slot) -> bool:
    """Give ``slot``'s place back; False when it was already given back."""
    global _connections, _served
    if not slot.held:
        return False
    slot.held = False
    _connections -= 1
    if not slot.busy:
        _served -= 1
    metrics.ACTIVE_CALLS.dec()
    return True


def admission_counts() -> tuple[int, int]:
    """(connections, calls served) in this process."""
    return _connections, _served


def admission_busy_prepare() -> None:
    """Synthesize the default busy message in a thread of its own, once per process,
    so the first caller over capacity hears it without waiting for TTS."""
    global _prepared
    with _lock:
        if _prepared is not None:
            return
        params = defaults()
        language = (settings.TOM_LANGUAGE or "en").lower()
        _prepared = threading.Thread(target=_prepare, name="busy-prepare", daemon=True, kwargs={
            "text": params.busy_text(language=language), "language": language,
            "length_scale": params.speaking_rate})
    _prepared.start()


def _prepare(*, text: str, language: str, length_scale: float) -> None:
    try:
        _synthesized(text=text, language=language, voice="", length_scale=length_scale)
    except Exception:  # a thread's failure is logged here or nowhere; a busy call retries
        logger.exception("admission.busy_prepare_failed", extra={"language": language})


async def admission_busy_audio(*, text: str, language: str, voice: str, length_scale: float,
                               rate: int) -> bytes:
    """The busy message as L16 at ``rate``: from the cache, else synthesized (the call's
    voice, espeak-ng when that fails) and kept. Raises ``tts.TtsError`` when no engine
    can speak it."""
    return await asyncio.to_thread(_at_call_rate, text=text, language=language, voice=voice,
                                   length_scale=length_scale, rate=rate)


def _at_call_rate(*, text: str, language: str, voice: str, length_scale: float,
                  rate: int) -> bytes:
    key = _key(text=text, language=language, voice=voice, length_scale=length_scale)
    with _lock:
        if (pcm := _at_rate.get((key, rate))) is not None:
            return pcm
    spoken, source_rate = _synthesized(text=text, language=language, voice=voice,
                                       length_scale=length_scale)
    pcm = resample(spoken, source_rate, rate)
    with _lock:
        _keep(_at_rate, (key, rate), pcm)
    return pcm


def _key(*, text: str, language: str, voice: str, length_scale: float) -> _Key:
    return (settings.TOM_TTS_BACKEND, language, voice, length_scale, text)


def _synthesized(*, text: str, language: str, voice: str,
                 length_scale: float) -> tuple[bytes, int]:
    key = _key(text=text, language=language, voice=voice, length_scale=length_scale)
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    # One synthesis per key: a busy call that comes while the default is being prepared
    # waits for that one instead of running the engine a second time.
    with key_lock:
        with _lock:
            if (hit := _spoken.get(key)) is not None:
                return hit
        spoken = _synthesize(text=text, language=language, voice=voice,
                             length_scale=length_scale)
        with _lock:
            _keep(_spoken, key, spoken)
        return spoken


def _synthesize(*, text: str, language: str, voice: str,
                length_scale: float) -> tuple[bytes, int]:
    try:
        engine = tts.get_tts(language, voice=voice, length_scale=length_scale)
        return tts.speech_synthesize(engine=engine, text=text), engine.rate
    except Exception:  # whatever broke the call's voice (a missing file, ONNX): espeak-ng
        logger.warning("admission.busy_engine_failed", exc_info=True,
                       extra={"language": language})
    engine = tts.fallback_tts(language)
    return tts.speech_synthesize(engine=engine, text=text), engine.rate


def _keep(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > CACHE_SIZE:  # variants come and go; a long-lived process stays small
        cache.popitem(last=False)


def admission_cache_clear() -> None:
    """Forget every busy message (tests; a changed voice is otherwise kept until restart)."""
    global _prepared
    with _lock:
        _spoken.clear()
        _at_rate.clear()
        _key_locks.clear()
        _prepared = None


class BusyLine:
    """One caller over capacity: the busy message through the connection's transport,
    played out before the consumer disconnects the line."""

    def __init__(self, *, call: Call, start: CallStart, protocol: ForkProtocol, send: Send,
                 spawn: Spawn) -> None:
        self.call, self.start, self.protocol = call, start, protocol
        self._send, self._spawn = send, spawn
        self.out: Outbound | None = None
        self.speech: AgentSpeech | None = None

    def mark_answered(self, answer: MarkAnswer) -> None:
        """The module says the message was heard out, or cleared (jambonz marks)."""
        if self.out is not None:
            self.out.mark_answered(name=answer.name, event=answer.event)

    async def play(self) -> None:
        """Say the busy message; return once its transport reports it played (or cut)."""
        metrics.CALLS_BUSY.inc()
        logger.info("fork.busy", extra={"call_id": self.call.pk,
                                        "capacity": admission_capacity()})
        params: VariantParameters = await call_lifecycle_variant(call=self.call) or defaults()
        language = (params.language or self.start.language or settings.TOM_LANGUAGE
                    or "en").lower()
        text, rate = params.busy_text(language=language), self.start.sample_rate
        try:
            pcm = await admission_busy_audio(text=text, language=language,
                                             voice=params.piper_voice,
                                             length_scale=params.speaking_rate, rate=rate)
        except tts.TtsError:
            error_count(component="fork")
            logger.exception("fork.busy_unspoken", extra={"call_id": self.call.pk})
            return
        self.speech = speech = AgentSpeech(turn=0, text=text, rate=rate)
        speech.clauses.append((text, 0.0))
        speech.audio_bytes, speech.complete = len(pcm), True
        self.out = out = self.protocol.transport(send=self._send, rate=rate)
        if (pacing := out.run()) is not None:
            self._spawn(pacing, "busy-pacer")
        try:
            await out.audio(speech, pcm, text=text, final=True)
            await speech.wait_for_playout()
        finally:
            if speech.playout is None:  # the caller hung up first: its timers end here
                out.close()
