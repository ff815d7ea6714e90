"""Latency of real calls with real models: K calls through one daphne process.

Each call: a Piper-made question over an 8 kHz mu-law line, the agent's answer, then the
caller barges in while the agent talks. Prints p50/p95 per stage (STT, LLM first token,
TTS first audio, end-to-end with and without the VAD's end-of-turn silence), barge-in
latency (interrupting speech onset to killAudio, on the client's clock) and server CPU
seconds per call-second. Run: .venv/bin/python bench/voice_latency.py --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    cpu_seconds,
    embedded_env,
    models_shared,
    start_server,
    use_repo,
)

QUESTIONS = [
    "Hello, what are your opening hours on Saturday?",
    "Do you have brake pads for a Volkswagen Golf?",
    "How much does an oil filter cost?",
    "Can I pick up my order tomorrow morning?",
    "Do you deliver to Hamburg?",
]
INTERRUPTION = "Sorry, one more question please."




def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--stt-model", default="base", help="base, tiny.en or a folder")
    parser.add_argument("--vad-stop-ms", type=int, default=450)
    parser.add_argument("--preempt-ms", type=int, default=250,
                        help="TOM_STT_PREEMPT_MS (0: transcribe only after the turn ends)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the TOM source tree to run (default: this one)")
    args = parser.parse_args()
    repo = use_repo(args.repo)

    env = embedded_env(repo=repo, TOM_SESSION_BACKEND="local", TOM_STT_MODEL=args.stt_model,
                       TOM_VAD_STOP_MS=str(args.vad_stop_ms),
                       TOM_STT_PREEMPT_MS=str(args.preempt_ms))
    os.environ.update(env)
    models_shared(env, repo=repo)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from calls.models import CallTurn
    from voice import tts
    from voice.auth import fork_token_mint
    from voice.client import ForkClient, Segment
    from voice.dsp import g711
    from voice.dsp.resample import resample

    engine = tts.get_tts("en")

    def line(text: str) -> bytes:
        return g711.ulaw_decode(g711.ulaw_encode(resample(engine.synthesize(text), engine.rate,
                                                          8000)))

    server, port = start_server(env, repo=repo)
    barge: list[float] = []
    e2e_client: list[float] = []
    call_seconds = 0.0
    try:
        cpu0 = cpu_seconds(server.pid)
        for index in range(args.calls):
            call_uuid = str(uuid.uuid4())
            # Talk over the agent 1.2 s after it starts answering (the answer comes ~2-3 s
            # after the question on this CPU; the pause is chosen to land inside it).
            segments = [Segment(line(QUESTIONS[index % len(QUESTIONS)]), pause_s=3.6),
                        Segment(line(INTERRUPTION), pause_s=6.0)]
            client = ForkClient(url=f"ws://127.0.0.1:{port}/ws/fork/?token="
                                    f"{fork_token_mint(call_uuid=call_uuid)}",
                                metadata={"uuid": call_uuid, "sampleRate": 8000,
                                          "language": "en"}, rate=8000, segments=segments)
            started = time.monotonic()
            report = asyncio.run(client.run())
            call_seconds += time.monotonic() - started
            first = report.turn_latencies()[0]
            if first is not None:
                e2e_client.append(first)
            onset = report.segment_starts[1]
            kills = [k for k in report.kills if k >= onset]
            if kills:
                barge.append(kills[0] - onset)
            print(f"call {index + 1}: e2e {first and round(first * 1000)} ms, "
                  f"kills {len(kills)}", file=sys.stderr)
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(10)

    turns = list(CallTurn.objects.all())
    stop_s = args.vad_stop_ms / 1000

    def row(name: str, values: list[float]) -> None:
        if values:
            print(f"| {name} | {len(values)} | {_pct(values, 0.5) * 1000:.0f} | "
                  f"{_pct(values, 0.95) * 1000:.0f} |")
        else:
            print(f"| {name} | 0 | - | - |")

    print(f"\n{args.calls} calls, STT {args.stt_model}, Qwen2.5 0.5B Q4_K_M, Piper joe-medium, "
          f"VAD end-of-turn silence {args.vad_stop_ms} ms, preemptive STT after "
          f"{args.preempt_ms or 'off'} ms, {os.cpu_count()} cores\n")
    print("| stage | n | p50 ms | p95 ms |\n|---|---|---|---|")
    row("STT", [t.stt_ms / 1000 for t in turns if t.stt_ms is not None])
    row("LLM first token", [t.llm_first_token_ms / 1000 for t in turns
                            if t.llm_first_token_ms is not None])
    row("TTS first audio", [t.tts_first_audio_ms / 1000 for t in turns
                            if t.tts_first_audio_ms is not None])
    row("end of speech -> first agent audio (server)", [t.e2e_ms / 1000 for t in turns
                                                        if t.e2e_ms is not None])
    row("same, without the VAD silence wait", [t.e2e_ms / 1000 - stop_s for t in turns
                                                if t.e2e_ms is not None])
    row("end of speech -> first agent audio (client clock)", e2e_client)
    row("barge-in: speech onset -> killAudio (client clock)", barge)
    print(f"\nserver CPU: {cpu:.1f} s for {call_seconds:.1f} call-seconds = "
          f"{cpu / max(call_seconds, 1e-9):.2f} CPU-s per call-second")


if __name__ == "__main__":
    main()
