"""Capacity measured at start: how many turns this process's models serve at once within
the latency goal, so admission (voice.admission) turns callers away at the number this
host really holds, not at a guess per CPU.

After the warm-up turn (voice.warmup), and only where ``TOM_CAPACITY_CALLS`` is unset
and ``TOM_CAPACITY_MEASURE`` is on, k = 1, 2, 4, 6, 8 … simultaneous turns ask the
warm-up's question through ``LocalSession``s with the process's own models and slots (no
Call rows), each timed from the end of the question to its first agent audio, as a
caller hears it. The largest k whose p50 and worst turn stay within the goal's ratios of
the single turn (its median over two, one after the other) is kept; the first k that
misses them ends the measurement, and so does the time budget, so a start takes seconds
longer, not minutes. A call that arrives meanwhile cancels the measurement at once (as it
cancels the warm-up turn) and the process keeps the default capacity.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from voice.admission import admission_capacity_measured, admission_capacity_status
from voice.protocols.metadata import CallStart
from voice.session.apology import apology_text
from voice.session.events import AgentAudio, EndCall
from voice.session.local import LocalSession
from voice.session.slots import stage_semaphore
from voice.tools import default_hook

logger = logging.getLogger(__name__)

# The goal of issue 16: callers asking at once get their first audio at no more than
# 1.8x the single caller's p50 (median) and 3x it at worst. Held per k here, a turn
# of k at once is one a caller would accept; beyond, callers notice that they queue.
P50_RATIO = 1.8
MAX_RATIO = 3.0
# A call is in a turn about half its time (the caller speaks, then listens to the reply;
# model work is end of speech to the reply's last clause, half a call or less), so k
# turns at once serve about twice as many calls (voice.admission.CALLS_PER_CPU agrees).
CALLS_PER_TURN = 2
LADDER = (1, 2, 4, 6, 8, 10, 12, 14, 16)  # 16 at once: far beyond one CPU host's models
BUDGET_S = 15.0  # the measurement's share of a start (2 cores, real models: k=1, 2, 4)
# The single turn is the base of every ratio, and its reply's first clause varies (the
# model samples: "Good morning!" or a whole sentence, 1.5 or 2.8 s on 2 cores): its
# median over two turns, not one draw.
BASE_TURNS = 2
FIRST_ROUND_LIMIT_S = 10.0  # one turn alone takes 1-3 s warm; longer means a hung model
# A round waits MAX_RATIO x the single turn's p50 (a turn later than that fails the goal
# anyway), plus this for the frames' way through VAD and the first clause's hand-off.
ROUND_SLACK_S = 0.5
# A cut round's Whisper runs to its end (a thread cannot be stopped): waited for, past the
# budget by this much at most, so a caller after the measurement finds the models idle.
DRAIN_GRACE_S = 2.0
RATE = 8000  # a telephone line, as the warm-up's question
FRAME = RATE // 50 * 2  # 20 ms of L16


@dataclass(frozen=True, slots=True)
class Round:
    """k turns at once: their end of question → first agent audio, median and worst."""

    k: int
    p50_s: float
    max_s: float  # math.inf: a turn unanswered (or apologised) within the round's limit

    @classmethod
    def of(cls, k: int, latencies: Sequence[float]) -> Round:
        return cls(k=k, p50_s=statistics.median(latencies), max_s=max(latencies))

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "p50_ms": _ms(self.p50_s), "max_ms": _ms(self.max_s)}


@dataclass(frozen=True, slots=True)
class Measurement:
    calls: int | None  # None: not measured, the default capacity stays
    turns: int  # the k kept (0: none)
    rounds: tuple[Round, ...]
    stopped: str  # missed (a k missed the goal), cap, budget, call, unanswered, error
    seconds: float


def capacity_select(rounds: Sequence[Round]) -> int:
    """The largest k served within the goal: rounds in rising k, the first with k = 1 as
    the base; the first round that misses the goal ends the search. 0 without a base
    (no k = 1 round, or its turn unanswered)."""
    if not rounds or rounds[0].k != 1 or not math.isfinite(rounds[0].max_s):
        return 0
    base, best = rounds[0].p50_s, 1
    for figures in rounds[1:]:
        if figures.p50_s > P50_RATIO * base or figures.max_s > MAX_RATIO * base:
            break
        best = figures.k
    return best


def capacity_measure_wanted() -> bool:
    """Measure at start: not configured, wanted, and a session with models to measure."""
    return (settings.TOM_CAPACITY_CALLS is None and bool(settings.TOM_CAPACITY_MEASURE)
            and settings.TOM_SESSION_BACKEND != "echo")


def turns_cap() -> int:
    """The most turns at once worth trying: the hard cap's calls, 16 at most."""
    return max(1, min(LADDER[-1], settings.TOM_MAX_CONCURRENT_CALLS // CALLS_PER_TURN))


async def capacity_at_start(*, question: bytes, language: str,
                            call_came: asyncio.Event) -> Measurement | None:
    """Measure (when wanted) and hand the result to admission; a call that comes first
    (``call_came`` set) cancels the measurement at once. Never raises but cancellation;
    None when not wanted."""
    if not capacity_measure_wanted():
        return None
    started = time.perf_counter()
    rounds: list[Round] = []  # what was measured, kept when a call cuts the rest
    measuring = asyncio.ensure_future(capacity_measure(question=question, language=language,
                                                       rounds=rounds))
    came = asyncio.ensure_future(call_came.wait())
    try:
        await asyncio.wait({measuring, came}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        came.cancel()
        if not measuring.done():
            measuring.cancel()  # a caller is here: the models are theirs now
            await asyncio.wait({measuring})
    seconds = round(time.perf_counter() - started, 2)
    if measuring.cancelled():
        result = Measurement(None, 0, tuple(rounds), "call", seconds)
    elif (error := measuring.exception()) is not None:
        logger.error("voice.capacity_measure_failed", exc_info=error)
        result = Measurement(None, 0, tuple(rounds), "error", seconds)
    else:
        result = measuring.result()
    if result.calls is not None:
        admission_capacity_measured(calls=result.calls,
                                    turn_p50_ms=_ms(result.rounds[0].p50_s))
    status = admission_capacity_status()
    logger.info("voice.capacity_measured" if result.calls is not None
                else "voice.capacity_unmeasured",
                extra={"calls": status.calls, "source": status.source, "turns": result.turns,
                       "stopped": result.stopped, "seconds": result.seconds,
                       "rounds": [r.as_dict() for r in result.rounds]})
    return result


async def capacity_measure(*, question: bytes, language: str,
                           rounds: list[Round] | None = None,
                           budget_s: float | None = None) -> Measurement:
    """k = 1, 2, 4 … turns of ``question`` (L16 at 8 kHz, ending in silence) at once,
    until a k misses the goal, the cap or ``budget_s`` (default ``BUDGET_S``); ``rounds``
    gets each round."""
    rounds = [] if rounds is None else rounds
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + (BUDGET_S if budget_s is None else budget_s)
    stopped = "cap"
    for k in [k for k in LADDER if k <= turns_cap()]:
        limit = (FIRST_ROUND_LIMIT_S if not rounds
                 else MAX_RATIO * rounds[0].p50_s + ROUND_SLACK_S)
        remaining = deadline - loop.time()
        if rounds and remaining < P50_RATIO * rounds[0].p50_s:
            stopped = "budget"  # too little time left to learn anything from this k
            break
        figures = await (_base if k == 1 else _round)(
            k=k, question=question, language=language, limit=min(limit, max(remaining, 0.0)))
        verdict = ""
        if remaining < limit and not math.isfinite(figures.max_s):
            verdict = "budget"  # cut by the budget, not by the goal: no verdict on k
        else:
            rounds.append(figures)
            if capacity_select(rounds) != k:
                verdict = "missed" if k > 1 else "unanswered"
        # The next round, or the first caller once ready, finds the models idle.
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.0) + DRAIN_GRACE_S):
                await _slots_free()
        except TimeoutError:
            verdict = verdict or "budget"  # the round's model threads still run
        if verdict:
            stopped = verdict
            break
    turns = capacity_select(rounds)
    calls = min(turns * CALLS_PER_TURN, settings.TOM_MAX_CONCURRENT_CALLS) if turns else None
    return Measurement(calls, turns, tuple(rounds), stopped,
                       round(loop.time() - started, 2))


async def _base(*, k: int, question: bytes, language: str, limit: float) -> Round:
    """The single turn, BASE_TURNS times one after the other (each within ``limit``)."""
    latencies: list[float] = []
    for _ in range(BASE_TURNS):
        latencies.append((await _round(k=k, question=question, language=language,
                                       limit=limit)).max_s)
        if not math.isfinite(latencies[-1]):
            break  # unanswered: no base, whatever a second turn would say
        await _slots_free()
    return Round.of(k, latencies)


async def _round(*, k: int, question: bytes, language: str, limit: float) -> Round:
    """k sessions ask at once; each turn's latency, math.inf if unanswered in ``limit``."""
    sessions = [LocalSession(call=CallStart(uuid=f"capacity-{k}-{i}", sample_rate=RATE,
                                            channels=1, mix_type="mono", encoding="l16",
                                            language=language), tool_hook=default_hook())
                for i in range(k)]
    answers: list[asyncio.Future[float]] = []
    try:
        # The models are loaded (the warm-up): this only builds each call's vocabulary.
        await asyncio.gather(*(session.prepare() for session in sessions))
        answers = [asyncio.ensure_future(_first_audio(session)) for session in sessions]
        await asyncio.gather(*(_push(session, question) for session in sessions))
        await asyncio.wait(answers, timeout=limit)
        return Round.of(k, [answer.result() if answer.done() else math.inf
                            for answer in answers])
    finally:
        for answer in answers:
            answer.cancel()
        # Stops each reply at its next token: the next round finds the models idle.
        await asyncio.gather(*(session.aclose() for session in sessions),
                             return_exceptions=True)


async def _push(session: LocalSession, pcm: bytes) -> None:
    # At once, each frame stamped when pushed, as the warm-up does: the VAD counts frames,
    # so the turn ends when the last silence is in, and the clock starts at its speech end.
    loop = asyncio.get_running_loop()
    for offset in range(0, len(pcm) - FRAME + 1, FRAME):
        await session.push_audio(pcm[offset:offset + FRAME], at=loop.time())


async def _first_audio(session: LocalSession) -> float:
    """Seconds from the caller's end of speech to the reply's first audio, as a caller
    (and bench/capacity.py) counts them: the VAD's end-of-turn silence included. math.inf
    for the apology or an ended session (a turn that failed is not served)."""
    loop, events = asyncio.get_running_loop(), session.events
    apology = apology_text(language=session.language)
    while True:
        event = await events.get()
        events.task_done()
        if isinstance(event, EndCall):
            return math.inf
        if isinstance(event, AgentAudio) and event.pcm:
            speech = event.speech
            if speech.text == apology or speech.caller_speech_end_at is None:
                return math.inf
            return loop.time() - speech.caller_speech_end_at


async def _slots_free() -> None:
    """Return once no model thread holds a slot: a cancelled turn's STT runs to its end,
    and the next round must not queue behind it."""
    held: list[asyncio.Semaphore] = []
    try:
        for stage, size in (("stt", settings.TOM_STT_MAX_CONCURRENCY),
                            ("llm", settings.TOM_LLM_MAX_CONCURRENCY),
                            ("tts", settings.TOM_TTS_MAX_CONCURRENCY)):
            semaphore = stage_semaphore(stage=stage, size=size)
            for _ in range(size):
                await semaphore.acquire()
                held.append(semaphore)
    finally:
        for semaphore in held:
            semaphore.release()


def _ms(seconds: float) -> int | None:
    return round(seconds * 1000) if math.isfinite(seconds) else None
