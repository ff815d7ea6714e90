"""Entity correction's cost per utterance: this tree's ``toolhub.entities.correct`` against
the one at a git ref (HEAD by default), in one run.

One 15-word German and one 15-word English caller utterance, each naming catalog terms
with Whisper's usual slips, corrected against the sample catalog's vocabulary (built by
``catalog_vocabulary`` from the shipped CSV in a throwaway SQLite database) and against
one ten times as large (the same terms plus made-up vehicles and parts). Old and new
calls alternate so both see the same machine load; a table of medians and their ratio
is printed, and the corrected texts of both, which should agree.

Run: .venv/bin/python bench/entity_correction.py [--ref HEAD] [--repeat 100] [--scale 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

UTTERANCES = {
    "de": "Ich brauche Bremsbelege und Bremsscheiben für einen Volkswagon Golf sieben "
          "von 2015, haben Sie das?",
    "en": "Do you have break pads and brake disks for a Volkswagon Golf seven from "
          "2015?",
}
_SYLLABLES = ("ba", "ko", "ri", "tan", "vel", "mo", "zu", "gra", "li", "sen", "dor", "pe",
              "fa", "kru", "ne", "sto", "wi", "lan", "che", "tho")


def _setup() -> None:
    # A database of its own: the shared PostgreSQL and Redis are not needed to time a
    # pure function, and the sample catalog must not land in someone else's data.
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(TOM_DATA_DIR=tempfile.mkdtemp(prefix="tom-entities-"),
                      TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from toolhub.catalog import parts_import_csv
    from toolhub.sampledocs import DATA

    report = parts_import_csv(text=(DATA / "sample_parts.csv").read_text(encoding="utf-8"))
    if not report.ok:
        raise SystemExit(f"sample catalog did not import: {report.errors}")


def old_module(ref: str) -> ModuleType:
    """``toolhub/entities.py`` as it is at ``ref``, imported under another name."""
    source = subprocess.run(["git", "show", f"{ref}:toolhub/entities.py"],  # noqa: S607
                            cwd=REPO, check=True, capture_output=True, text=True).stdout
    name = "entities_at_ref"
    spec = importlib.util.spec_from_loader(name, loader=None)
    if spec is None:
        raise RuntimeError("no module spec for the old source")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while decorating
    exec(compile(source, f"{ref}:toolhub/entities.py", "exec"), module.__dict__)  # noqa: S102
    return module


def enlarged(vocabulary: Any, *, scale: int, seed: int = 7) -> Any:
    """A copy of ``vocabulary`` with made-up terms until it holds ``scale`` times as many,
    one to three words each in the catalog's own proportion."""
    from toolhub.entities import Vocabulary

    rng = random.Random(seed)
    sizes = [len(term.split()) for term in vocabulary.terms]
    terms = list(vocabulary.terms)
    while len(terms) < scale * len(vocabulary.terms):
        words = [("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
                  .capitalize()) for _ in range(rng.choice(sizes))]
        terms.append(" ".join(words))
    return Vocabulary(terms=list(dict.fromkeys(terms)), canonical=dict(vocabulary.canonical),
                      hints=list(vocabulary.hints), part_numbers=dict(vocabulary.part_numbers))


def _median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def measure(old: ModuleType, vocabulary: Any, *, language: str,
            repeat: int) -> tuple[float, float, float, str, str]:
    """Median µs per call (old, new), the new one's first call (keying the terms), and
    what each wrote."""
    from toolhub.entities import correct

    text = UTTERANCES[language]
    started = time.perf_counter_ns()
    new_text, _ = correct(text, vocabulary, language=language)
    first = (time.perf_counter_ns() - started) / 1000
    old_text, _ = old.correct(text, vocabulary, language=language)
    old_ns, new_ns = [], []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        old.correct(text, vocabulary, language=language)
        old_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        correct(text, vocabulary, language=language)
        new_ns.append(time.perf_counter_ns() - started)
    return _median_us(old_ns), _median_us(new_ns), first, old_text, new_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="git ref of the old implementation")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per cell")
    parser.add_argument("--scale", type=int, default=10, help="size of the large vocabulary")
    args = parser.parse_args()
    _setup()
    from toolhub.catalog import catalog_vocabulary

    old = old_module(args.ref)
    rows, texts = [], []
    for language in ("de", "en"):
        sample = catalog_vocabulary(language=language)
        for label, vocabulary in (("sample", sample),
                                  (f"{args.scale}x", enlarged(sample, scale=args.scale))):
            old_us, new_us, first, old_text, new_text = measure(
                old, vocabulary, language=language, repeat=args.repeat)
            rows.append(f"| {language} | {label} | {len(vocabulary.terms)} | {old_us:,.0f} "
                        f"| {new_us:,.0f} | {old_us / new_us:.1f}x | {first:,.0f} |")
            texts.append(f"{language} {label}: old {old_text!r}\n{' ' * len(language)} "
                         f"{' ' * len(label)}  new {new_text!r}")
    words = {language: len(text.split()) for language, text in UTTERANCES.items()}
    print(f"Entity correction per utterance ({words['de']} words de, {words['en']} en), "
          f"median of {args.repeat}; old = {args.ref}, new = this tree\n")
    print("| lang | vocabulary | terms | old µs | new µs | old/new | new first call µs |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nWhat each wrote:\n" + "\n".join(texts))


if __name__ == "__main__":
    main()
