"""Capacity with real models: N callers asking a catalog question at the same moment.

For each design (a source tree, optionally with another ``TOM_LLM_BACKEND``) one daphne
process is started and waited for until ``/healthz`` answers 200 (a tree that warms its
models answers 503 until then); one call warms it further and is not counted. Then, for
each N in ``--callers``, ``--repeat`` rounds of N fork callers, each with its own
Piper-made catalog question over an 8 kHz mu-law line. The callers' speech is aligned
to end at the same instant (``--align end``; ``start``: to begin together), so N turns
reach the server at once. On the client's clock, per caller: end of speech to the
first agent audio, and what that reply was: an answer, the apology (a stage failed or a
model slot stayed busy for the busy threshold), the busy message (admission; off unless
``--capacity`` is given) or nothing within ``--silent-s`` (silent). A caller stays on the
line until the reply was heard out, so each round starts on an idle server.

Each design runs in a process of its own (its own tree's code on ``sys.path``); then
one table per design: N, p50/p95/max, their ratios to the same design's single-caller
p50, the outcome counts, and a verdict against issue 16's goal (4 callers: p50 <= 1.8x
and max <= 3x the single-caller p50, nobody left without audio for longer than the
busy threshold, ``voice.session.slots.BUSY_WAIT_S``).
Run: .venv/bin/python bench/capacity.py [--callers 1,2,4,8] [--repeat 2]
     [--legacy /tmp/tom-before] [--llm-backend llamacpp-server]
     [--design TOM_LLM_BACKEND=llamacpp-server,TOM_STT_BACKEND=speech-server,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import REPO, embedded_env, models_shared, start_server, use_repo

QUESTIONS = [  # catalog questions (toolhub's sample catalog), one per caller
    "Do you have brake pads for a Volkswagen Golf?",
    "How much is an oil filter for a BMW 3 series?",
    "Do you sell spark plugs for a Ford Focus?",
    "What does a battery for an Opel Astra cost?",
    "Do you have wiper blades for a Skoda Octavia?",
    "How much is a cabin filter for an Audi A4?",
    "Have you got a clutch kit for a Renault Clio?",
    "Do you have brake discs for a Volkswagen Passat?",
]
# Not counted; a catalog question too, so the catalog tool's path is warm in every tree.
WARM_UP = "Do you have a timing belt kit for a Volkswagen Passat?"
RATE, FRAME_S = 8000, 0.02
GOAL_N, GOAL_P50, GOAL_MAX = 4, 1.8, 3.0  # issue 16, on 2 cores
BUSY_PREFIX = "All our lines are busy"  # calls.variants.BUSY_MESSAGES["en"]; no variant set
FORWARDED = ("callers", "repeat", "stt_model", "vad_stop_ms", "silent_s", "quiet_s",
             "align", "capacity", "data_dir")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="1,2,4,8", help="simultaneous callers per round")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per number of callers")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the TOM source tree to run (default: this one)")
    parser.add_argument("--legacy", type=Path, help="a previous design's tree, run after "
                        "(e.g. git archive 1366a21 | tar -x -C /tmp/tom-before)")
    parser.add_argument("--llm-backend", action="append", default=[],
                        help="also run --repo with this TOM_LLM_BACKEND (repeatable), "
                             "e.g. llamacpp-server")
    parser.add_argument("--design", action="append", default=[],
                        help="also run --repo with these settings (repeatable), e.g. "
                             "TOM_LLM_BACKEND=llamacpp-server,TOM_STT_BACKEND=speech-server,"
                             "TOM_TTS_BACKEND=speech-server")
    parser.add_argument("--stt-model", default="base")
    parser.add_argument("--vad-stop-ms", type=int, default=450)
    parser.add_argument("--silent-s", type=float, default=15.0,
                        help="no agent audio this long after the caller's speech: silent")
    parser.add_argument("--quiet-s", type=float, default=3.0,
                        help="a reply with no audio for this long (and no final agent "
                             "transcript) is heard out: the caller hangs up")
    parser.add_argument("--align", choices=("end", "start"), default="end",
                        help="the callers' speech ends (or starts) at the same instant")
    parser.add_argument("--capacity", type=int,
                        help="TOM_CAPACITY_CALLS for the server (default 0: admit everyone)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TOM_DATA_DIR")
                                     or Path(tempfile.gettempdir()) / "tom-data-bench"),
                        help="holds the caller audio and a folder a design "
                             "(models: TOM_BENCH_MODELS)")
    parser.add_argument("--backend", default="", help=argparse.SUPPRESS)  # one design's
    parser.add_argument("--design-out", type=Path, help=argparse.SUPPRESS)  # its results
    return parser.parse_args()


# --- one design, in a process of its own -------------------------------------------

def _design_settings(spec: str) -> dict[str, str]:
    """A design's settings: "KEY=VALUE,KEY=VALUE", or a bare TOM_LLM_BACKEND value."""
    if not spec:
        return {}
    if "=" not in spec:
        return {"TOM_LLM_BACKEND": spec}
    return dict(item.split("=", 1) for item in spec.split(",") if item)


