"""Checks that call TOM the way a caller does: one synthetic call per run, shared.

The call asks a parts question, interrupts the answer with a second question, and
listens to the reply. The latency checks read the call's turns as TOM recorded them,
barge-in is timed on the client's clock, and audio quality judges what the caller
received, intelligibility included (Whisper on the agent's own speech).
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from calls.models import Call, CallTurn
from greenlights.checks.base import Outcome, RunContext, check, grade, thresholds
from greenlights.models import State

QUESTION = "Hello, do you have brake pads for a VW Golf 7?"
INTERRUPTION = "Sorry, when are you open on Saturday?"
RATE = 8000
PROBE_TIMEOUT_S = 60.0


@dataclass
class ProbeCall:
    report: Any  # voice.client.CallReport
    call: Call | None
    turns: list[CallTurn]
    interruption_onset: float


def _speech_onset_s(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    window = RATE // 100
    for start in range(0, len(samples) - window, window):
        chunk = samples[start:start + window]
        if math.sqrt(float(np.mean(chunk * chunk))) > 32768 * 0.01:  # -40 dBFS
            return start / RATE
    return 0.0


def place_probe_call(ctx: RunContext) -> ProbeCall:
    """Speak the question and the interruption (Piper, 8 kHz μ-law) through /ws/fork/."""
    from voice import tts
    from voice.auth import fork_token_mint
    from voice.client import ForkClient, Segment
    from voice.dsp import g711
    from voice.dsp.resample import resample

    engine = tts.caller_voice()

    def line(text: str) -> bytes:
        return g711.ulaw_decode(g711.ulaw_encode(resample(engine.synthesize(text),
                                                          engine.rate, RATE)))

    question, interruption = line(QUESTION), line(INTERRUPTION)
    call_uuid = f"greenlight-{uuid.uuid4()}"
    client = ForkClient(
        url=f"{ctx.ws_url}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
        metadata={"uuid": call_uuid, "sampleRate": RATE, "language": "en",
                  "direction": "inbound", "tomSynthetic": True},
        rate=RATE, segments=[Segment(question, pause_s=0.0),
                             Segment(interruption, pause_s=9.0, over_reply_s=0.6)])
    report = asyncio.run(asyncio.wait_for(client.run(), PROBE_TIMEOUT_S))
    if report.errors:
        raise RuntimeError("; ".join(report.errors))
    call = Call.objects.filter(uuid=call_uuid).first()
    turns = list(call.turns.order_by("index")) if call else []
    onset = report.segment_starts[1] + _speech_onset_s(interruption) \
        if len(report.segment_starts) > 1 else math.nan
    return ProbeCall(report=report, call=call, turns=turns, interruption_onset=onset)


def _stage(ctx: RunContext, name: str, field: str) -> Outcome:
    probe: ProbeCall = ctx.call_probe()
    values = [getattr(t, field) for t in probe.turns if getattr(t, field) is not None]
    worst = max(values) if values else None
    green, yellow = thresholds(name)
    return Outcome(state=grade(name, worst),
                   summary=f"{field}: {worst} ms (green ≤ {green:g}, red > {yellow:g})"
                   if worst is not None else f"no turn recorded {field}",
                   values={field: values, "worst_ms": worst}, call_id=_call_id(probe))


def _call_id(probe: ProbeCall) -> int | None:
    return probe.call.pk if probe.call else None


@check(name="stt_latency", category="latency", timeout_s=90)
def stt_latency(ctx: RunContext) -> Outcome:
    return _stage(ctx, "stt_latency", "stt_ms")


@check(name="llm_latency", category="latency", timeout_s=90)
def llm_latency(ctx: RunContext) -> Outcome:
    return _stage(ctx, "llm_latency", "llm_first_token_ms")


@check(name="tts_latency", category="latency", timeout_s=90)
def tts_latency(ctx: RunContext) -> Outcome:
    return _stage(ctx, "tts_latency", "tts_first_audio_ms")


@check(name="e2e_latency", category="latency", timeout_s=90)
def e2e_latency(ctx: RunContext) -> Outcome:
    probe: ProbeCall = ctx.call_probe()
    client_ms = [round(v * 1000) for v in probe.report.turn_latencies() if v is not None]
    server_ms = [t.e2e_ms for t in probe.turns if t.e2e_ms is not None]
    first = client_ms[0] if client_ms else None
    return Outcome(state=grade("e2e_latency", first),
                   summary=f"end of speech to first agent audio: {first} ms (caller's clock)",
                   values={"client_ms": client_ms, "server_ms": server_ms},
                   call_id=_call_id(probe))


@check(name="barge_in", category="latency", timeout_s=90)
def barge_in(ctx: RunContext) -> Outcome:
    probe: ProbeCall = ctx.call_probe()
    onset = probe.interruption_onset
    kills = [k for k in probe.report.kills if k >= onset - 0.05]
    if not kills:
        return Outcome(state=State.RED, summary="no killAudio after the caller interrupted",
                       values={"kills": probe.report.kills}, call_id=_call_id(probe))
    ms = round((kills[0] - onset) * 1000)
    return Outcome(state=grade("barge_in", ms),
                   summary=f"killAudio {ms} ms after the interruption's speech onset",
                   values={"barge_in_ms": ms}, call_id=_call_id(probe))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _wer(reference: str, hypothesis: str) -> float:
    from voice.wer import word_error_rate

    return word_error_rate(_words(reference), _words(hypothesis))


@check(name="audio_quality", category="audio", timeout_s=120)
def audio_quality(ctx: RunContext) -> Outcome:
    """The reply to the interruption as the caller received it."""
    from voice import stt

    probe: ProbeCall = ctx.call_probe()
    report = probe.report
    after = report.segment_ends[-1] if report.segment_ends else 0.0
    played = [p for p in report.playbacks if p.start >= after]
    pcm = b"".join(p.pcm for p in played)
    if not pcm or len(probe.turns) < 2:
        return Outcome(state=State.RED, summary="the caller heard no reply to the second "
                       "question", values={"playbacks": len(played)}, call_id=_call_id(probe))
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = math.sqrt(float(np.mean(samples * samples)))
    level = 20 * math.log10(rms / 32768) if rms else -120.0
    clipping = float(np.mean(np.abs(samples) >= 32767 * 0.99))
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    silent = float(np.mean(np.sqrt(np.mean(frames * frames, axis=1)) < 32768 * 10 ** (-50 / 20)))
    rates = sorted({p.rate for p in played})
    meant = probe.turns[-1].agent_text
    heard = stt.get_stt().transcribe(pcm, rate=rates[0], language="en").text
    wer = _wer(meant, heard)
    values = {"level_dbfs": round(level, 1), "clipping_ratio": round(clipping, 4),
              "silence_ratio": round(silent, 3), "sample_rates": rates,
              "wer": round(wer, 3), "meant": meant, "heard": heard}
    state = grade("audio_quality_wer", wer)
    problems = []
    if level < -35 or level > -3:
        problems.append(f"level {level:.0f} dBFS")
    if clipping > 0.001:
        problems.append(f"{clipping:.1%} clipped")
    if rates != [RATE]:
        problems.append(f"sample rate {rates}")
    if problems:
        state = State.RED
    return Outcome(state=state, summary=", ".join(problems) or
                   f"WER {wer:.0%} of Whisper on the agent's speech, {level:.0f} dBFS",
                   values=values, call_id=_call_id(probe))
