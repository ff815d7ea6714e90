"""How well callers can understand TOM's own voice: Whisper's WER on the agent's speech.

Each engine speaks the same agent replies (catalog answers, fillers, the greeting);
the audio goes through the telephone channel the caller hears (300-3400 Hz, 8 kHz,
mu-law; clean and 20 dB SNR) and Whisper base transcribes it. A listener model is a
stand-in for a caller: what Whisper cannot make out, a caller on a phone line will
struggle with too. Reported per engine: WER, key-term recall (vehicle, part, part number,
price), synthesis time per second of audio.

German engines: espeak-ng ``de`` at several speeds and voice variants, and any Piper
voice given with --piper-voice (no German Piper voice is published on the registries
these machines reach; the packaged English voice reading German is measured as the
floor a wrong configuration gives). English: the packaged Piper voice against
espeak-ng, which shows what a Piper voice in the caller's language gains over espeak.

Run: .venv/bin/python bench/agent_speech.py [--piper-voice /path/de_DE-voice.onnx]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# What TOM says on a parts call, with the words a caller must catch.
REPLIES = {
    "de": [
        ("Guten Tag, hier ist Tom von der Teilehotline. Wie kann ich helfen?",
         ["tom", "teilehotline"]),
        ("Einen Moment, ich schaue nach.", ["moment"]),
        ("Ja, wir haben Bremsbeläge für den VW Golf sieben.", ["bremsbelaege", "golf", "7"]),
        ("Die Teilenummer ist TP 10098, der Preis ist 46 Euro.", ["10098", "46", "euro"]),
        ("Zwei Stück sind auf Lager, die Lieferung dauert einen Tag.", ["2", "lager"]),
        ("Für den BMW Dreier F30 haben wir Stoßdämpfer vorne und hinten.",
         ["bmw", "f30", "stossdaempfer"]),
        ("Die Bremsscheiben für den Ford Focus kosten 89 Euro das Paar.",
         ["bremsscheiben", "ford", "focus", "89"]),
        ("Leider haben wir keine Zündkerzen für den Opel Corsa E auf Lager.",
         ["zuendkerzen", "opel", "corsa"]),
        ("Möchten Sie die Batterie für Ihren Mercedes C-Klasse bestellen?",
         ["batterie", "mercedes"]),
        ("Ich verbinde Sie jetzt mit einem Kollegen.", ["verbinde", "kollegen"]),
    ],
    "en": [
        ("Hello, this is Tom from the parts hotline. How can I help?", ["tom", "parts"]),
        ("One moment, let me check.", ["moment"]),
        ("Yes, we have brake pads for the VW Golf seven.", ["brake", "pads", "golf", "7"]),
        ("The part number is TP 10098, the price is 46 euros.", ["10098", "46"]),
        ("Two are in stock, and delivery takes one day.", ["2", "stock"]),
        ("For the BMW three series F30 we have front and rear shock absorbers.",
         ["bmw", "f30", "shock"]),
        ("Brake discs for the Ford Focus cost 89 euros a pair.",
         ["discs", "ford", "focus", "89"]),
        ("Sorry, we have no spark plugs for the Opel Corsa E in stock.",
         ["spark", "opel", "corsa"]),
        ("Would you like to order the battery for your Mercedes C-Class?",
         ["battery", "mercedes"]),
        ("I am putting you through to a colleague now.", ["colleague"]),
    ],
}


def _setup() -> None:
    os.environ.update(TOM_DATA_DIR=tempfile.mkdtemp(prefix="tom-agent-speech-"),
                      TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from voice import models

    models.assemble("whisper-base")


def _words(text: str) -> list[str]:
    from toolhub.matching import tokens

    # "TP-10098", "10.098" and "10 098" are one number however Whisper writes it.
    return tokens(re.sub(r"(?<=\d)[.\s](?=\d{3}\b)", "", text.replace("-", " ")))


def engines(piper_voices: list[Path]) -> list[tuple[str, str, object]]:
    """(language, label, engine) for every engine to compare."""
    from voice import models, tts

    out: list[tuple[str, str, object]] = []
    for speed in (130, 160, 190):
        out.append(("de", f"espeak-ng de @{speed} wpm", tts.EspeakTts("de", speed_wpm=speed)))
    for variant in ("de+m3", "de+f2", "de+klatt3"):
        out.append(("de", f"espeak-ng {variant} @160 wpm", tts.EspeakTts(variant)))
    for path in piper_voices:
        out.append(("de", f"Piper {path.stem}", tts.PiperTts(path)))
    packaged = models.piper_voice_path()
    if packaged not in piper_voices:
        out.append(("de", f"Piper {packaged.stem} (English voice, German text)",
                    tts.PiperTts(packaged)))
    out.append(("en", f"Piper {packaged.stem}", tts.PiperTts(packaged)))
    for speed in (160,):
        out.append(("en", f"espeak-ng en-us @{speed} wpm", tts.EspeakTts("en-us",
                                                                         speed_wpm=speed)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--piper-voice", type=Path, action="append", default=[],
                        help="a Piper .onnx voice to compare (repeatable)")
    args = parser.parse_args()
    _setup()
    sys.path.insert(0, str(REPO / "bench"))
    from speech_corpus import telephone

    from voice import stt
    from voice.wer import word_error_rate

    listener = stt.get_stt("base")
    rows = []
    for language, label, engine in engines(args.piper_voice):
        scores: dict[str, list[float]] = {"clean": [], "noisy20": [], "terms": [],
                                          "rtf": []}
        for index, (text, terms) in enumerate(REPLIES[language]):
            started = time.perf_counter()
            pcm = engine.synthesize(text)  # type: ignore[attr-defined]
            synth_s = time.perf_counter() - started
            rate = engine.rate  # type: ignore[attr-defined]
            scores["rtf"].append(synth_s / (len(pcm) / 2 / rate))
            for channel, snr in (("clean", None), ("noisy20", 20.0)):
                line = telephone(pcm, rate, snr_db=snr, seed=index)
                heard = listener.transcribe(line, rate=8000, language=language).text
                scores[channel].append(word_error_rate(_words(text), _words(heard)))
                if channel == "clean":
                    said = set(_words(heard))
                    scores["terms"].append(sum(t in said for t in terms) / len(terms))
                print(f"{label} {channel}: {heard!r}", file=sys.stderr, flush=True)
        rows.append((language, label, scores))
    print(f"\n{len(REPLIES['de'])} German and {len(REPLIES['en'])} English agent replies, "
          f"Whisper base as the listener, telephone channel; {os.cpu_count()} cores\n")
    print("| language | engine | WER clean | WER noisy 20 dB | key terms heard (clean) | "
          "synthesis s per audio s (median) |")
    print("|---|---|---|---|---|---|")
    for language, label, scores in rows:
        print(f"| {language} | {label} | {statistics.fmean(scores['clean']):.1%} | "
              f"{statistics.fmean(scores['noisy20']):.1%} | "
              f"{statistics.fmean(scores['terms']):.0%} | "
              f"{statistics.median(scores['rtf']):.3f} |")


if __name__ == "__main__":
    main()
