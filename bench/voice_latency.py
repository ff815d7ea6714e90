"""Latency of real calls with real models: one call per question through one daphne process.

Each call: the caller's question (a WAV from ``--wav-dir``, else Piper's voice for the
built-in questions) over an 8 kHz mu-law line paced in real time, the agent's answer, then
the caller barges in while the agent talks. Prints, per question, the latency from the last
speech sample of the question to the first agent audio byte (client clock, the definition
bench/peer_pipecat.py uses), what TOM heard; then p50/p95, the per-stage waterfall of the
turns (ms after the caller stopped: when STT started and ended, routing, the LLM's first
text, the first clause, its first audio), barge-in latency, answers that began before the
caller finished (a ``pause`` WAV cut off mid-sentence), and server CPU per call-second.

Run: .venv/bin/python bench/latency_corpus.py --out var/latency-wavs
     .venv/bin/python bench/voice_latency.py --wav-dir var/latency-wavs [--json out.json]
     [--env TOM_STT_PREEMPT_MS=0 ...] [--repo OLD_TREE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    cpu_seconds,
    embedded_env,
    models_shared,
    start_server,
    use_repo,
)
from _speech_end import last_speech_s

QUESTIONS = [
    "Hello, what are your opening hours on Saturday?",
    "Do you have brake pads for a Volkswagen Golf?",
    "How much does an oil filter cost?",
    "Can I pick up my order tomorrow morning?",
    "Do you deliver to Hamburg?",
]
INTERRUPTION = "Sorry, one more question please."
# Agent audio this soon after the question's last word answers an earlier part of it: no
# turn-taking waits less (TOM's VAD stop is 450 ms, Pipecat's 500 ms).
HALF_ANSWER_S = 0.25
# The waterfall's marks in the order a turn reaches them (voice.session.events).
MARKS = ["stt_start", "turn_start", "stt_done", "understood", "routed", "tools_done",
         "llm_request", "llm_tool_call", "llm_first_text", "first_clause", "tts_first_audio",
         "first_audio_sent"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _questions(wav_dir: Path | None, line: object) -> list[dict[str, object]]:
    """(name, kind, 8 kHz PCM) per question: the corpus's WAVs, or Piper's built-ins."""
    from voice.client import read_wav

    if wav_dir is None:
        return [{"wav": f"q{i + 1}", "kind": "builtin", "text": text,
                 "pcm": line(text)} for i, text in enumerate(QUESTIONS)]  # type: ignore[operator]
    index = wav_dir / "corpus.json"
    entries = (json.loads(index.read_text()) if index.exists()
               else [{"wav": p.name, "kind": "wav", "text": ""} for p in
                     sorted(wav_dir.glob("*.wav"))])
    for entry in entries:
        entry["pcm"] = read_wav(wav_dir / str(entry["wav"]), rate=8000)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=0,
                        help="calls to place (default: one per question)")
    parser.add_argument("--wav-dir", type=Path, help="caller WAVs (bench/latency_corpus.py)")
    parser.add_argument("--stt-model", default="base", help="base, tiny.en or a folder")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a TOM setting for the server (repeatable)")
    parser.add_argument("--json", type=Path, help="write the per-question results here")
    parser.add_argument("--label", default="TOM", help="this run's name in the JSON")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the TOM source tree to run (default: this one)")
    args = parser.parse_args()
    repo = use_repo(args.repo)

    settings = dict(item.split("=", 1) for item in args.env)
    env = embedded_env(repo=repo, TOM_SESSION_BACKEND="local", TOM_STT_MODEL=args.stt_model,
                       **settings)
    os.environ.update(env)
    models_shared(env, repo=repo)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings as tom

    from voice import tts
    from voice.auth import fork_token_mint
    from voice.client import ForkClient, Segment
    from voice.dsp import g711
    from voice.dsp.resample import resample

    engine = tts.caller_voice() if hasattr(tts, "caller_voice") else tts.get_tts("en")

    def line(text: str) -> bytes:
        return g711.ulaw_decode(g711.ulaw_encode(resample(engine.synthesize(text), engine.rate,
                                                          8000)))

    questions = _questions(args.wav_dir, line)
    interruption = line(INTERRUPTION)
    server, port = start_server(env, repo=repo)
    results: list[dict[str, object]] = []
    barge: list[float] = []
    call_seconds = 0.0
    try:
        cpu0 = cpu_seconds(server.pid)
        for index in range(args.calls or len(questions)):
            question = questions[index % len(questions)]
            pcm = bytes(question["pcm"])  # type: ignore[arg-type]
            speech_s = last_speech_s(pcm, 8000)
            trailing_s = len(pcm) / 2 / 8000 - speech_s
            call_uuid = str(uuid.uuid4())
            # Talk over the agent 2.8 s after the question (inside its answer).
            segments = [Segment(pcm, pause_s=2.8), Segment(interruption, pause_s=6.0)]
            client = ForkClient(url=f"ws://127.0.0.1:{port}/ws/fork/?token="
                                    f"{fork_token_mint(call_uuid=call_uuid)}",
                                metadata={"uuid": call_uuid, "sampleRate": 8000,
                                          "language": "en"}, rate=8000, segments=segments)
            started = time.monotonic()
            report = asyncio.run(client.run())
            call_seconds += time.monotonic() - started
            spoken_end = report.segment_ends[0] - trailing_s
            first = report.first_audio_after(report.segment_starts[0])
            latency = None if first is None else first - spoken_end
            onset = report.segment_starts[1]
            kills = [k for k in report.kills if k >= onset]
            if kills and first is not None and first < onset:
                barge.append(kills[0] - onset)
            turn = _first_turn(call_uuid)
            result = {"wav": question["wav"], "kind": question["kind"],
                      "ms": None if latency is None else round(latency * 1000),
                      # Sooner than any end-of-turn wait: the answer was to part of it.
                      "cut_off": latency is not None and latency < HALF_ANSWER_S,
                      "heard": (turn or {}).get("caller_text", ""),
                      "reply": (turn or {}).get("agent_text", ""),
                      "waterfall": (turn or {}).get("waterfall") or {}}
            results.append(result)
            print(f"{question['wav']}: {result['ms']} ms, heard {result['heard']!r}",
                  file=sys.stderr)
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(10)
    _print(results, barge, label=args.label, header=(
        f"{args.label}: {len(results)} calls, STT {args.stt_model}, Qwen2.5 0.5B Q4_K_M, "
        f"Piper joe-medium, VAD stop {tom.TOM_VAD_STOP_MS} ms, preemptive STT after "
        f"{tom.TOM_STT_PREEMPT_MS or 'off'} ms, {os.cpu_count()} cores"
        + (f", {' '.join(args.env)}" if args.env else "")))
    print(f"\nserver CPU: {cpu:.1f} s for {call_seconds:.1f} call-seconds = "
          f"{cpu / max(call_seconds, 1e-9):.2f} CPU-s per call-second")
    if args.json:
        args.json.write_text(json.dumps({"label": args.label, "results": results,
                                         "barge_in_s": barge}, indent=1))


def _first_turn(call_uuid: str) -> dict[str, Any] | None:
    """The call's first turn; from an older tree's database (``--repo``), without the
    columns it does not have yet (the waterfall)."""
    from django.db import DatabaseError

    from calls.models import CallTurn

    turns = CallTurn.objects.filter(call__uuid=call_uuid).order_by("index")
    try:
        return turns.values("caller_text", "agent_text", "waterfall").first()
    except DatabaseError:
        return turns.values("caller_text", "agent_text").first()


def _print(results: list[dict[str, object]], barge: list[float], *, label: str,
           header: str) -> None:
    print(f"\n{header}\n")
    print("| wav | kind | ms | heard | reply |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['wav']} | {r['kind']} | {r['ms']} | {r['heard']} | "
              f"{str(r['reply'])[:60]} |")
    timed = [float(r["ms"]) / 1000 for r in results  # type: ignore[arg-type]
             if r["ms"] is not None and r["kind"] != "pause"]
    print("\n| measure | n | p50 ms | p95 ms |\n|---|---|---|---|")
    row(f"{label}: last speech sample -> first agent audio (questions without a pause)", timed)
    row("barge-in: speech onset -> killAudio (client clock)", barge)
    cut = [r["wav"] for r in results if r["cut_off"]]
    print(f"\nanswers begun before the caller finished (or < {HALF_ANSWER_S * 1000:.0f} ms "
          f"after: to part of the question): {len(cut)} {cut or ''}")
    print(f"unanswered: {sum(1 for r in results if r['ms'] is None)}")
    print("\nwaterfall: ms after the caller's speech ended (server, per turn; p50 / p95)\n")
    print("| mark | n | p50 | p95 |\n|---|---|---|---|")
    for mark in MARKS:
        values = [float(w[mark]) / 1000 for r in results  # type: ignore[union-attr]
                  if mark in (w := r["waterfall"])]  # type: ignore[operator]
        if values:
            row(mark, values)


def row(name: str, values: list[float]) -> None:
    if values:
        print(f"| {name} | {len(values)} | {_pct(values, 0.5) * 1000:.0f} | "
              f"{_pct(values, 0.95) * 1000:.0f} |")
    else:
        print(f"| {name} | 0 | - | - |")


if __name__ == "__main__":
    main()
