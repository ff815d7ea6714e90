"""What the supervisor console costs a call: the live hub's work per event, on the loop.

Every stage change, transcript line and latency a call makes goes to ``voice.live.hub``
(issue 18). On the call's path that is ``call_changed``: compare the state, build it and
``put_nowait`` it; the hub's own task then sends it to the channel layer. Both run on the
event loop that carries the call's audio, so both are measured here per event, as medians
of ``--events`` events, against a baseline in the same run (the same loop doing nothing
but counting: what an event costs beyond the loop's own overhead). Layers: the in-memory
one (embedded default) and, with ``--redis URL``, channels-redis (production).

Run: .venv/bin/python bench/live_events.py [--events 2000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class _Controls:
    async def supervisor_hang_up(self, *, by: str) -> None:
        return None

    def supervisor_stop_recording(self, *, by: str) -> None:
        return None


async def _measure(*, events: int) -> dict[str, float]:
    from voice import live

    hub = live.LiveHub()
    call = hub.call_started(live=live.LiveCall(uuid="bench-1", call_id=1, started_at=0.0),
                            controls=_Controls())
    # The baseline: the same change to a call the hub does not carry (the console's
    # comparison without its publishing), i.e. the call path before issue 18 plus a check.
    unseen = live.LiveCall(uuid="bench-2", call_id=2, started_at=0.0)
    stages = [live.Stage.THINKING, live.Stage.SPEAKING, live.Stage.LISTENING]
    baseline, publish = [], []
    for i in range(events):
        started = time.perf_counter_ns()
        hub.call_changed(unseen, stage=stages[i % 3], latencies_ms=[1200 + i])
        baseline.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        hub.call_changed(call, stage=stages[i % 3], latencies_ms=[1200 + i])
        publish.append(time.perf_counter_ns() - started)
        await asyncio.sleep(0)  # the hub's task sends while the call's loop runs on
    drained = time.perf_counter()
    # The hub signals nothing when its queue empties (it has no reader to tell): poll.
    while hub._queue is not None and not hub._queue.empty():  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    send_ms = (time.perf_counter() - drained) * 1000
    hub.call_ended(call, reason="bench")
    if hub._task is not None:
        await asyncio.wait_for(hub._task, 5)
    return {"baseline_us": statistics.median(baseline) / 1000,
            "call_changed_us": statistics.median(publish) / 1000,
            "drain_ms": send_ms}


def _timed_sends(*, events: int) -> float:
    """Median µs per awaited group_send on the configured layer (wall time: with Redis
    most of it is the round trip, during which the loop serves the calls)."""
    from channels.layers import get_channel_layer

    async def run() -> float:
        layer = get_channel_layer()
        times = []
        for i in range(events):
            started = time.perf_counter_ns()
            await layer.group_send("tom-console", {"type": "console.event", "kind": "bench",
                                                   "i": i})
            times.append(time.perf_counter_ns() - started)
        return statistics.median(times) / 1000

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--redis", default="", help="channels-redis URL (default: in memory)")
    args = parser.parse_args()
    env: dict[str, Any] = {"TOM_DATA_DIR": tempfile.mkdtemp(prefix="tom-live-"),
                           "TOM_LOG_LEVEL": "WARNING",
                           "DJANGO_SETTINGS_MODULE": "tomsite.settings"}
    if args.redis:
        env["REDIS_URL"] = args.redis
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    layer = str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1]
    figures = asyncio.run(_measure(events=args.events))
    send_us = _timed_sends(events=args.events)
    print(f"\n{args.events} events, layer {layer}, {os.cpu_count()} cores\n")
    print("| step | median µs per event | ratio to baseline | share of a 20 ms frame |")
    print("|---|---|---|---|")
    base = max(figures["baseline_us"], 0.001)
    for name, value in (("baseline: a change to a call not on the board",
                         figures["baseline_us"]),
                        ("call_changed: published (on the call's path)",
                         figures["call_changed_us"]),
                        ("group_send, awaited by the hub's task (wall)", send_us)):
        print(f"| {name} | {value:.1f} | {value / base:.0f}x | {value / 20000:.3%} |")
    print(f"\nqueue drained {figures['drain_ms']:.0f} ms after the last event")


if __name__ == "__main__":
    main()
