"""TOM against Pipecat (and against an earlier TOM) on the same caller WAVs, in one run.

Runs bench/voice_latency.py for this tree (and ``--before``, an older tree, e.g. one
unpacked with ``git archive <ref> | tar -x -C DIR``) and bench/peer_pipecat.py (Pipecat
1.14 in its own venv, the same Whisper, Qwen and Piper models) one after the other, for
``--rounds`` rounds in alternating order, so that the machine's load falls on all alike.
Latency is the same for all: the WAV's last speech sample to the first agent audio, the
audio paced in real time. Prints p50/p95 per system and the ratios to Pipecat's best
configuration (Silero stop 0.5 s, plain silence endpointing, beam 1).

Run: .venv/bin/python bench/latency_corpus.py --out var/latency-wavs
     .venv/bin/python bench/compare_latency.py --wav-dir var/latency-wavs \
         [--before /tmp/tom-before] [--rounds 2] [--peer-variants]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
PEERS = {"Pipecat 1.14, Silero stop 0.5 s, beam 1": [],
         "Pipecat 1.14, Silero stop 0.5 s, beam 5": ["--beam", "5"],
         "Pipecat 1.14, Smart Turn v3 + Silero 0.2 s": ["--smart-turn"]}
BEST = "Pipecat 1.14, Silero stop 0.5 s, beam 1"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _tom(label: str, repo: Path, wav_dir: Path, env: list[str], out: Path) -> dict[str, float]:
    command = [str(PYTHON), str(REPO / "bench" / "voice_latency.py"), "--wav-dir", str(wav_dir),
               "--json", str(out), "--label", label, "--repo", str(repo)]
    for item in env:
        command += ["--env", item]
    subprocess.run(command, check=True, stdout=sys.stderr)
    data = json.loads(out.read_text())
    return {r["wav"]: r["ms"] for r in data["results"] if r["ms"] is not None}


def _peer(args: list[str], wav_dir: Path, out: Path) -> dict[str, float]:
    command = [str(PYTHON), str(REPO / "bench" / "peer_pipecat.py"), "--wav-dir", str(wav_dir),
               "--json", str(out), *args]
    subprocess.run(command, check=True, stdout=sys.stderr)
    data = json.loads(out.read_text())
    return {r["wav"]: r["ms"] for r in data["runs"] if r.get("ms") is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav-dir", type=Path, required=True)
    parser.add_argument("--before", type=Path, help="an earlier TOM tree to run as well")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--peer-variants", action="store_true",
                        help="also Pipecat with beam 5 and with Smart Turn")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a TOM setting for every TOM server and for Pipecat's models")
    args = parser.parse_args()
    os.environ.update(dict(item.split("=", 1) for item in args.env))
    index = args.wav_dir / "corpus.json"
    kinds = ({e["wav"]: e["kind"] for e in json.loads(index.read_text())}
             if index.exists() else {})
    # Questions said with a pause in the middle measure cut-offs, not latency.
    timed = {w for w, kind in kinds.items() if kind != "pause"} or None
    systems = {"TOM (this tree)": lambda out: _tom("TOM", REPO, args.wav_dir, args.env, out)}
    if args.before:
        systems["TOM (before)"] = lambda out: _tom("TOM before", args.before, args.wav_dir,
                                                   args.env, out)
    for name, extra in PEERS.items():
        if name == BEST or args.peer_variants:
            systems[name] = lambda out, extra=extra: _peer(extra, args.wav_dir, out)
    found: dict[str, dict[str, list[float]]] = {name: {} for name in systems}
    work = Path(tempfile.mkdtemp(prefix="tom-compare-"))
    order = list(systems)
    for round_ in range(args.rounds):
        for number, name in enumerate(order if round_ % 2 == 0 else order[::-1]):
            print(f"round {round_ + 1}: {name}", file=sys.stderr)
            for wav, ms in systems[name](work / f"{round_}-{number}.json").items():
                found[name].setdefault(wav, []).append(ms)
    print(f"\n{args.rounds} round(s) on {os.cpu_count()} cores, WAVs: {args.wav_dir}\n")
    wavs = sorted({w for per in found.values() for w in per})
    print("| wav | kind | " + " | ".join(found) + " |")
    print("|---|---|" + "---|" * len(found))
    for wav in wavs:
        cells = [f"{statistics.median(found[s][wav]):.0f}" if wav in found[s] else "-"
                 for s in found]
        print(f"| {wav} | {kinds.get(wav, '')} | " + " | ".join(cells) + " |")
    best = [ms for w, per in found.get(BEST, {}).items() for ms in per
            if timed is None or w in timed]
    print("\n| system | n | p50 ms | p95 ms | p50 / Pipecat best | p95 / Pipecat best |")
    print("|---|---|---|---|---|---|")
    for name, per in found.items():
        values = [ms for w, runs in per.items() for ms in runs if timed is None or w in timed]
        p50, p95 = _pct(values, 0.5), _pct(values, 0.95)
        ratio = (f"{p50 / _pct(best, 0.5):.2f} | {p95 / _pct(best, 0.95):.2f}" if best
                 else "- | -")
        print(f"| {name} | {len(values)} | {p50:.0f} | {p95:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
