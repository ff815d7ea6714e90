"""Load on the telephony bridge: N concurrent fork calls, paced in real time, echo backend.

Starts one daphne process (``python -m tomsite.serve``, TOM on the embedded default,
TOM_SESSION_BACKEND=echo) and client processes that place N calls through /ws/fork/ with
voice.client.ForkClient, each caller talking and pausing so the echo answers. Prints
frames sent/received/dropped, the server's per-frame processing time (p50/p99, from its
own histogram), the server's CPU share and the echo latency.

``--abusive N`` runs the calls twice on the same server: first alone (the baseline), then
again with N more connections that flood bytes (64,000-byte frames 100 times a second:
under the frame and message-rate limits, 400x real time). It reports how each abusive
connection was closed and how fast, and both phases' figures with their p99 ratio.
Run: .venv/bin/python bench/bridge_load.py --calls 100 [--abusive 5]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import REPO, cpu_seconds, embedded_env, start_server, use_repo

FLOOD_BYTES, FLOOD_PER_S, FLOOD_GIVE_UP_S = 64_000, 100, 15.0


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def _value(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{")))


def _buckets(text: str, name: str) -> list[tuple[float, float]]:
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return buckets


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the histogram bucket holding quantile ``q`` (seconds)."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()


def _client_worker(port: int, calls: int, seconds: float, queue: multiprocessing.Queue) -> None:
    _django()
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


def _abusive_worker(port: int, count: int, spread_s: float,
                    queue: multiprocessing.Queue) -> None:
    """``count`` connections, started across ``spread_s``, each flooding until closed."""
    _django()
    import websockets

    from voice.auth import fork_token_mint

    async def flood(index: int) -> tuple[int | None, float, int]:
        await asyncio.sleep(index * spread_s / max(1, count))
        call_uuid = str(uuid.uuid4())
        url = f"ws://127.0.0.1:{port}/ws/fork/?token={fork_token_mint(call_uuid=call_uuid)}"
        loop = asyncio.get_running_loop()
        async with websockets.connect(url, subprotocols=["audio.drachtio.org"],  # type: ignore[list-item]
                                      max_size=None, compression=None) as ws:
            await ws.send(f'{{"uuid":"{call_uuid}","sampleRate":8000}}')
            started, sent, frame = loop.time(), 0, bytes(FLOOD_BYTES)
            try:
                while loop.time() - started < FLOOD_GIVE_UP_S:
                    await ws.send(frame)
                    sent += 1
                    await asyncio.sleep(max(0.0, started + sent / FLOOD_PER_S - loop.time()))
                await ws.close()
            except websockets.ConnectionClosed:
                pass
            with_close = loop.time() - started
            await ws.wait_closed()
        return ws.close_code, with_close, sent

    async def run_all() -> list[tuple[int | None, float, int]]:
        return await asyncio.gather(*(flood(i) for i in range(count)))

    queue.put(asyncio.run(run_all()))


def _phase(port: int, server_pid: int, args: argparse.Namespace,
           abusive: int) -> dict[str, Any]:
    before = _metrics(port)
    cpu0, wall0 = cpu_seconds(server_pid), time.monotonic()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    abuse: multiprocessing.Queue = multiprocessing.Queue()
    shares = [args.calls // args.client_processes + (i < args.calls % args.client_processes)
              for i in range(args.client_processes)]
    workers = [multiprocessing.Process(target=_client_worker,
                                       args=(port, n, args.seconds, queue)) for n in shares]
    if abusive:
        workers.append(multiprocessing.Process(
            target=_abusive_worker, args=(port, abusive, args.seconds / 2, abuse)))
    for w in workers:
        w.start()
    results = [item for _ in shares for item in queue.get()]
    floods = abuse.get() if abusive else []
    for w in workers:
        w.join()
    cpu, wall = cpu_seconds(server_pid) - cpu0, time.monotonic() - wall0
    after = _metrics(port)
    name = "tom_fork_frame_processing_seconds"
    earlier = dict(_buckets(before, name))
    buckets = [(bound, count - earlier.get(bound, 0.0)) for bound, count in _buckets(after, name)]
    latencies = [v for r in results for v in r[2] if v is not None]
    return {
        "sent": sum(r[0] for r in results),
        "received": (_value(after, "tom_fork_frames_received_total")
                     - _value(before, "tom_fork_frames_received_total")),
        "p50": _quantile(buckets, 0.5) * 1000, "p99": _quantile(buckets, 0.99) * 1000,
        "cpu": cpu, "wall": wall, "latencies": latencies,
        "unanswered": sum(1 for r in results for v in r[2] if v is None),
        "floods": floods,
    }


def _print_phase(title: str, phase: dict[str, Any]) -> None:
    print(f"--- {title}")
    print(f"frames sent by clients:   {phase['sent']}")
    print(f"frames received by TOM:   {phase['received']:.0f}  "
          f"(dropped: {phase['sent'] - phase['received']:.0f})")
    print(f"per-frame processing p50 <= {phase['p50']:.2f} ms, p99 <= {phase['p99']:.2f} ms "
          "(bucket bounds)")
    print(f"server CPU: {phase['cpu']:.1f} s over {phase['wall']:.1f} s wall = "
          f"{100 * phase['cpu'] / phase['wall']:.0f} % of one core")
    if phase["latencies"]:
        lat = phase["latencies"]
        print("echo latency after end of speech (includes the VAD's end-of-turn silence): "
              f"median {statistics.median(lat) * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms, unanswered turns {phase['unanswered']}")
    floods = phase["floods"]
    if floods:
        codes = sorted({str(code) for code, _, _ in floods})
        closed = [t for code, t, _ in floods if code == 1008]
        print(f"abusive connections: {len(floods)}, closed with 1008: {len(closed)} "
              f"(close codes seen: {', '.join(codes)})")
        if closed:
            print(f"time to close: median {statistics.median(closed) * 1000:.0f} ms, "
                  f"max {max(closed) * 1000:.0f} ms; flood frames sent before the close: "
                  f"at most {max(sent for _, _, sent in floods)} ({FLOOD_BYTES} bytes each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="talk time per call")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--abusive", type=int, default=0,
                        help="also run a phase with this many byte-flooding connections")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the TOM source tree to run (default: this one)")
    args = parser.parse_args()
    repo = use_repo(args.repo)

    env = embedded_env(repo=repo, TOM_SESSION_BACKEND="echo",
                       TOM_MAX_CONCURRENT_CALLS=str(args.calls + args.abusive + 10))
    os.environ.update(env)
    server, port = start_server(env, repo=repo)
    try:
        baseline = _phase(port, server.pid, args, abusive=0)
        attacked = _phase(port, server.pid, args, abusive=args.abusive) if args.abusive else None
    finally:
        server.terminate()
        server.wait(10)

    print(f"calls: {args.calls} concurrent, {args.seconds:.0f} s talk each, "
          f"{args.client_processes} client processes, {os.cpu_count()} cores")
    _print_phase("baseline (normal calls only)", baseline)
    if attacked is not None:
        _print_phase(f"with {args.abusive} abusive connections", attacked)
        ratio = attacked["p99"] / baseline["p99"]
        print(f"p99 per-frame processing, with abuse / baseline: {ratio:.2f}x "
              f"({'within' if ratio <= 2 else 'OVER'} the 2x bound)")


if __name__ == "__main__":
    main()
