"""Word error rate, entity accuracy and STT latency on the telephone-band corpus.

For each language x voice x channel x model x biasing setting: WER against the reference,
entity accuracy (the right vehicle and part category, and the part number where one was
said, reach the parts tool through the router's matchers), and STT latency p50/p95.
Biasing settings: plain; hotwords (the catalog's words as faster-whisper hotwords);
prompt (the same words as Whisper's initial prompt); each also with entity correction.

Run: .venv/bin/python bench/speech_corpus.py && .venv/bin/python bench/speech_accuracy.py
     [--corpus var/speech-corpus] [--models base,small,tiny.en] [--limit 10]
A model that cannot load (small's packages are truncated) is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _setup() -> None:
    os.environ.update(TOM_DATA_DIR=tempfile.mkdtemp(prefix="tom-speech-"),
                      TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("tom_models", stdout=open(os.devnull, "w"))  # noqa: SIM115
    from toolhub.catalog import parts_import_csv
    from toolhub.sampledocs import DATA

    parts_import_csv(text=(DATA / "sample_parts.csv").read_text(encoding="utf-8"))


ROMAN = {"ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8"}


def words(text: str) -> list[str]:
    """Words as the parts tool reads them, so WER counts what was misheard rather than
    how it was written: number words and Roman generations as digits, and a part number
    spelt out ("T P one two four nine three") as the one token Whisper writes (TP12493)."""
    from toolhub.matching import tokens

    raw = [ROMAN.get(word, word) if i else word for i, word in enumerate(tokens(text))]
    out: list[str] = []
    i = 0
    while i < len(raw):
        end = i + 1
        if raw[i].isalpha() and len(raw[i]) <= 2:  # "t p 1 2 4", "pp 12493"
            while end < len(raw) and raw[end].isalpha() and len(raw[end]) == 1:
                end += 1
            letters = end
            while end < len(raw) and raw[end].isdigit():
                end += 1
            if end == letters:
                end = i + 1
        out.append("".join(raw[i:end]))
        i = end
    return out


def wer(reference: str, hypothesis: str) -> float:
    from voice.wer import word_error_rate

    return word_error_rate(words(reference), words(hypothesis))


def entity_ok(text: str, item: dict[str, object], vehicles: list[object],
              categories: list[object], keys: dict[tuple[str, ...], int]) -> bool:
    from toolhub import matching
    from toolhub.router import PART_NUMBER

    entities = item["entities"]
    if not isinstance(entities, dict):
        raise TypeError("corpus.json: entities must be an object")
    expected_vehicle = keys[tuple(entities["vehicle"])]
    found = [m for m in matching.vehicle_match(text, vehicles) if m.score >= 0.6]  # type: ignore[arg-type]
    if not found or found[0].key != expected_vehicle:
        return False
    if entities["category"]:
        cats = matching.category_match(text, categories)  # type: ignore[arg-type]
        slugs = {c.pk: slug for slug, c in _category_keys().items()}  # type: ignore[attr-defined]
        if not cats or slugs.get(cats[0].key) != entities["category"]:
            return False
    number = entities.get("part_number")
    if number:
        said = PART_NUMBER.search(text)
        return bool(said) and re.sub(r"\D", "", said.group(1)) == str(number).split("-")[-1]
    return True


def _category_keys() -> dict[str, object]:
    from toolhub.models import PartCategory

    return {c.slug: c for c in PartCategory.objects.all()}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "var" / "speech-corpus")
    parser.add_argument("--models", default="base,small,tiny.en")
    parser.add_argument("--bias", default="plain,hotwords,prompt",
                        help="biasing settings to compare (plain, hotwords, prompt)")
    parser.add_argument("--limit", type=int, default=0,
                        help="utterances per language (0: all in the corpus)")
    parser.add_argument("--voices", default="",
                        help="only voices containing one of these (comma-separated)")
    parser.add_argument("--dump", type=Path,
                        help="write every transcription (JSON lines) here, to study failures")
    args = parser.parse_args()
    _setup()
    from toolhub.catalog import catalog_vocabulary, category_terms, vehicle_terms
    from toolhub.entities import correct
    from toolhub.models import Vehicle
    from voice import models, stt
    from voice.client import read_wav

    items = json.loads((args.corpus / "corpus.json").read_text())
    if args.limit:
        keep = {i["id"] for i in items if int(str(i["id"]).split("-")[1]) < args.limit}
        items = [i for i in items if i["id"] in keep]
    if args.voices:
        items = [i for i in items if any(v in str(i["voice"]) for v in args.voices.split(","))]
    vehicles, categories = vehicle_terms(), category_terms()
    keys = {(v.make, v.model, v.generation): v.pk for v in Vehicle.objects.all()}
    results: dict[tuple[str, ...], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    unavailable: dict[str, str] = {}
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    for model in args.models.split(","):
        try:
            if model == "small":
                models.assemble("whisper-small")
            engine = stt.get_stt(model)
        except (models.ModelError, RuntimeError) as exc:
            unavailable[model] = str(exc)
            print(f"{model}: not measured: {exc}", file=sys.stderr, flush=True)
            continue
        for item in items:
            language = str(item["language"])
            if model.endswith(".en") and language != "en":
                continue
            vocabulary = catalog_vocabulary(language=language)
            pcm = read_wav(args.corpus / str(item["wav"]), rate=8000)
            for bias in args.bias.split(","):
                hints = {"hotwords": {"hotwords": vocabulary.hotwords()},
                         "prompt": {"prompt": vocabulary.prompt(language)}}.get(bias, {})
                started = time.perf_counter()
                heard = engine.transcribe(pcm, rate=8000, language=language, **hints).text
                ms = (time.perf_counter() - started) * 1000
                for fix in (False, True):
                    text = correct(heard, vocabulary, language=language)[0] if fix else heard
                    setting = bias + (" + correction" if fix else "")
                    key = (language, str(item["voice"]), str(item["channel"]), model, setting)
                    results[key]["wer"].append(wer(str(item["text"]), text))
                    results[key]["entity"].append(float(entity_ok(
                        text, item, vehicles, categories, keys)))
                    results[key]["ms"].append(ms)
                    if dump:
                        dump.write(json.dumps({
                            "wav": item["wav"], "model": model, "setting": setting,
                            "reference": item["text"], "heard": text,
                            "wer": results[key]["wer"][-1],
                            "entity": results[key]["entity"][-1]}, ensure_ascii=False) + "\n")
                print(f"{model} {item['wav']} {bias}: {ms:.0f} ms: {heard[:70]!r}",
                      file=sys.stderr, flush=True)
    print(f"\n{len({i['id'] for i in items})} utterances, {len(items)} recordings, "
          f"{os.cpu_count()} cores\n")
    for model, reason in unavailable.items():
        print(f"Not measured: {model}: {reason}\n")
    print("| language | voice | channel | model | biasing | n | WER | entity accuracy | "
          "STT p50 ms | STT p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(results):
        data = results[key]
        print(f"| {' | '.join(key)} | {len(data['wer'])} | {statistics.fmean(data['wer']):.1%} "
              f"| {statistics.fmean(data['entity']):.0%} | {_pct(data['ms'], 0.5):.0f} | "
              f"{_pct(data['ms'], 0.95):.0f} |")
    print("\nBy language, channel, model and biasing (all voices):")
    summary: dict[tuple[str, ...], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    for (language, _voice, channel, model, setting), data in results.items():
        for name, values in data.items():
            summary[(language, channel, model, setting)][name] += values
    print("| language | channel | model | biasing | n | WER | entity accuracy | "
          "STT p50 ms | STT p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(summary):
        data = summary[key]
        print(f"| {' | '.join(key)} | {len(data['wer'])} | {statistics.fmean(data['wer']):.1%} "
              f"| {statistics.fmean(data['entity']):.0%} | {_pct(data['ms'], 0.5):.0f} | "
              f"{_pct(data['ms'], 0.95):.0f} |")


if __name__ == "__main__":
    main()
