"""Whisper's encoder window: WER and STT time for each ``TOM_STT_WINDOW_S`` on the corpus.

Whisper pads every clip to 30 s; CTranslate2 encodes a shorter window
(voice.speech.whisper_batch.window_frames). For each window, every English clip of the
corpus (plain and catalog questions, clean channel) is transcribed unbiased, the windows
interleaved clip by clip so that the machine's load falls on all alike. Prints WER per
kind and voice, and the median STT time with its ratio to the 30 s window's.

Run: .venv/bin/python bench/speech_corpus.py --out var/speech-corpus
     .venv/bin/python bench/stt_window.py --corpus var/speech-corpus [--windows 30,10,6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "var" / "speech-corpus")
    parser.add_argument("--windows", default="30,10,6")
    parser.add_argument("--limit", type=int, default=0, help="clips per voice (0: all)")
    args = parser.parse_args()
    os.environ.update(TOM_DATA_DIR=tempfile.mkdtemp(prefix="tom-window-"),
                      TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1",
                      DJANGO_SETTINGS_MODULE="tomsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test import override_settings
    from speech_accuracy import wer

    from voice import stt
    from voice.client import read_wav

    windows = [int(w) for w in args.windows.split(",")]
    clips = [c for c in json.loads((args.corpus / "corpus.json").read_text())
             if c["language"] == "en" and c.get("channel", "clean") == "clean"]
    if args.limit:
        per_voice: dict[str, int] = defaultdict(int)
        kept = []
        for clip in clips:
            key = f"{clip['voice']}-{clip.get('kind', 'catalog')}"
            if per_voice[key] < args.limit:
                per_voice[key] += 1
                kept.append(clip)
        clips = kept
    stt.models.assemble("whisper-base")
    engine = stt.WhisperStt(stt.models.stt_model_dir("base"), device="cpu",
                            compute_type="int8", beam_size=settings.TOM_STT_BEAM_SIZE)
    errors: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    times: dict[int, list[float]] = defaultdict(list)
    for clip in clips:
        pcm = read_wav(args.corpus / clip["wav"], rate=16000)
        for window in windows:
            with override_settings(TOM_STT_WINDOW_S=window):
                heard = engine.transcribe(pcm, rate=16000, language="en")
            kind = clip.get("kind", "catalog")
            errors[(window, kind, clip["voice"])].append(wer(clip["text"], heard.text))
            times[window].append(heard.ms)
    print(f"\n{len(clips)} clips (English, clean), Whisper base int8, unbiased, "
          f"{os.cpu_count()} cores\n")
    print("| window s | kind | voice | n | WER |\n|---|---|---|---|---|")
    for (window, kind, voice), values in sorted(errors.items()):
        print(f"| {window} | {kind} | {voice} | {len(values)} | "
              f"{statistics.mean(values):.3f} |")
    base = statistics.median(times[30]) if 30 in times else None
    print("\n| window s | median STT ms | ratio to 30 s |\n|---|---|---|")
    for window in windows:
        median = statistics.median(times[window])
        print(f"| {window} | {median:.0f} | {median / base:.2f} |" if base
              else f"| {window} | {median:.0f} | - |")


if __name__ == "__main__":
    main()