def _caller_type() -> type:
    """The fork client of a caller, from the measured tree (imported after use_repo)."""
    from voice.client import ForkClient

    class Caller(ForkClient):
        """Talks at ``speak_at`` (event-loop time), then listens until the reply was heard
        out; keeps the text of every agent audio message it got, with its call time."""

        def __init__(self, *, speak_at: float, silent_s: float, quiet_s: float,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.speak_at, self.silent_s, self.quiet_s = speak_at, silent_s, quiet_s
            self.texts: list[str] = []

        async def _on_text(self, ws: Any, text: str) -> None:
            await super()._on_text(ws, text)
            message = json.loads(text) if text.startswith("{") else {}
            if message.get("type") in ("playAudio", "streamAudio"):
                self.texts.append(str((message.get("data") or {}).get("textContent", "")))

        async def _stream(self, ws: Any) -> None:
            silence = bytes(int(RATE * FRAME_S) * 2)
            loop = asyncio.get_running_loop()
            while loop.time() < self.speak_at:  # the line carries silence until then
                await self._send_frame(ws, silence)
            await super()._stream(ws)  # the question, no pause after it
            end = self.report.segment_ends[-1]
            while not self._heard_out(end):
                await self._send_frame(ws, silence)
            for _ in range(round(0.3 / FRAME_S)):
                await self._send_frame(ws, silence)

        def _heard_out(self, end: float) -> bool:
            now, heard = self._now(), [p for p in self.report.playbacks if p.start >= end]
            if not heard:
                return now - end >= self.silent_s
            if any(p.end > now for p in heard):
                return False
            done = any(t.get("role") == "agent" and t.get("final")
                       for t in self.report.transcripts)
            return done or now - max(p.end for p in heard) >= self.quiet_s \
                or now - end >= self.silent_s + 30

    return Caller


async def _round(*, port: int, pcms: list[bytes], args: argparse.Namespace, apology: str,
                 silent_s: float | None = None) -> list[dict[str, Any]]:
    """One round: len(pcms) callers at once; per caller its latency and outcome."""
    silent_s = args.silent_s if silent_s is None else silent_s
    from voice.auth import fork_token_mint
    from voice.client import Segment

    caller_type, loop = _caller_type(), asyncio.get_running_loop()
    longest = max(len(p) for p in pcms) / 2 / RATE
    end_at = loop.time() + 2.0 + longest  # 2 s: every handshake is done by then
    callers = []
    for pcm in pcms:
        call_uuid = str(uuid.uuid4())
        speak_at = end_at - (len(pcm) / 2 / RATE if args.align == "end" else longest)
        callers.append(caller_type(
            url=f"ws://127.0.0.1:{port}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
            metadata={"uuid": call_uuid, "sampleRate": RATE, "language": "en"}, rate=RATE,
            segments=[Segment(pcm, pause_s=0.0)], tail_s=0.0, wait_s=30.0,
            speak_at=speak_at, silent_s=silent_s, quiet_s=args.quiet_s))
    outcomes = await asyncio.gather(*(c.run() for c in callers), return_exceptions=True)
    results = []
    for caller, outcome in zip(callers, outcomes, strict=True):
        report = caller.report
        latency = report.turn_latencies()[0] if report.segment_ends else None
        said = " ".join(caller.texts)
        if latency is None or latency > silent_s:
            kind = "silent"
        elif apology in said:
            kind = "apologised"
        elif BUSY_PREFIX in said or "busy" in report.disconnects:
            kind = "busy"
        else:
            kind = "answered"
        problems = report.problems(expect_answer=False)
        if isinstance(outcome, BaseException):
            problems.append(f"{type(outcome).__name__}: {outcome}")
        results.append({"latency": latency, "kind": kind, "problems": problems,
                        "first": caller.texts[0][:60] if caller.texts else ""})
    return results


def design_run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the design's server, warm it with one call, run the rounds; the figures."""
    repo = use_repo(args.repo)
    base = args.data_dir.resolve()
    # A folder name: the settings' values only ("llamacpp-server-speech-server-...").
    label = f"{repo.name}-" + ("-".join(dict.fromkeys(_design_settings(args.backend).values()))
                               or "default")
    settings = {"TOM_SESSION_BACKEND": "local", "TOM_STT_MODEL": args.stt_model,
                "TOM_VAD_STOP_MS": str(args.vad_stop_ms),
                "TOM_CAPACITY_CALLS": str(args.capacity if args.capacity is not None else 0)}
    settings.update(_design_settings(args.backend))
    env = embedded_env(repo=repo, data=base / f"run-{label}-{time.strftime('%Y%m%d-%H%M%S')}",
                       **settings)
    models_shared(env, repo=repo)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from barge_in import caller_audio, trim  # after setup: Piper comes from this tree

    from voice.session.apology import APOLOGY_EN
    from voice.session.slots import BUSY_WAIT_S

    cache = base / "caller-audio"
    audio = {text: trim(caller_audio(text, cache)) for text in [WARM_UP, *QUESTIONS]}
    started = time.monotonic()
    server, port = start_server(env, repo=repo)
    ready_s = time.monotonic() - started
    rounds: list[dict[str, Any]] = []
    try:
        # A tree that loads its models on the first call (no warm-up) gets a minute.
        warm = asyncio.run(_round(port=port, pcms=[audio[WARM_UP]], args=args,
                                  apology=APOLOGY_EN, silent_s=60.0))
        print(f"{label}: ready after {ready_s:.0f} s; warm-up call {warm[0]['kind']}, "
              f"{warm[0]['latency'] or float('nan'):.2f} s", file=sys.stderr)
        for n in [int(v) for v in args.callers.split(",")]:
            for rep in range(args.repeat):
                pcms = [audio[QUESTIONS[(rep * n + i) % len(QUESTIONS)]] for i in range(n)]
                results = asyncio.run(_round(port=port, pcms=pcms, args=args,
                                             apology=APOLOGY_EN))
                rounds.append({"n": n, "rep": rep, "callers": results})
                shown = ", ".join(f"{r['latency']:.2f} {r['kind'][:3]}" if r["latency"]
                                  else r["kind"] for r in results)
                print(f"{label}: N={n} round {rep + 1}: {shown}", file=sys.stderr)
                print(f"  first agent audio: {sorted({r['first'] for r in results})}",
                      file=sys.stderr)
                for problem in {p for r in results for p in r["problems"]}:
                    print(f"  problem: {problem}", file=sys.stderr)
                time.sleep(1.0)  # the calls' records are written after they close
    finally:
        server.terminate()
        server.wait(60)
    return {"repo": str(repo), "backend": args.backend or "default", "ready_s": ready_s,
            "busy_wait_s": BUSY_WAIT_S, "rounds": rounds, "cores": os.cpu_count()}


# --- the parent: every design, then the tables -------------------------------------

def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _revision(repo: Path) -> str:
    # git from PATH, as code_shape.py: a tree unpacked with git archive is no checkout.
    described = subprocess.run(["git", "-C", str(repo), "describe", "--always",  # noqa: S607
                                "--dirty"], capture_output=True, text=True,
                               check=False).stdout.strip()
    return described or "unpacked tree, not a git checkout"


def table(design: dict[str, Any], args: argparse.Namespace) -> None:
    """The design's figures as a Markdown table and a verdict line."""
    by_n: dict[int, list[dict[str, Any]]] = {}
    for r in design["rounds"]:
        by_n.setdefault(r["n"], []).extend(r["callers"])
    busy_s = design["busy_wait_s"]
    heard = {n: [c["latency"] for c in cs if c["kind"] != "silent"] for n, cs in by_n.items()}
    single = statistics.median(heard[1]) if heard.get(1) else None
    repo = Path(design["repo"])
    print(f"\n### {repo} ({_revision(repo)}), settings {design['backend']}\n")
    print(f"{design['cores']} cores, STT {args.stt_model}, VAD end-of-turn silence "
          f"{args.vad_stop_ms} ms, {args.repeat} rounds per N, speech aligned at its "
          f"{args.align}, TOM_CAPACITY_CALLS={args.capacity or 0}, ready (/healthz 200) "
          f"{design['ready_s']:.0f} s after start, busy threshold {busy_s:g} s; seconds "
          "from the end of the caller's speech to the first agent audio, client clock\n")
    print("| N | calls | p50 s | p95 s | max s | p50/single p50 | max/single p50 | answered "
          f"| apologised | busy | silent | no audio by {busy_s:g} s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdict = None
    for n, callers in sorted(by_n.items()):
        values = heard[n]
        kinds = [c["kind"] for c in callers]
        late = sum(c["kind"] == "silent" or c["latency"] > busy_s for c in callers)
        if values:
            p50, p95, worst = statistics.median(values), _nearest_rank(values, 0.95), max(values)
            ratios = ((f"{p50 / single:.2f}x", f"{worst / single:.2f}x") if single
                      else ("-", "-"))
            figures = f"{p50:.2f} | {p95:.2f} | {worst:.2f} | {ratios[0]} | {ratios[1]}"
        else:
            figures = "- | - | - | - | -"
        print(f"| {n} | {len(callers)} | {figures} | {kinds.count('answered')} | "
              f"{kinds.count('apologised')} | {kinds.count('busy')} | {kinds.count('silent')} "
              f"| {late} |")
        if n == GOAL_N and values and single:
            verdict = (p50 / single, worst / single, late)
    if verdict is None:
        print(f"\nverdict: no figures for {GOAL_N} callers and a single caller")
        return
    p50_x, max_x, late = verdict
    met = p50_x <= GOAL_P50 and max_x <= GOAL_MAX and late == 0
    print(f"\nverdict ({GOAL_N} callers): p50 {p50_x:.2f}x (goal <= {GOAL_P50}x), max "
          f"{max_x:.2f}x (goal <= {GOAL_MAX:g}x), {late} without audio by the busy threshold "
          f"(goal 0): {'goal met' if met else 'goal NOT met'}")


def main() -> None:
    args = _arguments()
    if args.design_out is not None:
        args.design_out.write_text(json.dumps(design_run(args)))
        return
    designs = ([(args.repo, "")] + [(args.repo, b) for b in args.llm_backend]
               + [(args.repo, d) for d in args.design])
    if args.legacy is not None:
        designs.append((args.legacy, ""))
    forwarded = []
    for name in FORWARDED:
        if (value := getattr(args, name)) is not None:
            forwarded += [f"--{name.replace('_', '-')}", str(value)]
    results = []
    with tempfile.TemporaryDirectory(prefix="tom-capacity-") as scratch:
        for index, (repo, backend) in enumerate(designs):
            out = Path(scratch) / f"design-{index}.json"
            # A process per design: each imports its own tree's voice, calls and tomsite.
            done = subprocess.run([sys.executable, __file__, *forwarded, "--repo", str(repo),
                                   "--backend", backend, "--design-out", str(out)], check=False)
            if done.returncode or not out.exists():
                print(f"{repo} (settings {backend or 'default'}): the run failed "
                      f"(exit {done.returncode})", file=sys.stderr)
                continue
            results.append(json.loads(out.read_text()))
    for design in results:
        table(design, args)


if __name__ == "__main__":
    main()
