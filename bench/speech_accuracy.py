"""Word error rate, entity accuracy and STT latency on the telephone-band corpus.

For each language x voice x channel x model x biasing setting: WER against the reference,
entity accuracy (the right vehicle and part category, and the part number where one was
said, reach the parts tool through the router's matchers), and STT latency p50/p95.
Biasing settings: plain; hotwords (the catalog's words as faster-whisper hotwords);
prompt (the same words as Whisper's initial prompt); each also with entity correction.
These measure the catalog utterances only.

``--strategies`` (issue 17) compares whole biasing strategies on catalog *and* plain
utterances instead: WER on plain questions, WER and entity accuracy on catalog ones, how
often the catalog test fired, and STT latency including correction and a second pass
(see STRATEGIES). Each Whisper pass (unbiased, full prompt, short prompt) runs once per
recording and the strategies are assembled from them, timed as they would run in turn.

Run: .venv/bin/python bench/speech_corpus.py && .venv/bin/python bench/speech_accuracy.py
     [--corpus var/speech-corpus] [--models base,small,tiny.en] [--limit 10]
     [--strategies all --models base --languages en --channels clean]
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _setup() -> None:
    os.environ.update(TOM_DATA_DIR=tempfile.mkdtemp(prefix="tom-speech-"),
                      TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    # Whisper in this process: the speech server (TOM_INFERENCE=process) would add its
    # HTTP round trip to every latency measured here.
    os.environ.setdefault("TOM_STT_BACKEND", "whisper")
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


def entity_ok(text: str, item: dict[str, object], vehicles: Sequence[Any],
              categories: Sequence[Any], keys: Mapping[tuple[str, ...], int]) -> bool:
    from toolhub import matching
    from toolhub.router import PART_NUMBER

    entities = item["entities"]
    if not isinstance(entities, dict):
        raise TypeError("corpus.json: entities must be an object")
    expected_vehicle = keys[tuple(entities["vehicle"])]
    found = [m for m in matching.vehicle_match(text, vehicles) if m.score >= 0.6]
    if not found or found[0].key != expected_vehicle:
        return False
    if entities["category"]:
        cats = matching.category_match(text, categories)
        slugs = {c.pk: slug for slug, c in _category_keys().items()}  # type: ignore[attr-defined]
        if not cats or slugs.get(cats[0].key) != entities["category"]:
            return False
    number = entities.get("part_number")
    if number:
        said = PART_NUMBER.search(text)
        return said is not None and re.sub(r"\D", "", said.group(1)) == str(number).split("-")[-1]
    return True


def _category_keys() -> dict[str, object]:
    from toolhub.models import PartCategory

    return {c.slug: c for c in PartCategory.objects.all()}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# name: (Whisper passes, what it does). "corr": toolhub.entities.correct after STT;
# "cond": the unbiased pass first, the biased one only when the catalog test fires.
STRATEGIES = {
    "off": ("off", "unbiased"),
    "off+corr": ("off", "unbiased, then entity correction"),
    "prompt": ("prompt", "the catalog's words as the prompt (TOM_STT_BIAS=prompt)"),
    "prompt+corr": ("prompt", "prompt, then correction: today's default"),
    "short+corr": ("short", "a short prompt (--short-prompt), then correction"),
    "cond+corr": ("off,prompt", "unbiased; if the catalog test fires, a second pass with "
                                "the prompt, then correction"),
    "cond-loose+corr": ("off,prompt", "as cond+corr with the loose catalog test"),
    "cond-short+corr": ("off,short", "as cond+corr with the short prompt"),
    "off+corr-if-catalog": ("off", "unbiased; correction only if the catalog test fires"),
}
SHORT_PROMPT = "Car parts: VW Golf, Passat, BMW, Audi, Ford Focus, Skoda, brake pads, filters."


def catalog_looking(text: str, *, vocabulary: object, language: str, vehicles: Sequence[Any],
                    categories: Sequence[Any], makes: frozenset[str], loose: bool) -> str:
    """Why ``text`` reads as a catalog request ('' when it does not), with the router's
    own matchers: a part number, a part category, a catalog vehicle as sure as the router
    wants it (model plus make or generation) or a catalog make. ``loose`` also takes a
    model name alone and any word entity correction would rewrite (a near miss): both
    measured to fire on plain English ("ship to Austria" is the Opel Astra)."""
    from toolhub import matching
    from toolhub.entities import correct
    from toolhub.router import PART_NUMBER, VEHICLE_MIN_SCORE

    if PART_NUMBER.search(text) or re.search(r"\bpart\s*numbers?\b", text, re.IGNORECASE):
        return "number"
    if matching.category_match(text, categories):
        return "category"
    found = matching.vehicle_match(text, vehicles)
    if any(m.score >= VEHICLE_MIN_SCORE for m in found) or (loose and found):
        return "vehicle"
    if makes & set(matching.tokens(text)):
        return "make"
    if loose and correct(text, vocabulary, language=language)[1]:  # type: ignore[arg-type]
        return "near-miss"
    return ""


def _timed(fn: object, *args: object, **kwargs: object) -> tuple[object, float]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)  # type: ignore[operator]
    return value, (time.perf_counter() - started) * 1000


def _strategies_run(args: argparse.Namespace, items: list[dict[str, object]]) -> None:
    """Issue 17: every strategy on catalog and plain utterances (see the module doc)."""
    from toolhub.catalog import catalog_vocabulary, category_terms, vehicle_terms
    from toolhub.entities import correct
    from toolhub.matching import MAKE_ALIASES, fold
    from toolhub.models import Vehicle
    from voice import stt
    from voice.client import read_wav

    names = list(STRATEGIES) if args.strategies == "all" else args.strategies.split(",")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    passes = list(dict.fromkeys(p for n in names for p in STRATEGIES[n][0].split(",")))
    vehicles, categories = vehicle_terms(), category_terms()
    keys: dict[tuple[str, ...], int] = {(v.make, v.model, v.generation): v.pk
                                        for v in Vehicle.objects.all()}
    makes = frozenset({fold(v.make).split()[0] for v in Vehicle.objects.all()}
                      | {alias for alias in MAKE_ALIASES if " " not in alias})
    rows: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    model = args.models.split(",")[0]
    engine = stt.get_stt(model)
    tokenizer = getattr(getattr(engine, "model", None), "hf_tokenizer", None)
    short_tokens = len(tokenizer.encode(" " + args.short_prompt).ids) if tokenizer else -1
    first = items[0]
    engine.transcribe(read_wav(args.corpus / str(first["wav"]), rate=8000), rate=8000,
                      language=str(first["language"]))  # warm-up, not counted
    for item in items:
        language, kind = str(item["language"]), str(item.get("kind", "catalog"))
        vocabulary = catalog_vocabulary(language=language)
        hints = {"off": {}, "prompt": {"prompt": vocabulary.prompt(language)},
                 "short": {"prompt": args.short_prompt}}
        pcm = read_wav(args.corpus / str(item["wav"]), rate=8000)
        heard: dict[str, tuple[str, float]] = {}
        for name in passes:
            result, ms = _timed(engine.transcribe, pcm, rate=8000, language=language,
                                **hints[name])
            heard[name] = (result.text, ms)  # type: ignore[attr-defined]

        tests = {loose: _timed(catalog_looking, heard["off"][0] if "off" in heard else "",
                               vocabulary=vocabulary, language=language, vehicles=vehicles,
                               categories=categories, makes=makes, loose=loose)
                 for loose in (False, True)}
        off_ms = heard["off"][1] if "off" in heard else float("nan")
        for name in names:
            steps = STRATEGIES[name][0].split(",")
            text, ms = heard[steps[0]]
            tested = name.startswith(("cond", "off+corr-if"))
            why, test_ms = tests["loose" in name]
            if tested:
                ms += test_ms
            if name.startswith("cond") and why:
                text, second_ms = heard[steps[1]]
                ms += second_ms
            raw = text
            if (name.endswith("+corr") and (why or not name.startswith("cond"))) or (
                    name == "off+corr-if-catalog" and why):
                fix, fix_ms = _timed(correct, text, vocabulary, language=language)
                text = fix[0]  # type: ignore[index]
                ms += fix_ms
            row = rows[(str(item["voice"]), name, kind)]
            row["wer"].append(wer(str(item["text"]), text))
            row["ms"].append(ms)
            row["added"].append(ms - off_ms)
            row["changed"].append(float(text != raw))
            if tested:
                row["triggered"].append(float(bool(why)))
            if kind == "catalog":
                row["entity"].append(float(entity_ok(text, item, vehicles, categories, keys)))
            if dump:
                dump.write(json.dumps({"wav": item["wav"], "kind": kind, "strategy": name,
                                       "reference": item["text"], "heard": text,
                                       "catalog_test": why, "ms": round(ms),
                                       "wer": row["wer"][-1]}, ensure_ascii=False) + "\n")
        print(f"{item['wav']} [{tests[False][0] or '-'}/{tests[True][0] or '-'}]: "
              + " | ".join(f"{n} {t[1]:.0f} ms {t[0][:50]!r}" for n, t in heard.items()),
              file=sys.stderr, flush=True)
    _strategies_report(args, items, rows, names, model=model, short_tokens=short_tokens)


def _strategies_report(args: argparse.Namespace, items: list[dict[str, object]],
                       rows: dict[tuple[str, str, str], dict[str, list[float]]],
                       names: list[str], *, model: str, short_tokens: int) -> None:
    def mean(values: list[float]) -> str:
        return f"{statistics.fmean(values):.1%}" if values else "-"

    def p50(values: list[float]) -> str:
        return f"{_pct(values, 0.5):.0f}" if values else "-"

    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[str(item.get("kind", "catalog"))] += 1
    recordings = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    print(f"\nModel {model}; {len({i['id'] for i in items})} utterances, recordings: "
          f"{recordings}; {os.cpu_count()} cores; short prompt ({short_tokens} tokens): "
          f"{args.short_prompt!r}\n")
    for name in names:
        print(f"- `{name}`: {STRATEGIES[name][1]}")
    voices = sorted({v for v, _n, _k in rows})
    print("\nWER: mean per utterance. Entity: the right vehicle, category and part number "
          "reach the parts tool (router matchers). Test fired: how often the catalog test "
          "sent the transcript to the second pass / correction. Changed: transcripts "
          "correction rewrote. ms: STT passes + catalog test + correction, p50. +ms: what "
          "the strategy adds to the unbiased pass on the same recording (so machine load "
          "that drifts during the run cancels out), p50 per kind and mean over both.\n")
    print("| voice | strategy | plain WER | plain changed | plain test fired | catalog WER | "
          "entity | catalog test fired | p50 ms plain | p50 ms catalog | +ms p50 plain | "
          "+ms p50 catalog | +ms mean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for voice in [*voices, "all"]:
        for name in names:
            got: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
            for (v, n, kind), data in rows.items():
                if n == name and voice in (v, "all"):
                    for field, values in data.items():
                        got[kind][field] += values
            plain, cat = got["plain"], got["catalog"]
            added = plain["added"] + cat["added"]
            print(f"| {voice} | {name} | {mean(plain['wer'])} | {mean(plain['changed'])} | "
                  f"{mean(plain['triggered'])} | {mean(cat['wer'])} | {mean(cat['entity'])} | "
                  f"{mean(cat['triggered'])} | {p50(plain['ms'])} | {p50(cat['ms'])} | "
                  f"{p50(plain['added'])} | {p50(cat['added'])} | "
                  f"{statistics.fmean(added) if added else float('nan'):.0f} |")


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
    parser.add_argument("--languages", default="", help="only these languages (en,de)")
    parser.add_argument("--channels", default="", help="only these channels (clean,noisy20)")
    parser.add_argument("--strategies", default="",
                        help="issue 17: compare these biasing strategies (or 'all': "
                             f"{', '.join(STRATEGIES)}) on catalog and plain utterances "
                             "with the first of --models, instead of --bias")
    parser.add_argument("--short-prompt", default=SHORT_PROMPT,
                        help="the prompt of the short+corr and cond-short+corr strategies")
    args = parser.parse_args()
    _setup()
    from toolhub.catalog import catalog_vocabulary, category_terms, vehicle_terms
    from toolhub.entities import correct
    from toolhub.models import Vehicle
    from voice import models, stt
    from voice.client import read_wav

    items = json.loads((args.corpus / "corpus.json").read_text())
    if args.limit:
        keep = {i["id"] for i in items if int(str(i["id"]).rsplit("-", 1)[1]) < args.limit}
        items = [i for i in items if i["id"] in keep]
    if args.voices:
        items = [i for i in items if any(v in str(i["voice"]) for v in args.voices.split(","))]
    if args.languages:
        items = [i for i in items if i["language"] in args.languages.split(",")]
    if args.channels:
        items = [i for i in items if i["channel"] in args.channels.split(",")]
    if args.strategies:
        _strategies_run(args, items)
        return
    # The biasing settings compare entities: catalog utterances only (the plain ones
    # have none; --strategies measures them).
    items = [i for i in items if i.get("kind", "catalog") == "catalog"]
    vehicles, categories = vehicle_terms(), category_terms()
    keys: dict[tuple[str, ...], int] = {(v.make, v.model, v.generation): v.pk
                                        for v in Vehicle.objects.all()}
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
    for row_key in sorted(results):
        data = results[row_key]
        print(f"| {' | '.join(row_key)} | {len(data['wer'])} | {statistics.fmean(data['wer']):.1%} "
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
    for group in sorted(summary):
        data = summary[group]
        print(f"| {' | '.join(group)} | {len(data['wer'])} | {statistics.fmean(data['wer']):.1%} "
              f"| {statistics.fmean(data['entity']):.0%} | {_pct(data['ms'], 0.5):.0f} | "
              f"{_pct(data['ms'], 0.95):.0f} |")


if __name__ == "__main__":
    main()
