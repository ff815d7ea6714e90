"""Retrieval quality and latency of ToolHub's tools on the shipped sample data.

44 caller questions, half German, half English: 20 for the parts lookup, 12 for the PDF
catalog, 12 for the knowledge base. Each goes through the router (as in a call) and the
tool; a hit@k is the right vehicle and category among the first k parts, the right
catalog page among the first k passages, or the right article among the first k
answers. Every call is timed REPEAT times; latency is per tool call, after one warm-up.

Run: .venv/bin/python bench/toolhub_retrieval.py   (prints a Markdown table)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (question, language, make model generation, category slug)
PARTS = [
    ("Do you have brake pads for a VW Golf 7?", "en", "Volkswagen Golf VII", "brake-pads"),
    ("I need brake discs for my Golf mark six.", "en", "Volkswagen Golf VI", "brake-discs"),
    ("How much is an oil filter for a BMW 3 Series F30?", "en", "BMW 3 Series F30",
     "oil-filter"),
    ("Spark plugs for a Ford Focus Mk3, please.", "en", "Ford Focus III", "spark-plugs"),
    ("Do you sell wiper blades for the Skoda Octavia four?", "en", "Skoda Octavia IV",
     "wiper-blades"),
    ("A battery for my 2016 Opel Astra K.", "en", "Opel Astra K", "battery"),
    ("What does a timing belt kit for a Passat B8 cost?", "en", "Volkswagen Passat B8",
     "timing-belt-kit"),
    ("Cabin filter for an Audi A4 B9?", "en", "Audi A4 B9", "cabin-filter"),
    ("Shock absorbers for a Mercedes C-Class W204.", "en", "Mercedes-Benz C-Class W204",
     "shock-absorber"),
    ("Have you got a clutch kit for a Renault Clio four?", "en", "Renault Clio IV",
     "clutch-kit"),
    ("Haben Sie Bremsbeläge für einen Golf sieben?", "de", "Volkswagen Golf VII",
     "brake-pads"),
    ("Ich brauche Bremsscheiben für meinen Golf VI.", "de", "Volkswagen Golf VI",
     "brake-discs"),
    ("Was kostet ein Ölfilter für den BMW Dreier F30?", "de", "BMW 3 Series F30", "oil-filter"),
    ("Zündkerzen für einen Ford Focus drei, bitte.", "de", "Ford Focus III", "spark-plugs"),
    ("Scheibenwischer für den Skoda Octavia IV?", "de", "Skoda Octavia IV", "wiper-blades"),
    ("Eine Autobatterie für meinen Opel Astra K von 2016.", "de", "Opel Astra K", "battery"),
    ("Was kostet ein Zahnriemensatz für den Passat B8?", "de", "Volkswagen Passat B8",
     "timing-belt-kit"),
    ("Pollenfilter für einen Audi A4 B9.", "de", "Audi A4 B9", "cabin-filter"),
    ("Stoßdämpfer für eine Mercedes C-Klasse W204.", "de", "Mercedes-Benz C-Class W204",
     "shock-absorber"),
    ("Haben Sie einen Kupplungssatz für den Renault Clio vier?", "de", "Renault Clio IV",
     "clutch-kit"),
]
# (question, language, page of the sample catalog)
PDF = [
    ("What is the minimum thickness of the front brake discs on a Golf 7?", "en", 3),
    ("How often should I change the oil filter?", "en", 4),
    ("What electrode gap do the spark plugs need?", "en", 7),
    ("When should the timing belt be replaced on a TSI engine?", "en", 11),
    ("How do I bed in new brake pads?", "en", 2),
    ("What battery does a car with start-stop need?", "en", 9),
    ("Wie hoch ist die Mindeststärke der Bremsscheiben beim Golf VII?", "de", 3),
    ("Mit wie viel Nm zieht man die Zündkerzen an?", "de", 7),
    ("Wie oft muss der Luftfilter gewechselt werden?", "de", 5),
    ("Wann muss der Innenraumfilter getauscht werden?", "de", 6),
    ("Welches Kühlmittel braucht die Wasserpumpe bei VW?", "de", 13),
    ("Was ist in einem Kupplungssatz enthalten?", "de", 12),
]
# (question, language, article title)
KNOWLEDGE = [
    ("When are you open on Saturday?", "en", "Opening hours"),
    ("Where is your shop?", "en", "Address and parking"),
    ("Can I return a part I did not use?", "en", "Returns and refunds"),
    ("How long is the warranty on a battery?", "en", "Warranty"),
    ("How much does shipping cost?", "en", "Delivery and shipping"),
    ("Do you take PayPal?", "en", "Payment methods"),
    ("Wann haben Sie samstags geöffnet?", "de", "Öffnungszeiten"),
    ("Wo finde ich Ihren Laden?", "de", "Adresse und Parken"),
    ("Kann ich unbenutzte Teile zurückgeben?", "de", "Rückgabe und Erstattung"),
    ("Bauen Sie die Bremsbeläge auch ein?", "de", "Werkstatt und Einbauservice"),
    ("Wie viel Pfand zahle ich auf die Batterie?", "de", "Altbatterien und Altteilpfand"),
    ("Wie lange liegt meine Bestellung zur Abholung bereit?", "de", "Abholung im Laden"),
]


def _setup() -> None:
    data = tempfile.mkdtemp(prefix="tom-bench-")
    os.environ.update(TOM_DATA_DIR=data, TOM_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tomsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("toolhub_sample", stdout=open(os.devnull, "w"))  # noqa: SIM115


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _setup()
    from toolhub.router import tool_route
    from toolhub.services import ToolContext, tool_call

    rows: dict[str, dict[str, list[float]]] = {}

    def run(tool: str, question: str, language: str) -> dict[str, object]:
        proposals = tool_route(text=question, language=language)
        name, arguments = proposals[0] if proposals else (tool, {"query": question})
        if name != tool:  # the router sent it elsewhere: a miss, timed all the same
            arguments = {"query": question} if tool != "parts_lookup" else {
                "vehicle": question, "part": question}
        context = ToolContext(language=language)
        tool_call(name=tool, arguments=arguments, context=context)  # warm-up
        result = None
        for _ in range(args.repeat):
            result = tool_call(name=tool, arguments=arguments, context=context)
            rows.setdefault(tool, {}).setdefault("ms", []).append(result.ms)
        rows[tool].setdefault("routed", []).append(float(name == tool))
        return result.content if result is not None and result.ok else {}

    def record(tool: str, ranked: list[bool]) -> None:
        rows[tool].setdefault("hit1", []).append(float(any(ranked[:1])))
        rows[tool].setdefault("hit3", []).append(float(any(ranked[:3])))

    from toolhub.models import Part

    for question, language, vehicle, category in PARTS:
        content = run("parts_lookup", question, language)
        make, *model, generation = vehicle.split()
        fitting = set(Part.objects.filter(
            category__slug=category, vehicles__make=make, vehicles__model=" ".join(model),
            vehicles__generation=generation).values_list("part_number", flat=True))
        record("parts_lookup", [p["part_number"] in fitting
                                for p in content.get("parts") or []])  # type: ignore[attr-defined]
    for question, language, page in PDF:
        content = run("catalog_search", question, language)
        record("catalog_search", [p["page"] == page for p in content.get("passages", [])])  # type: ignore[union-attr]
    for question, language, title in KNOWLEDGE:
        content = run("knowledge_search", question, language)
        record("knowledge_search", [a["title"] == title for a in content.get("answers", [])])  # type: ignore[union-attr]

    print(f"\n{len(PARTS) + len(PDF) + len(KNOWLEDGE)} questions, each call timed "
          f"{args.repeat}x after a warm-up (ms per tool call)\n")
    print("| tool | questions | routed right | hit@1 | hit@3 | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for tool, data in rows.items():
        print(f"| {tool} | {len(data['hit1'])} | {statistics.mean(data['routed']):.0%} | "
              f"{statistics.mean(data['hit1']):.0%} | {statistics.mean(data['hit3']):.0%} | "
              f"{_pct(data['ms'], 0.5):.0f} | {_pct(data['ms'], 0.95):.0f} |")
    print("\nBy language (hit@3):")
    for tool, questions in (("parts_lookup", PARTS), ("catalog_search", PDF),
                            ("knowledge_search", KNOWLEDGE)):
        for language in ("en", "de"):
            hits = [h for h, q in zip(rows[tool]["hit3"], questions, strict=True)
                    if q[1] == language]
            print(f"- {tool} {language}: {statistics.mean(hits):.0%} of {len(hits)}")


if __name__ == "__main__":
    main()
