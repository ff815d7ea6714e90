"""Load on the telephony bridge: N concurrent fork calls, paced in real time, echo backend.

Starts one daphne process (TOM on the embedded default, TOM_SESSION_BACKEND=echo) and
client processes that place N calls through /ws/fork/ with voice.client.ForkClient, each
caller talking and pausing so the echo answers. Prints frames sent/received/dropped,
the server's per-frame processing time (p50/p99, from its own histogram), the server's
CPU share and the echo latency. Run: .venv/bin/python bench/bridge_load.py --calls 100
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _server import cpu_seconds, embedded_env, start_server  # noqa: E402


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def _value(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{")))


def _quantile(text: str, name: str, q: float) -> float:
    """Upper bound of the histogram bucket holding quantile ``q`` (seconds)."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def _client_worker(port: int, calls: int, seconds: float, queue: multiprocessing.Queue) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from voice.auth import fork_token_mint
    from voice.client import ForkClient, Segment
    from voice.signals import voiced

    async def one(index: int) -> tuple[int, int, list[float | None]]:
        await asyncio.sleep(index * 0.02)  # stagger connects like real arrivals
        call_uuid = str(uuid.uuid4())
        rounds = max(1, int(seconds // 2.5))
        client = ForkClient(
            url=f"ws://127.0.0.1:{port}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}",
            metadata={"uuid": call_uuid, "sampleRate": 8000}, rate=8000,
            segments=[Segment(voiced(8000, 1.0), pause_s=1.5) for _ in range(rounds)],
            tail_s=0.5)
        report = await client.run()
        heard = sum(len(p.pcm) for p in report.playbacks)
        return report.frames_sent, heard, report.turn_latencies()

    async def run_all() -> list[tuple[int, int, list[float | None]]]:
        return await asyncio.gather(*(one(i) for i in range(calls)))

    queue.put(asyncio.run(run_all()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="talk time per call")
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()

    env = embedded_env(TOM_SESSION_BACKEND="echo",
                       TOM_MAX_CONCURRENT_CALLS=str(args.calls + 10))
    os.environ.update(env)
    server, port = start_server(env)
    try:
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        queue: multiprocessing.Queue = multiprocessing.Queue()
        shares = [args.calls // args.client_processes + (i < args.calls % args.client_processes)
                  for i in range(args.client_processes)]
        workers = [multiprocessing.Process(target=_client_worker,
                                           args=(port, n, args.seconds, queue)) for n in shares]
        for w in workers:
            w.start()
        results = [item for _ in workers for item in queue.get()]
        for w in workers:
            w.join()
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - wall0
        text = _metrics(port)
    finally:
        server.terminate()
        server.wait(10)

    sent = sum(r[0] for r in results)
    received = _value(text, "tom_fork_frames_received_total")
    latencies = [v for r in results for v in r[2] if v is not None]
    unanswered = sum(1 for r in results for v in r[2] if v is None)
    print(f"calls: {args.calls} concurrent, {args.seconds:.0f} s talk each, "
          f"{args.client_processes} client processes, {os.cpu_count()} cores")
    print(f"frames sent by clients:   {sent}")
    print(f"frames received by TOM:   {received:.0f}  (dropped: {sent - received:.0f})")
    p50, p99 = (_quantile(text, "tom_fork_frame_processing_seconds", q) * 1000
                for q in (0.5, 0.99))
    print(f"per-frame processing p50 <= {p50:.2f} ms, p99 <= {p99:.2f} ms (bucket bounds)")
    print(f"server CPU: {cpu:.1f} s over {wall:.1f} s wall = {100 * cpu / wall:.0f} % of one core")
    if latencies:
        print("echo latency after end of speech (includes the VAD's end-of-turn silence): "
              f"median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms, unanswered turns {unanswered}")


if __name__ == "__main__":
    main()
