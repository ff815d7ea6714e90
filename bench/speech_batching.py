"""What batching Whisper across calls buys: four callers' utterances decoded together
(voice.speech.whisper_batch, one encoder pass and one generate) against the same four
one after another, in this process, on the same clips.

The clips are Piper-spoken caller questions over an 8 kHz mu-law line, as a call sends
them. Prints the median wall time of each way, their ratio, and the in-process
WhisperStt (today's path, one utterance at a time) for reference. ``--server`` also
sends the four through the speech server (a supervised child, as a web process starts
it) at the same moment and one after another, and prints what each caller waited.
Run: .venv/bin/python bench/speech_batching.py --runs 7 --model base --server
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "Hello, what are your opening hours on Saturday morning?",
    "Do you have brake pads for a Volkswagen Golf?",
    "How much does an oil filter cost for a BMW three series?",
    "Can I pick up my order tomorrow morning before nine?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="", help="TOM model name (default: TOM_STT_MODEL)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--server", action="store_true", help="also through the server")
    args = parser.parse_args()
    if args.model:
        os.environ["TOM_STT_MODEL"] = args.model  # the server child reads it too
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    import numpy as np
    from django.conf import settings

    from voice import models
    from voice.dsp import g711
    from voice.dsp.resample import resample
    from voice.speech.whisper_batch import SttJob, decode_batch
    from voice.stt import WHISPER_RATE, WhisperStt
    from voice.tts import PiperTts

    name = args.model or settings.TOM_STT_MODEL
    stt = WhisperStt(models.stt_model_dir(name), device=settings.TOM_STT_DEVICE,
                     compute_type=settings.TOM_STT_COMPUTE_TYPE,
                     beam_size=settings.TOM_STT_BEAM_SIZE)
    voice = PiperTts(models.piper_voice_path())
    clips = []
    for index in range(args.batch):
        pcm = voice.synthesize(QUESTIONS[index % len(QUESTIONS)])
        line = g711.ulaw_decode(g711.ulaw_encode(resample(pcm, voice.rate, 8000)))
        clips.append(resample(line, 8000, WHISPER_RATE))

    def jobs() -> list[SttJob]:
        return [SttJob(model_key=name, language="en",
                       audio=np.frombuffer(c, dtype="<i2").astype(np.float32) / 32768.0)
                for c in clips]

    def timed(fn: object) -> float:
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        return (time.perf_counter() - started) * 1000

    texts: list[str] = []
    ways = {
        "together": lambda: texts.extend(t.text for t in decode_batch(stt, jobs())),
        "apart": lambda: [decode_batch(stt, [job]) for job in jobs()],
        "today": lambda: [stt.transcribe(c, rate=WHISPER_RATE, language="en") for c in clips],
    }
    times: dict[str, list[float]] = {way: [] for way in ways}
    for run in range(args.runs + 1):
        # Alternating the order, so drift on a shared machine hits every way alike.
        for way in list(ways) if run % 2 == 0 else reversed(ways):
            ms = timed(ways[way])
            if run:  # the first round warms every path and is not counted
                times[way].append(ms)
    together, apart, today = times["together"], times["apart"], times["today"]
    audio_s = sum(len(c) for c in clips) / 2 / WHISPER_RATE
    print(f"Whisper {name}, {args.batch} utterances ({audio_s:.1f} s of audio), "
          f"{args.runs} runs, {os.cpu_count()} cores, {stt.device}")
    print(f"  batch of {args.batch} (one generate):   median {statistics.median(together):7.0f} ms")
    print(f"  {args.batch} one after another (same decode): median "
          f"{statistics.median(apart):7.0f} ms")
    print(f"  {args.batch} through WhisperStt.transcribe:  median "
          f"{statistics.median(today):7.0f} ms")
    ratio = statistics.median(apart) / statistics.median(together)
    print(f"  ratio sequential/batched: {ratio:.2f}x")
    print("  texts:", texts[: args.batch])
    if args.server:
        _through_server(clips=[resample(c, WHISPER_RATE, 8000) for c in clips], runs=args.runs)


def _through_server(*, clips: list[bytes], runs: int) -> None:
    """The clips sent by ``len(clips)`` callers at once, and one after another."""
    import tempfile
    import threading

    from django.conf import settings

    from voice.inference.host import HostServer
    from voice.speech.backend import SPEECH_SPEC, SpeechServerStt

    run_dir = Path(tempfile.mkdtemp(prefix="tom-bench-speech-"))
    host = HostServer(run_dir=run_dir, log_path=run_dir / "speech-server.log", port=0,
                      start_timeout_s=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S,
                      spec=SPEECH_SPEC)
    host.endpoint(timeout=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S)
    stt = SpeechServerStt(host, model=settings.TOM_STT_MODEL)
    waits: dict[str, list[float]] = {"at once": [], "one after another": []}
    walls: dict[str, list[float]] = {"at once": [], "one after another": []}

    def ask(clip: bytes, started: float, into: list[float]) -> None:
        stt.transcribe(clip, rate=8000, language="en")
        into.append((time.perf_counter() - started) * 1000)

    try:
        for run in range(runs + 1):
            for way in ("at once", "one after another") if run % 2 == 0 else (
                    "one after another", "at once"):
                done: list[float] = []
                started = time.perf_counter()
                if way == "at once":
                    threads = [threading.Thread(target=ask, args=(c, started, done))
                               for c in clips]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                else:
                    for clip in clips:
                        ask(clip, started, done)  # each caller waits for those before it
                if run:
                    waits[way] += done
                    walls[way].append(max(done))
    finally:
        if host.supervisor is not None:
            host.supervisor.stop()
    print(f"through the speech server, {len(clips)} callers (TOM_STT_BATCH="
          f"{settings.TOM_STT_BATCH}), {runs} runs:")
    for way in waits:
        print(f"  {way:18}: all answered after median {statistics.median(walls[way]):6.0f} ms;"
              f" a caller waits median {statistics.median(waits[way]):6.0f} ms, "
              f"worst {max(waits[way]):6.0f} ms")


if __name__ == "__main__":
    main()
