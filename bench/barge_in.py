"""Barge-in and turn records with real models: scripted calls through one daphne process.

Each call asks a question (Piper-made audio over an 8 kHz mu-law line) and, while the
agent answers, talks over it: a real sentence (a barge-in: the agent must stop and answer
that), a backchannel ("mhm", "okay", cut to less loud speech than
TOM_BARGE_IN_MIN_SPEECH_MS: the agent goes quiet and must resume the same reply), or, in
one script, a barge-in followed by a second question once the answer has played. The
caller reacts to what it hears: it talks over a reply ``--delay-s`` after that reply's
audio starts, and asks the next question once the agent has been quiet for a while.
Calls alternate between jambonz ``?mode=stream`` and drachtio ``?mode=file``.

Prints barge-in latency (the interrupting speech's onset, i.e. its first loud 20 ms, to
killAudio, on the client's clock) as n, p50, p95, max; then, per call, the agent replies
the caller heard against the CallTurn rows the server wrote (read from the embedded
SQLite after the server stopped), and one verdict line.
Run: .venv/bin/python bench/barge_in.py [--interruptions 20] [--repo PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import sys
import tempfile
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import REPO, embedded_env, models_shared, start_server, use_repo

if TYPE_CHECKING:  # imported at run time only once the measured tree is on sys.path
    from _scripted_caller import Step

QUESTIONS = [
    "Hello, what are your opening hours on Saturday?",
    "Do you have brake pads for a Volkswagen Golf?",
    "How much does an oil filter cost?",
    "Can I pick up my order tomorrow morning?",
    "Do you deliver to Hamburg?",
]
BARGES = [  # short, so more of them fit in a run
    "Sorry, one more question.",
    "Wait, do you sell wiper blades?",
    "Hold on, what about winter tyres?",
    "Is there parking near the shop?",
    "And what do spark plugs cost?",
]
BACKCHANNELS = ["Mhm.", "Okay."]
# Script letters: q question (after the agent went quiet), b barge-in, k backchannel.
SCRIPTS = {"backchannels": "qkk", "mixed": "qkb", "second-question": "qbq", "barges": "qbbbbb"}
# Every script once, the modes crossed, then barge-in calls until --interruptions are met.
COVERAGE = [("backchannels", "stream"), ("mixed", "file"), ("second-question", "stream"),
            ("backchannels", "file")]
RATE, FRAME = 8000, 320  # 20 ms of 8 kHz L16, as _scripted_caller sends them
LOUD_DBFS = -45.0  # TOM_BARGE_IN_MIN_DBFS's default: what counts as loud speech


def frame_dbfs(pcm: bytes) -> np.ndarray:
    usable = len(pcm) // FRAME * FRAME
    x = np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64).reshape(-1, FRAME // 2)
    rms = np.sqrt(np.mean(x * x, axis=1)) + 1e-9
    return 20 * np.log10(rms / 32768)


def trim(pcm: bytes, *, keep_ms: int | None = None) -> bytes:
    """From the first loud frame to the last (so a segment's start is its speech onset);
    ``keep_ms`` cuts it shorter, with a 10 ms fade so the cut is not a click."""
    loud = np.flatnonzero(frame_dbfs(pcm) >= LOUD_DBFS)
    if not len(loud):
        return pcm
    x = np.frombuffer(pcm, dtype="<i2")[loud[0] * FRAME // 2:(loud[-1] + 1) * FRAME // 2]
    if keep_ms is not None:
        x = x[: RATE * keep_ms // 1000].astype(np.float64)
        fade = min(len(x), RATE // 100)
        x[len(x) - fade:] *= np.linspace(1.0, 0.0, fade)
    return np.asarray(x).astype("<i2").tobytes()


def caller_audio(text: str, cache: Path) -> bytes:
    """Piper's voice for ``text`` at 8 kHz through mu-law, cached so every tree hears the same."""
    path = cache / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"
    if not path.exists():
        from voice import tts
        from voice.dsp import g711
        from voice.dsp.resample import resample

        engine = tts.caller_voice()
        pcm = g711.ulaw_decode(g711.ulaw_encode(resample(engine.synthesize(text),
                                                         engine.rate, RATE)))
        cache.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(pcm)
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


@dataclass
class CallResult:
    script: str
    mode: str
    uuid: str
    steps: list[Step]
    replies: int = 0
    turns: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def analyse(result: CallResult, caller: Any) -> None:
    """Barge-in latency per step and the replies the caller heard (one per caller turn:
    the agent audio that began between the end of one non-backchannel utterance and the
    next; a resumed reply stays one reply)."""
    kills, heard = caller.report.kills, caller.heard()
    sent = [s for s in result.steps if s.onset is not None and s.end is not None]
    for index, step in enumerate(sent):
        onset, end = step.onset or 0.0, step.end or 0.0
        following = next((s.onset or 0.0 for s in sent[index + 1:]), float("inf"))
        killed = [k for k in kills if onset <= k <= end + 1.0]
        step.kill_ms = (killed[0] - onset) * 1000 if killed else None
        if step.kind == "backchannel":
            step.resumed = any(end <= p.start < following for p in heard)
    bounds = [0.0, *[s.end or 0.0 for s in sent if s.kind != "backchannel"], float("inf")]
    result.replies = sum(any(lo <= p.start < hi for p in heard)
                         for lo, hi in itertools.pairwise(bounds))


def timeline(result: CallResult, caller: Any) -> None:
    """The call on one clock, to stderr: what the caller said, heard, and when audio was cut."""
    spans: list[list[float]] = []
    for p in sorted(caller.heard(), key=lambda p: p.start):
        if spans and p.start - spans[-1][1] < 0.1:
            spans[-1][1] = max(spans[-1][1], p.end)
        else:
            spans.append([p.start, p.end])
    events = [(s.onset, f"caller {s.kind} {s.onset:.2f}-{s.end:.2f}"
               + (" (talked over nothing)" if s.skipped else ""))
              for s in result.steps if s.onset is not None and s.end is not None]
    events += [(a, f"agent audio {a:.2f}-{b:.2f}") for a, b in spans]
    events += [(k, f"killAudio {k:.2f}") for k in caller.report.kills]
    print(f"  {result.script} {result.mode} {result.uuid}", file=sys.stderr)
    for _, text in sorted(events):
        print(f"    {text}", file=sys.stderr)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)  # nearest rank, as voice_latency.py
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interruptions", type=int, default=20,
                        help="barge-ins to measure (calls are added until this many)")
    parser.add_argument("--modes", default="stream,file", help="fork modes to alternate")
    parser.add_argument("--delay-s", type=float, default=0.1,
                        help="talk over a reply this long after its audio starts")
    parser.add_argument("--backchannel-ms", type=int, default=140,
                        help="loud speech kept of a backchannel (below the barge-in minimum)")
    parser.add_argument("--stt-model", default="base")
    parser.add_argument("--vad-stop-ms", type=int, default=450)
    parser.add_argument("--budget-s", type=float, default=300,
                        help="start no new call after this many seconds of calls")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TOM_DATA_DIR")
                                     or Path(tempfile.gettempdir()) / "tom-data-bench"),
                        help="holds the caller audio and a folder a run (models: TOM_BENCH_MODELS)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the TOM source tree to run (default: this one)")
    parser.add_argument("--calls", default="",
                        help="script:mode,... to place first instead of every script once "
                             f"(scripts: {', '.join(SCRIPTS)})")
    parser.add_argument("--verbose", action="store_true", help="each call's timeline")
    return parser.parse_args()


