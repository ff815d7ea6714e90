"""Caller WAVs for the latency comparison (bench/voice_latency.py, bench/peer_pipecat.py).

Twelve questions, half about parts in the sample catalog (the router looks them up) and
half plain (no tool), each spoken once by the packaged Piper voice and once by espeak-ng,
over a telephone line: 8 kHz, mu-law round trip, 0.3 s of silence before and after. Four
more (``pause-*``) stop for 300-700 ms in the middle of the sentence (after "for a",
recalling the car; or at a phrase boundary): an agent that answers during that pause has
cut the caller off.

Run: .venv/bin/python bench/latency_corpus.py --out var/latency-wavs
Nothing is downloaded; the same command writes the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RATE = 8000
EDGE_S = 0.3
# (name, text, kind): "parts" questions name a vehicle and a part of the sample catalog.
QUESTIONS = [
    ("hours", "What are your opening hours on Saturday?", "plain"),
    ("delivery", "Do you deliver to Hamburg, and how long does it take?", "plain"),
    ("returns", "Can I return a part that I have not used?", "plain"),
    ("pickup", "Can I pick up my order tomorrow morning?", "plain"),
    ("golf-pads", "Do you have brake pads for a Volkswagen Golf seven?", "parts"),
    ("focus-filter", "How much is an oil filter for a Ford Focus three?", "parts"),
]
VOICES = [("piper", "joe-medium", 0), ("espeak", "en-us", 165)]
# Said with a pause in the middle: the first half, the pause, the second half. Two stop
# where the sentence cannot end (a caller recalling the car's name), two at a phrase
# boundary where it could.
PAUSED = [
    ("pause-golf", "Do you have brake pads for a", 0.7, "Volkswagen Golf seven?", "piper"),
    ("pause-focus", "How much is an oil filter for my", 0.6, "Ford Focus three?", "espeak"),
    ("pause-hours", "What are your opening hours", 0.35, "on Saturday?", "piper"),
    ("pause-return", "Can I return a part", 0.3, "that I have not used?", "espeak"),
]


def _line(pcm: bytes, rate: int) -> bytes:
    from voice.dsp import g711
    from voice.dsp.resample import resample

    return g711.ulaw_decode(g711.ulaw_encode(resample(pcm, rate, RATE)))


def _speak(engine: str, voice: str, wpm: int, text: str) -> bytes:
    from voice import tts

    speaker = tts.caller_voice() if engine == "piper" else tts.EspeakTts(voice, speed_wpm=wpm)
    return _line(speaker.synthesize(text), speaker.rate)


def _silence(seconds: float) -> bytes:
    return b"\0\0" * round(seconds * RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "latency-wavs")
    args = parser.parse_args()
    os.environ.setdefault("TOM_DATA_DIR", tempfile.mkdtemp(prefix="tom-latency-corpus-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from voice.client import write_wav

    args.out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, text, kind in QUESTIONS:
        for engine, voice, wpm in VOICES:
            pcm = _silence(EDGE_S) + _speak(engine, voice, wpm, text) + _silence(EDGE_S)
            path = args.out / f"{name}-{engine}.wav"
            write_wav(path, pcm, RATE)
            index.append({"wav": path.name, "text": text, "kind": kind, "voice": engine})
    by_engine = {engine: (voice, wpm) for engine, voice, wpm in VOICES}
    for name, first, pause, second, engine in PAUSED:
        voice, wpm = by_engine[engine]
        pcm = (_silence(EDGE_S) + _speak(engine, voice, wpm, first) + _silence(pause)
               + _speak(engine, voice, wpm, second) + _silence(EDGE_S))
        path = args.out / f"{name}-{engine}.wav"
        write_wav(path, pcm, RATE)
        index.append({"wav": path.name, "text": f"{first} {second}", "kind": "pause",
                      "voice": engine, "pause_s": pause})
    (args.out / "corpus.json").write_text(json.dumps(index, indent=1))
    print(f"{len(index)} WAVs in {args.out}")


if __name__ == "__main__":
    main()
