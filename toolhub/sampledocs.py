"""The sample PDF catalog and knowledge base that ``manage.py toolhub_sample`` loads.

The PDF is built from the sample parts (``toolhub.sampledata``): one page per part
category with fitting notes in English and German and a table of the parts, so a
question has one right page to find.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from toolhub.pdf import pdf_write
from toolhub.sampledata import CATEGORIES, rows

DATA = Path(__file__).resolve().parent / "data"
CATALOG_TITLE = "TOM Parts Catalog 2026"

# slug: (English notes, German notes). Invented but plausible workshop guidance.
NOTES: dict[str, tuple[str, str]] = {
    "brake-pads": (
        "Replace brake pads when the friction lining is thinner than 3 mm. Always replace "
        "the pads of both wheels on one axle. Bed in new pads with ten gentle stops from "
        "50 km/h. Check the wear indicator cable and replace it with the pads.",
        "Bremsbeläge bei weniger als 3 mm Belagstärke erneuern. Immer beide Seiten einer "
        "Achse tauschen. Neue Beläge mit zehn sanften Bremsungen aus 50 km/h einbremsen."),
    "brake-discs": (
        "Brake discs must be replaced when they reach the minimum thickness stamped on the "
        "hub, typically 2 mm below new. Golf VII front discs are 25 mm new and 22 mm "
        "minimum. Always fit new pads with new discs. Tighten the wheel bolts to 120 Nm.",
        "Bremsscheiben bei Erreichen der Mindeststärke tauschen, die auf der Nabe "
        "eingeprägt ist. Golf VII vorne: 25 mm neu, 22 mm Mindeststärke. Neue Scheiben "
        "immer mit neuen Belägen montieren. Radschrauben mit 120 Nm anziehen."),
    "oil-filter": (
        "Change the oil filter with every oil change, every 15,000 km or once a year. "
        "Lubricate the sealing ring with fresh oil and tighten the filter housing cap to "
        "25 Nm. Use engine oil to the VW 504 00 or BMW Longlife-04 standard where required.",
        "Ölfilter bei jedem Ölwechsel tauschen, alle 15.000 km oder jährlich. Dichtring "
        "mit frischem Öl benetzen, Filterdeckel mit 25 Nm anziehen."),
    "air-filter": (
        "Replace the engine air filter every 30,000 km, or every 15,000 km on dusty roads. "
        "A clogged air filter costs power and raises fuel consumption.",
        "Luftfilter alle 30.000 km wechseln, bei staubigen Straßen alle 15.000 km. Ein "
        "verstopfter Luftfilter kostet Leistung und erhöht den Verbrauch."),
    "cabin-filter": (
        "The cabin filter, also called pollen filter, should be replaced every year before "
        "spring. Activated carbon filters also hold back odours and exhaust gases.",
        "Den Innenraumfilter oder Pollenfilter jedes Jahr vor dem Frühjahr tauschen. "
        "Aktivkohlefilter halten zusätzlich Gerüche und Abgase zurück."),
    "spark-plugs": (
        "Spark plugs are replaced every 60,000 km on most petrol engines, every 30,000 km "
        "on turbocharged engines with gas conversion. Set the electrode gap to 0.8 mm and "
        "tighten to 25 Nm on a cold engine.",
        "Zündkerzen bei den meisten Benzinmotoren alle 60.000 km wechseln. "
        "Elektrodenabstand 0,8 mm, Anzugsmoment 25 Nm bei kaltem Motor."),
    "wiper-blades": (
        "Replace wiper blades every six to twelve months or when they streak. Flat blades "
        "fit most cars from 2010 on; check the adapter type before ordering.",
        "Wischerblätter alle sechs bis zwölf Monate tauschen oder wenn sie schmieren. "
        "Flachbalkenwischer passen auf die meisten Autos ab 2010."),
    "battery": (
        "Cars with start-stop systems need an AGM or EFB battery; a standard battery fails "
        "early. After fitting, the new battery must be coded to the car on BMW, Audi and "
        "most VW models. Old batteries carry a deposit of 7.50 euros.",
        "Fahrzeuge mit Start-Stopp-Automatik brauchen eine AGM- oder EFB-Batterie. Nach "
        "dem Einbau muss die Batterie bei BMW, Audi und den meisten VW angelernt werden."),
    "shock-absorber": (
        "Shock absorbers should be checked every 20,000 km and are usually replaced "
        "between 80,000 and 120,000 km. Always replace them in pairs per axle and have the "
        "wheel alignment checked afterwards.",
        "Stoßdämpfer alle 20.000 km prüfen, Tausch meist zwischen 80.000 und 120.000 km. "
        "Immer paarweise pro Achse tauschen und danach die Achse vermessen lassen."),
    "timing-belt-kit": (
        "The timing belt kit with tensioner and idler pulleys is replaced every 210,000 km "
        "or ten years on VW TSI and TDI engines, whichever comes first. Replace the water "
        "pump at the same time; it is driven by the belt.",
        "Den Zahnriemensatz mit Spannrolle bei VW TSI und TDI alle 210.000 km oder zehn "
        "Jahre wechseln. Die Wasserpumpe gleich mit tauschen."),
    "clutch-kit": (
        "A clutch kit contains the pressure plate, the clutch disc and the release bearing. "
        "Check the dual-mass flywheel when replacing the clutch; a worn flywheel causes "
        "rattling at idle.",
        "Ein Kupplungssatz enthält Druckplatte, Kupplungsscheibe und Ausrücklager. Beim "
        "Tausch das Zweimassenschwungrad prüfen."),
    "water-pump": (
        "A leaking water pump shows as coolant traces below the pump or a sweet smell. "
        "Use coolant to the G13 specification on VW group cars and bleed the system after "
        "fitting.",
        "Eine undichte Wasserpumpe zeigt sich durch Kühlmittelspuren. Bei VW-Konzern-"
        "fahrzeugen Kühlmittel G13 verwenden und das System nach dem Einbau entlüften."),
}


def _wrap(text: str, width: int = 95) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + len(word) + 1 > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*lines, current] if current else lines


def catalog_pages() -> list[list[str]]:
    by_category: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows():
        entry = by_category[row["category"]].setdefault(row["part_number"],
                                                        {**row, "fits": []})
        entry["fits"].append(f"{row['make']} {row['model']} {row['generation']}")
    pages = [[CATALOG_TITLE, "", *_wrap(
        "This catalog lists brake, filter, ignition, electrical and engine parts for the "
        "most common cars in our shop, with fitting notes for the workshop. Prices in "
        "euros including VAT. Page numbers follow the part categories.")]]
    for slug, name_en, name_de, _syn, _brands, _prices in CATEGORIES:
        english, german = NOTES[slug]
        lines = [f"{name_en.title()} / {name_de}", "", *_wrap(english), "", *_wrap(german),
                 "", "Part number | Part | Fits | Price"]
        for part in list(by_category[slug].values())[:24]:
            fits = ", ".join(part["fits"])
            lines.append(f"{part['part_number']} | {part['name']} | {fits} | "
                         f"{part['price']} EUR")
        pages.append(lines)
    return pages


def catalog_pdf() -> bytes:
    return pdf_write(catalog_pages(), title=CATALOG_TITLE)


def knowledge_articles() -> list[dict[str, str]]:
    articles: list[dict[str, str]] = json.loads(
        (DATA / "knowledge_base.json").read_text(encoding="utf-8"))
    return articles
