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
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import REPO, embedded_env, models_shared, start_server, use_repo

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
RATE, FRAME_S = 8000, 0.02
FRAME = int(RATE * FRAME_S) * 2
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

        engine = tts.get_tts("en")
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
class Step:
    kind: str  # "question", "barge", "backchannel"
    pcm: bytes
    onset: float | None = None  # call time of the first loud frame sent
    end: float | None = None
    skipped: bool = False  # talked over nothing: the agent had finished
    kill_ms: float | None = None  # onset -> killAudio
    resumed: bool = False  # backchannel: agent audio followed it (the same reply)


def scripted_caller_class() -> type:
    from voice.client import ForkClient

    class ScriptedCaller(ForkClient):
        """Plays ``steps`` as a caller who listens: talks over a reply ``delay_s`` after it
        starts (or when it next plays, if it paused between clauses), and asks a question
        once the reply is over: its agent transcript came and its audio has played, or
        nothing has played for ``quiet_s``."""

        def __init__(self, *, steps: list[Step], delay_s: float, quiet_s: float,
                     reply_wait_s: float, **kwargs: Any) -> None:
            super().__init__(segments=[], **kwargs)
            self.steps, self.delay_s, self.quiet_s = steps, delay_s, quiet_s
            self.reply_wait_s = reply_wait_s
            self.agent_texts: list[float] = []  # call times agent transcripts came

        async def _on_text(self, ws: Any, text: str) -> None:
            before = len(self.report.transcripts)
            await super()._on_text(ws, text)
            if self.report.transcripts[before:] and \
                    self.report.transcripts[-1].get("role") == "agent":
                self.agent_texts.append(self._now())

        def heard(self) -> list[Any]:
            """Agent audio the caller heard (a playback killAudio emptied is not audio)."""
            return [p for p in self.report.playbacks if p.end > p.start]

        def _audio_since(self, t: float) -> bool:
            return any(p.start >= t for p in self.heard())

        def _playing(self) -> bool:
            now = self._now()
            return any(p.start <= now < p.end for p in self.heard())

        def _reply_over(self, t: float) -> bool:
            """The reply to what was said before ``t`` began, was told complete and has
            played (or nothing has played for ``quiet_s``)."""
            if not self._audio_since(t) or self._playing():
                return False
            last = max((p.end for p in self.heard()), default=0.0)
            return any(a >= t for a in self.agent_texts) or self._now() - last >= self.quiet_s

        async def _silence(self, ws: Any, *, until: Any = None, seconds: float) -> None:
            silence = bytes(FRAME)
            deadline = self._now() + seconds
            while self._now() < deadline and not (until is not None and until()):
                await self._send_frame(ws, silence)

        async def _stream(self, ws: Any) -> None:
            last_end = 0.0
            await self._silence(ws, seconds=0.5)
            for step in self.steps:
                if step.kind != "question":
                    await self._silence(ws, until=lambda t=last_end: self._audio_since(t),
                                        seconds=self.reply_wait_s)
                    await self._silence(ws, seconds=self.delay_s)
                    await self._silence(ws, until=lambda t=last_end: self._playing()
                                        or self._reply_over(t), seconds=self.reply_wait_s)
                    step.skipped = not self._playing()
                    if step.skipped and step.kind == "backchannel":
                        continue
                elif last_end:
                    await self._silence(ws, until=lambda t=last_end: self._reply_over(t),
                                        seconds=self.reply_wait_s + 30)
                    await self._silence(ws, seconds=0.5)
                # The speech onset on the line's clock: when its first frame is due.
                step.onset = self.report.frames_sent * FRAME_S
                self.report.segment_starts.append(step.onset)
                for i in range(0, len(step.pcm), FRAME):
                    await self._send_frame(ws, step.pcm[i:i + FRAME].ljust(FRAME, b"\0"))
                step.end = last_end = self._now()
                self.report.segment_ends.append(step.end)
            # Hang up once the last reply has played out (its turn is then complete).
            await self._silence(ws, until=lambda: self._reply_over(last_end),
                                seconds=self.reply_wait_s + 30)
            await self._silence(ws, seconds=self.tail_s)

    return ScriptedCaller


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


def main() -> None:
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
    args = parser.parse_args()
    repo = use_repo(args.repo)
    modes = args.modes.split(",")
    base = args.data_dir.resolve()
    run_dir = base / f"run-{repo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    env = embedded_env(repo=repo, data=run_dir, TOM_SESSION_BACKEND="local",
                       TOM_STT_MODEL=args.stt_model, TOM_VAD_STOP_MS=str(args.vad_stop_ms))
    models_shared(env, repo=repo)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings

    from calls.models import Call, CallTurn
    from voice.auth import fork_token_mint

    min_speech = settings.TOM_BARGE_IN_MIN_SPEECH_MS
    if args.backchannel_ms + 20 >= min_speech:
        parser.error(f"--backchannel-ms must stay below TOM_BARGE_IN_MIN_SPEECH_MS "
                     f"({min_speech}) by a frame")
    cache = base / "caller-audio"
    audio = {t: trim(caller_audio(t, cache)) for t in QUESTIONS + BARGES}
    audio |= {t: trim(caller_audio(t, cache), keep_ms=args.backchannel_ms)
              for t in BACKCHANNELS}
    caller_class = scripted_caller_class()
    server, port = start_server(env, repo=repo)
    results: list[CallResult] = []
    counter = {"q": 0, "b": 0, "k": 0}

    def utterance(letter: str) -> Step:
        pool = {"q": QUESTIONS, "b": BARGES, "k": BACKCHANNELS}[letter]
        text = pool[counter[letter] % len(pool)]
        counter[letter] += 1
        return Step({"q": "question", "b": "barge", "k": "backchannel"}[letter], audio[text])

    plan = ([tuple(c.split(":")) for c in args.calls.split(",")] if args.calls
            else COVERAGE)
    started = time.monotonic()
    try:
        index = 0
        while time.monotonic() - started < args.budget_s:
            measured = sum(1 for r in results for s in r.steps
                           if s.kind == "barge" and not s.skipped and s.onset is not None)
            if index >= len(plan) and measured >= args.interruptions:
                break
            script, mode = (plan[index] if index < len(plan)
                            else ("barges", modes[index % len(modes)]))
            if mode not in modes:
                mode = modes[index % len(modes)]
            index += 1
            call_uuid = str(uuid.uuid4())
            steps = [utterance(letter) for letter in SCRIPTS[script]]
            caller = caller_class(
                url=f"ws://127.0.0.1:{port}/ws/fork/?mode={mode}&token="
                    f"{fork_token_mint(call_uuid=call_uuid)}",
                metadata={"uuid": call_uuid, "sampleRate": RATE, "language": "en"},
                rate=RATE, steps=steps, delay_s=args.delay_s, quiet_s=4.0,
                reply_wait_s=25.0, tail_s=0.5)
            result = CallResult(script=script, mode=mode, uuid=call_uuid, steps=steps)
            try:
                asyncio.run(caller.run())
            except Exception as exc:  # a failed call is a figure too, not the end of the run
                result.problems.append(f"{type(exc).__name__}: {exc}")
            result.problems += caller.report.problems(expect_answer=False)
            analyse(result, caller)
            results.append(result)
            if args.verbose:
                timeline(result, caller)
            print(f"call {len(results)} ({script}, {mode}): {time.monotonic() - started:.0f} s",
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
    wall = time.monotonic() - started

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
