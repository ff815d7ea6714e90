"""Generate the telephone-band speech benchmark corpus (nothing is downloaded).

60 caller utterances, 30 English and 30 German, each naming catalog entities (vehicle,
part, often a part number or a quantity), plus 30 plain English questions that name
none (opening hours, delivery, returns, orders, payment: what catalog biasing must not
damage), spoken by every available voice (the Piper voice for English; espeak-ng en-us,
en-gb and de, each at 150 and 190 words a minute), passed through a telephone channel:
300-3400 Hz band-pass, 8 kHz, mu-law round trip, and a noisy copy at 20 dB SNR. Writes
WAVs plus corpus.json (reference text, language, kind: "catalog" or "plain", voice,
channel and, for catalog utterances, the entities: vehicle key, category slug, part
number) to --out.

Run: .venv/bin/python bench/speech_corpus.py --out var/speech-corpus [--plain 30]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolhub.sampledata import CATEGORIES, rows  # noqa: E402
from voice.client import write_wav  # noqa: E402
from voice.dsp import g711  # noqa: E402
from voice.dsp.resample import resample  # noqa: E402

RATE = 8000
NUMBERS = {"en": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
           "de": ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]}
ROMAN = {"II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8}
TEMPLATES = {
    "en": ["Do you have {part} for a {vehicle}?",
           "I need {qty} {part} for my {vehicle}, please.",
           "What do {part} for a {vehicle} cost?",
           "Is part number {number} in stock? It is for a {vehicle}.",
           "Hello, I'm looking for {part} that fit a {vehicle}."],
    "de": ["Haben Sie {part} für einen {vehicle}?",
           "Ich brauche {qty} {part} für meinen {vehicle}, bitte.",
           "Was kosten {part} für einen {vehicle}?",
           "Ist die Teilenummer {number} auf Lager? Sie ist für einen {vehicle}.",
           "Guten Tag, ich suche {part} für einen {vehicle}."],
}
# What else a car-parts shop's callers ask: no vehicle, part category or part number in
# them, so the catalog's words in Whisper's prompt can only hurt here (issue 17).
PLAIN_EN = [
    "What are your opening hours on Saturday?",
    "Are you open on Sunday?",
    "What time do you close today?",
    "Do you deliver to my home address?",
    "How much does delivery cost?",
    "How long does delivery usually take?",
    "Can I return something I ordered last week?",
    "I would like to send an item back. How do I do that?",
    "Where is my order? I ordered it on Monday.",
    "Has my order been shipped yet?",
    "Can I pay by credit card?",
    "Do you accept PayPal?",
    "Can I pay cash when I pick it up?",
    "What is your address?",
    "Where can I park when I come to the shop?",
    "Can I collect my order at the store this afternoon?",
    "I want to cancel my order, please.",
    "Can I speak to someone in the workshop?",
    "Do you offer a discount for garages?",
    "Can you send me the invoice by email?",
    "How do I get a refund?",
    "Is there a warranty on the things you sell?",
    "Could you call me back later today?",
    "My order number is eight one five five two. When will it arrive?",
    "Do you have a shop near the train station?",
    "I received the wrong item. What should I do?",
    "Can I change the delivery address for my order?",
    "Do you ship to Austria and Switzerland?",
    "Is it possible to order by phone?",
    "Thank you, that is all for today. Goodbye.",
]
VOICES = {"en": [("piper", "joe-medium", 0), ("espeak", "en-us", 150), ("espeak", "en-us", 190),
                 ("espeak", "en-gb", 150), ("espeak", "en-gb", 190)],
          "de": [("espeak", "de", 150), ("espeak", "de", 190)]}


def spoken_vehicle(make: str, model: str, generation: str, language: str,
                   rng: random.Random) -> str:
    """How a caller says it: "Volkswagen Golf seven", "VW Golf 7", "BMW 3 Series F30"."""
    number = ROMAN.get(generation)
    if number is not None:
        said = rng.choice([NUMBERS[language][number - 1], str(number)])
    else:
        said = generation
    make_said = "VW" if make == "Volkswagen" and rng.random() < 0.3 else make.split("-")[0]
    return f"{make_said} {model} {said}".strip()


def spoken_number(number: str, language: str) -> str:
    digits = number.split("-")[-1]
    return "T P " + " ".join(NUMBERS[language][int(d) - 1] if d != "0" else
                             ("zero" if language == "en" else "null") for d in digits)


def utterances(count: int = 30, seed: int = 11, *, plain: int = 30) -> list[dict[str, object]]:
    """The catalog utterances (``count`` per language), then ``plain`` plain English ones."""
    rng = random.Random(seed)  # a reproducible corpus
    parts = rows()
    out: list[dict[str, object]] = []
    for language in ("en", "de"):
        for index in range(count):
            row = rng.choice(parts)
            template = TEMPLATES[language][index % len(TEMPLATES[language])]
            category = next(c for c in CATEGORIES if c[0] == row["category"])
            part = category[1] if language == "en" else category[2]
            vehicle = spoken_vehicle(row["make"], row["model"], row["generation"], language, rng)
            qty = rng.choice(NUMBERS[language][1:4])
            text = template.format(part=part, vehicle=vehicle, qty=qty,
                                   number=spoken_number(row["part_number"], language))
            out.append({"id": f"{language}-{index:02d}", "language": language, "text": text,
                        "kind": "catalog",
                        "entities": {"vehicle": [row["make"], row["model"], row["generation"]],
                                     # a part number names the part; no category said
                                     "category": None if "{number}" in template
                                     else row["category"],
                                     "part_number": row["part_number"] if "{number}" in template
                                     else None}})
    out += [{"id": f"en-plain-{index:02d}", "language": "en", "text": text, "kind": "plain",
             "entities": None} for index, text in enumerate(PLAIN_EN[:plain])]
    return out


def telephone(pcm: bytes, rate: int, *, snr_db: float | None, seed: int) -> bytes:
    """300-3400 Hz band-pass at 8 kHz, optional white noise at ``snr_db``, mu-law."""
    narrow = np.frombuffer(resample(pcm, rate, RATE), dtype="<i2").astype(np.float64)
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(len(narrow), 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, len(narrow))
    if snr_db is not None:
        power = float(np.mean(band ** 2)) or 1.0
        noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)),
                                                   len(band))
        band = band + noise
    clipped = np.clip(band, -32768, 32767).astype("<i2").tobytes()
    return g711.ulaw_decode(g711.ulaw_encode(clipped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "speech-corpus")
    parser.add_argument("--per-language", type=int, default=30)
    parser.add_argument("--plain", type=int, default=len(PLAIN_EN),
                        help=f"plain (non-catalog) English questions, 0-{len(PLAIN_EN)}")
    args = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from voice import tts

    args.out.mkdir(parents=True, exist_ok=True)
    items = []
    corpus = utterances(args.per_language, plain=args.plain)
    for number, utterance in enumerate(corpus):
        language = str(utterance["language"])
        for engine, voice, speed in VOICES[language]:
            speaker = tts.caller_voice() if engine == "piper" else tts.EspeakTts(
                voice, speed_wpm=speed)
            pcm = speaker.synthesize(str(utterance["text"]))
            for channel, snr in (("clean", None), ("noisy20", 20.0)):
                name = f"{utterance['id']}-{voice}-{speed or 'x'}-{channel}.wav"
                write_wav(args.out / name, telephone(pcm, speaker.rate, snr_db=snr,
                                                     seed=number), RATE)
                items.append({**utterance, "voice": f"{engine}:{voice}"
                              + (f"@{speed}" if speed else ""), "channel": channel,
                              "wav": name})
    (args.out / "corpus.json").write_text(json.dumps(items, ensure_ascii=False, indent=1))
    print(f"{len(items)} recordings of {len(corpus)} utterances in {args.out}")


if __name__ == "__main__":
    main()