def _place_call(*, port: int, script: str, mode: str, steps: list[Step],
                args: argparse.Namespace) -> CallResult:
    """One scripted call; a call that fails is a figure too, not the end of the run."""
    from _scripted_caller import ScriptedCaller

    from voice.auth import fork_token_mint

    call_uuid = str(uuid.uuid4())
    caller = ScriptedCaller(
        url=f"ws://127.0.0.1:{port}/ws/fork/?mode={mode}&token="
            f"{fork_token_mint(call_uuid=call_uuid)}",
        metadata={"uuid": call_uuid, "sampleRate": RATE, "language": "en"},
        rate=RATE, steps=steps, delay_s=args.delay_s, quiet_s=4.0, reply_wait_s=25.0,
        tail_s=0.5)
    result = CallResult(script=script, mode=mode, uuid=call_uuid, steps=steps)
    try:
        asyncio.run(caller.run())
    except Exception as exc:
        result.problems.append(f"{type(exc).__name__}: {exc}")
    result.problems += caller.report.problems(expect_answer=False)
    analyse(result, caller)
    if args.verbose:
        timeline(result, caller)
    return result


def _place_calls(*, port: int, audio: dict[str, bytes],
                 args: argparse.Namespace) -> list[CallResult]:
    """Every script once (or ``--calls``), then barge-in calls until enough barge-ins."""
    from _scripted_caller import Step

    modes, counter = args.modes.split(","), {"q": 0, "b": 0, "k": 0}
    plan = [tuple(c.split(":")) for c in args.calls.split(",")] if args.calls else COVERAGE

    def utterance(letter: str) -> Step:
        pool = {"q": QUESTIONS, "b": BARGES, "k": BACKCHANNELS}[letter]
        counter[letter] += 1
        return Step({"q": "question", "b": "barge", "k": "backchannel"}[letter],
                    audio[pool[(counter[letter] - 1) % len(pool)]])

    results: list[CallResult] = []
    started = time.monotonic()
    while time.monotonic() - started < args.budget_s:
        measured = sum(1 for r in results for s in r.steps
                       if s.kind == "barge" and not s.skipped and s.onset is not None)
        index = len(results)
        if index >= len(plan) and measured >= args.interruptions:
            break
        script, mode = plan[index] if index < len(plan) else ("barges", modes[index % len(modes)])
        mode = mode if mode in modes else modes[index % len(modes)]
        results.append(_place_call(port=port, script=script, mode=mode, args=args,
                                   steps=[utterance(letter) for letter in SCRIPTS[script]]))
        print(f"call {len(results)} ({script}, {mode}): {time.monotonic() - started:.0f} s",
              file=sys.stderr)
    return results


