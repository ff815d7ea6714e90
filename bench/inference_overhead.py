"""What the process boundary costs a turn: first-token latency of the same prompts through
in-process llama-cpp-python and through llama-server over HTTP, interleaved.

Both go through TOM's own backends as a call does (voice.llm.LlamaCppLlm and
voice.inference.backend.LlamaServerLlm, the OpenAI-compatible streaming client), with the
persona's system prompt and a new caller question each run (so each turn evaluates new
tokens after a cached prefix, as a real turn does). Runs alternate which engine goes
first, so drift on a shared machine hits both alike. Prints median and p99 per engine,
their ratio and the difference. The models come from TOM_DATA_DIR (manage.py tom_models).
Run: .venv/bin/python bench/inference_overhead.py --runs 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "Hello, what are your opening hours on Saturday?",
    "Do you have brake pads for a Volkswagen Golf?",
    "How much does an oil filter cost?",
    "Can I pick up my order tomorrow morning?",
    "Do you deliver to Hamburg?",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_token_ms(stream: Callable[..., object], messages: list[dict[str, str]]) -> float:
    """Milliseconds from asking to the first spoken text; the rest is not generated."""
    from voice.llm_deltas import TextDelta

    cancel = threading.Event()
    started = time.perf_counter()
    generator = stream(messages, cancel=cancel)
    try:
        for delta in generator:  # type: ignore[attr-defined]
            if isinstance(delta, TextDelta) and delta.text:
                return (time.perf_counter() - started) * 1000
    finally:
        cancel.set()
        generator.close()  # type: ignore[attr-defined]  # closes the HTTP stream: the server stops
    raise RuntimeError("the model said nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="turns per engine")
    parser.add_argument("--parallel", type=int, default=0,
                        help="llama-server slots (default: TOM_LLM_PARALLEL)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.conf import settings

    from voice import models
    from voice.inference.backend import LlamaServerLlm
    from voice.inference.host import HostServer
    from voice.llm import LlamaCppLlm, system_prompt

    if args.parallel:
        settings.TOM_LLM_PARALLEL = args.parallel
    path = models.llm_model_path()
    if not path.exists():
        raise SystemExit(f"no GGUF model at {path}: run manage.py tom_models")
    run = Path(tempfile.mkdtemp(prefix="tom-bench-llm-"))
    host = HostServer(run_dir=run, log_path=run / "llm-server.log", port=0,
                      start_timeout_s=settings.TOM_LLM_SERVER_START_TIMEOUT_S)
    loaded = time.perf_counter()
    host.endpoint(timeout=settings.TOM_LLM_SERVER_START_TIMEOUT_S)
    served_load_s = time.perf_counter() - loaded
    loaded = time.perf_counter()
    local = LlamaCppLlm(str(path))  # loads and evaluates the system prompt, as at start
    local_load_s = time.perf_counter() - loaded
    served = LlamaServerLlm(host)
    engines = {"in-process llama-cpp-python": local.stream,
               f"llama-server over HTTP (--parallel {settings.TOM_LLM_PARALLEL})": served.stream}
    system = system_prompt(language="en")
    times: dict[str, list[float]] = {name: [] for name in engines}
    try:
        for run_index in range(args.runs + 1):
            question = f"{QUESTIONS[run_index % len(QUESTIONS)]} (call {run_index})"
            messages = [{"role": "system", "content": system},
                        {"role": "user", "content": question}]
            order = list(engines) if run_index % 2 == 0 else list(reversed(engines))
            for name in order:
                ms = first_token_ms(engines[name], messages)
                if run_index:  # the first round warms both paths and is not counted
                    times[name].append(ms)
    finally:
        if host.supervisor is not None:
            host.supervisor.stop()
    print(f"first token, same prompts, {args.runs} runs each, interleaved; "
          f"{os.cpu_count()} cores, {settings.TOM_LLM_THREADS or os.cpu_count()} threads")
    print(f"load: in-process {local_load_s:.2f} s, llama-server {served_load_s:.2f} s "
          "(model, warm-up prompt)")
    print(f"{'':48} {'median ms':>10} {'p99 ms':>8}")
    for name, values in times.items():
        print(f"{name:48} {statistics.median(values):10.1f} {_pct(values, 0.99):8.1f}")
    local_ms, served_ms = times.values()
    base, boundary = statistics.median(local_ms), statistics.median(served_ms)
    # Per run, the same prompt both ways: what the boundary added to that turn.
    added = [s - b for s, b in zip(served_ms, local_ms, strict=True)]
    print(f"ratio llama-server/in-process (medians): {boundary / base:.2f}x; "
          f"added per turn (paired): median {statistics.median(added):+.1f} ms, "
          f"p99 {_pct(added, 0.99):+.1f} ms")


if __name__ == "__main__":
    main()
