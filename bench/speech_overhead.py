"""What the speech server's process boundary costs a turn: one caller utterance through
in-process WhisperStt and through the speech server (SpeechServerStt over HTTP), and one
clause through in-process PiperTts and through the server (SpeechServerTts), interleaved.

The server is started as a web process starts it (supervised child, voice.speech). Runs
alternate which way goes first, so drift on a shared machine hits both alike. Prints
median and p99 per way and the paired difference. No other load: a request is a batch
of one, so this is the boundary's price, not batching's gain (bench/speech_batching.py).
Run: .venv/bin/python bench/speech_overhead.py --runs 20 --model base
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTION = "Hello, what are your opening hours on Saturday morning?"
CLAUSE = "We are open from eight until one on Saturdays."


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--model", default="", help="TOM model name (default: TOM_STT_MODEL)")
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
    from voice.inference.host import HostServer
    from voice.speech.backend import SPEECH_SPEC, SpeechServerStt, SpeechServerTts
    from voice.speech.whisper_batch import SttJob, decode_batch
    from voice.stt import WHISPER_RATE, WhisperStt
    from voice.tts import PiperTts

    run = Path(tempfile.mkdtemp(prefix="tom-bench-speech-"))
    host = HostServer(run_dir=run, log_path=run / "speech-server.log", port=0,
                      start_timeout_s=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S,
                      spec=SPEECH_SPEC)
    loaded = time.perf_counter()
    host.endpoint(timeout=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S)
    served_load_s = time.perf_counter() - loaded
    name = settings.TOM_STT_MODEL
    stt_local = WhisperStt(models.stt_model_dir(name), device=settings.TOM_STT_DEVICE,
                           compute_type=settings.TOM_STT_COMPUTE_TYPE,
                           beam_size=settings.TOM_STT_BEAM_SIZE)
    tts_local = PiperTts(models.piper_voice_path())
    stt_served = SpeechServerStt(host, model=name)
    tts_served = SpeechServerTts(host, language="en", voice="", length_scale=None)
    pcm = tts_local.synthesize(QUESTION)
    clip = g711.ulaw_decode(g711.ulaw_encode(resample(pcm, tts_local.rate, 8000)))
    def same_decode() -> object:  # what the server runs for a batch of one, here
        audio = np.frombuffer(resample(clip, 8000, WHISPER_RATE), dtype="<i2") / 32768.0
        job = SttJob(model_key=name, audio=audio.astype(np.float32), language="en")
        return decode_batch(stt_local, [job])

    ways: dict[str, Callable[[], object]] = {
        "STT in-process WhisperStt": lambda: stt_local.transcribe(clip, rate=8000,
                                                                  language="en"),
        "STT in-process server decode": same_decode,
        "STT speech server": lambda: stt_served.transcribe(clip, rate=8000, language="en"),
        "TTS in-process PiperTts": lambda: tts_local.synthesize(CLAUSE),
        "TTS speech server": lambda: tts_served.synthesize(CLAUSE),
    }
    times: dict[str, list[float]] = {way: [] for way in ways}
    try:
        for index in range(args.runs + 1):
            for pair in (list(ways)[:3], list(ways)[3:]):
                for way in pair if index % 2 == 0 else reversed(pair):
                    ms = _ms(ways[way])
                    if index:  # the first round warms every path and is not counted
                        times[way].append(ms)
    finally:
        if host.supervisor is not None:
            host.supervisor.stop()
    print(f"Whisper {name}, Piper joe; {args.runs} runs each, interleaved; "
          f"{os.cpu_count()} cores; server start (load and warm) {served_load_s:.1f} s")
    print(f"{'':30} {'median ms':>10} {'p99 ms':>8}")
    for way, values in times.items():
        print(f"{way:30} {statistics.median(values):10.1f} {_pct(values, 0.99):8.1f}")
    for local, served in (("STT in-process WhisperStt", "STT speech server"),
                          ("STT in-process server decode", "STT speech server"),
                          ("TTS in-process PiperTts", "TTS speech server")):
        added = [s - b for s, b in zip(times[served], times[local], strict=True)]
        print(f"{served} - {local} (paired): median {statistics.median(added):+.1f} ms, "
              f"p99 {_pct(added, 0.99):+.1f} ms")


if __name__ == "__main__":
    main()