def main() -> None:
    args = _arguments()
    repo = use_repo(args.repo)
    base = args.data_dir.resolve()
    env = embedded_env(repo=repo, data=base / f"run-{repo.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                       TOM_SESSION_BACKEND="local", TOM_STT_MODEL=args.stt_model,
                       TOM_VAD_STOP_MS=str(args.vad_stop_ms))
    models_shared(env, repo=repo)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings

    from calls.models import Call, CallTurn

    min_speech = settings.TOM_BARGE_IN_MIN_SPEECH_MS
    if args.backchannel_ms + 20 >= min_speech:
        raise SystemExit(f"--backchannel-ms must stay a frame below "
                         f"TOM_BARGE_IN_MIN_SPEECH_MS ({min_speech})")
    cache = base / "caller-audio"
    audio = {t: trim(caller_audio(t, cache)) for t in QUESTIONS + BARGES}
    audio |= {t: trim(caller_audio(t, cache), keep_ms=args.backchannel_ms)
              for t in BACKCHANNELS}
    server, port = start_server(env, repo=repo)
    started = time.monotonic()
    try:
        results = _place_calls(port=port, audio=audio, args=args)
    finally:
        server.terminate()
        server.wait(30)
    wall = time.monotonic() - started
    # Read after the server stopped: a turn it records at hang-up is in by then.
    for result in results:
        call = Call.objects.filter(uuid=result.uuid).first()
        result.turns = list(CallTurn.objects.filter(call=call).order_by("index")) if call else []
    report(results, args=args, repo=repo, min_speech=min_speech, wall=wall)


def report(results: list[CallResult], *, args: argparse.Namespace, repo: Path,
           min_speech: int, wall: float) -> None:
    steps = [s for r in results for s in r.steps]
    barges = [s for s in steps if s.kind == "barge" and not s.skipped and s.onset is not None]
    latencies = [s.kill_ms for s in barges if s.kill_ms is not None]
    bcs = [s for s in steps if s.kind == "backchannel" and s.onset is not None]
    print(f"\ntree {repo}: {len(results)} calls in {wall:.0f} s, STT {args.stt_model}, VAD "
          f"end-of-turn silence {args.vad_stop_ms} ms, barge-in minimum {min_speech} ms, "
          f"backchannels {args.backchannel_ms} ms, talk-over {args.delay_s:g} s into a reply, "
          f"{os.cpu_count()} cores\n")
    print("| call | script | mode | barge-ins (ms to killAudio) | backchannels (killed/resumed) "
          "| replies heard | turn rows | rows with barge_in | problems |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(results, 1):
        b = [s for s in r.steps if s.kind == "barge" and s.onset is not None]
        k = [s for s in r.steps if s.kind == "backchannel" and s.onset is not None]
        shown = ", ".join("skipped" if s.skipped else
                          "no kill" if s.kill_ms is None else f"{s.kill_ms:.0f}" for s in b)
        rows = sum(1 for t in r.turns if getattr(t, "barge_in", False))
        print(f"| {n} | {r.script} | {r.mode} | {shown or '-'} | "
              f"{sum(s.kill_ms is not None for s in k)}/{sum(s.resumed for s in k)} of {len(k)} "
              f"| {r.replies} | {len(r.turns)} | {rows} | {'; '.join(r.problems) or '-'} |")
    print()
    if latencies:
        by_mode = "; ".join(
            f"{mode}: n={len(v)}, p50 {pct(v, 0.5):.0f}, p95 {pct(v, 0.95):.0f}"
            for mode in ("stream", "file")
            if (v := [s.kill_ms for r in results if r.mode == mode for s in r.steps
                      if s.kind == "barge" and not s.skipped and s.kill_ms is not None]))
        print(f"barge-in, speech onset -> killAudio (client clock): n={len(latencies)}, "
              f"p50 {pct(latencies, 0.5):.0f} ms, p95 {pct(latencies, 0.95):.0f} ms, "
              f"max {max(latencies):.0f} ms, without killAudio {len(barges) - len(latencies)} "
              f"({by_mode}); onset = when the first frame of speech is due on the line "
              "(the client sends a frame as its 20 ms begin, a real fork as they end)")
    else:
        print(f"barge-in: no killAudio measured ({len(barges)} barge-ins sent)")
    killed = sum(s.kill_ms is not None for s in bcs)
    print(f"backchannels: {len(bcs)} sent, killAudio after {killed}, "
          f"the same reply resumed after {sum(s.resumed for s in bcs)}")
    exact = sum(1 for r in results if r.replies == len(r.turns) and not r.problems)
    print(f"turn records per reply: exactly one in {exact}/{len(results)} calls")


if __name__ == "__main__":
    main()
