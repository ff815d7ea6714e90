"""The sample parts catalog shipped for demos, tests and the retrieval benchmark.

``python -m toolhub.sampledata > toolhub/data/sample_parts.csv`` regenerates it; the
output is deterministic (seeded), so the committed file and this generator agree. The
vehicles, brands and categories are real-world names; part numbers, OEM numbers,
prices and stock are invented.
"""

from __future__ import annotations

import csv
import io
import random
import sys

# make, model, generation, year_from, year_to, aliases
VEHICLES: list[tuple[str, str, str, int, int, str]] = [
    ("Volkswagen", "Golf", "V", 2003, 2008, ""),
    ("Volkswagen", "Golf", "VI", 2008, 2012, ""),
    ("Volkswagen", "Golf", "VII", 2012, 2020, ""),
    ("Volkswagen", "Golf", "VIII", 2019, 2025, ""),
    ("Volkswagen", "Passat", "B7", 2010, 2014, ""),
    ("Volkswagen", "Passat", "B8", 2014, 2023, ""),
    ("Volkswagen", "Polo", "V", 2009, 2017, ""),
    ("Volkswagen", "Polo", "VI", 2017, 2024, ""),
    ("Volkswagen", "Tiguan", "II", 2016, 2024, ""),
    ("Audi", "A3", "8V", 2012, 2020, ""),
    ("Audi", "A4", "B8", 2007, 2015, ""),
    ("Audi", "A4", "B9", 2015, 2024, ""),
    ("BMW", "3 Series", "E90", 2005, 2012, "3er, Dreier, three series"),
    ("BMW", "3 Series", "F30", 2012, 2019, "3er, Dreier, three series"),
    ("BMW", "3 Series", "G20", 2019, 2025, "3er, Dreier, three series"),
    ("BMW", "1 Series", "F20", 2011, 2019, "1er, Einser, one series"),
    ("Mercedes-Benz", "C-Class", "W204", 2007, 2014, "C-Klasse, C Klasse"),
    ("Mercedes-Benz", "C-Class", "W205", 2014, 2021, "C-Klasse, C Klasse"),
    ("Mercedes-Benz", "A-Class", "W176", 2012, 2018, "A-Klasse, A Klasse"),
    ("Ford", "Focus", "II", 2004, 2011, ""),
    ("Ford", "Focus", "III", 2011, 2018, ""),
    ("Ford", "Focus", "IV", 2018, 2025, ""),
    ("Ford", "Fiesta", "VII", 2017, 2023, ""),
    ("Opel", "Astra", "J", 2009, 2015, ""),
    ("Opel", "Astra", "K", 2015, 2021, ""),
    ("Opel", "Corsa", "E", 2014, 2019, ""),
    ("Skoda", "Octavia", "II", 2004, 2013, ""),
    ("Skoda", "Octavia", "III", 2012, 2020, ""),
    ("Skoda", "Octavia", "IV", 2019, 2025, ""),
    ("Skoda", "Fabia", "III", 2014, 2021, ""),
    ("Seat", "Leon", "III", 2012, 2020, ""),
    ("Toyota", "Corolla", "E210", 2018, 2025, ""),
    ("Toyota", "Yaris", "III", 2011, 2020, ""),
    ("Renault", "Clio", "IV", 2012, 2019, ""),
    ("Renault", "Clio", "V", 2019, 2025, ""),
    ("Hyundai", "i30", "III", 2016, 2024, ""),
]

# slug, English, German, synonyms, brands, price range (EUR)
CATEGORIES: list[tuple[str, str, str, str, tuple[str, ...], tuple[int, int]]] = [
    ("brake-pads", "brake pads", "Bremsbeläge", "brake pad, Bremsbelag, Bremsklötze, pads",
     ("ATE", "Brembo", "TRW", "Bosch"), (29, 89)),
    ("brake-discs", "brake discs", "Bremsscheiben", "brake disc, brake rotors, Bremsscheibe",
     ("ATE", "Brembo", "Zimmermann"), (45, 160)),
    ("oil-filter", "oil filter", "Ölfilter", "oil filters, Ölfiltereinsatz",
     ("Mann-Filter", "Mahle", "Bosch"), (7, 24)),
    ("air-filter", "air filter", "Luftfilter", "engine air filter",
     ("Mann-Filter", "Mahle", "Hengst"), (11, 35)),
    ("cabin-filter", "cabin filter", "Innenraumfilter", "pollen filter, Pollenfilter",
     ("Mann-Filter", "Bosch", "Hengst"), (12, 39)),
    ("spark-plugs", "spark plugs", "Zündkerzen", "spark plug, Zündkerze",
     ("NGK", "Bosch", "Denso"), (6, 22)),
    ("wiper-blades", "wiper blades", "Scheibenwischer", "wipers, Wischerblätter, Wischblatt",
     ("Bosch", "Valeo"), (14, 45)),
    ("battery", "battery", "Autobatterie", "car battery, Batterie, Starterbatterie",
     ("Varta", "Bosch", "Exide"), (79, 219)),
    ("shock-absorber", "shock absorber", "Stoßdämpfer", "shocks, dampers, Dämpfer",
     ("Sachs", "Bilstein", "Monroe"), (49, 180)),
    ("timing-belt-kit", "timing belt kit", "Zahnriemensatz", "timing belt, Zahnriemen",
     ("Contitech", "Gates", "INA"), (69, 260)),
    ("clutch-kit", "clutch kit", "Kupplungssatz", "clutch, Kupplung", ("Sachs", "LuK", "Valeo"),
     (139, 420)),
    ("water-pump", "water pump", "Wasserpumpe", "coolant pump, Kühlmittelpumpe",
     ("SKF", "Hepu", "Graf"), (39, 140)),
]

HEADER = ["part_number", "name", "name_de", "category", "brand", "oem_numbers", "price",
          "currency", "stock", "make", "model", "generation", "year_from", "year_to",
          "vehicle_aliases"]


def rows(seed: int = 7) -> list[dict[str, str]]:
    """One row per (part, vehicle it fits); a part fitting several vehicles repeats."""
    rng = random.Random(seed)  # noqa: S311  (sample data, not secrets)
    out: list[dict[str, str]] = []
    serial = 10_000
    for slug, name_en, name_de, _syn, brands, (low, high) in CATEGORIES:
        # Neighbouring generations and platform twins share parts, as in real catalogs.
        groups = [VEHICLES[i:i + 2] for i in range(0, len(VEHICLES), 2)]
        for group in groups:
            for brand in rng.sample(brands, k=min(2, len(brands))):
                serial += rng.randint(3, 40)
                axle = rng.choice(["front", "rear"]) if slug.startswith("brake") else ""
                number = f"TP-{serial}"
                oem = [f"{rng.choice('1345678')}{rng.choice('GKQ')}0{rng.randint(100, 999)}"
                       f"{rng.randint(100, 999)}{rng.choice(['', 'A', 'B'])}"
                       for _ in range(rng.randint(1, 2))]
                price = f"{rng.uniform(low, high):.2f}"
                stock = str(rng.choice([0, 1, 2, 4, 6, 9, 12, 25]))
                label_en = f"{brand} {name_en}{f' {axle} axle' if axle else ''}"
                axle_de = {"front": "Vorderachse", "rear": "Hinterachse"}.get(axle, "")
                label_de = f"{brand} {name_de}{f' {axle_de}' if axle_de else ''}"
                fits = group if rng.random() < 0.7 else group[:1]
                for make, model, generation, year_from, year_to, aliases in fits:
                    out.append({
                        "part_number": number, "name": label_en, "name_de": label_de,
                        "category": slug, "brand": brand, "oem_numbers": ";".join(oem),
                        "price": price, "currency": "EUR", "stock": stock, "make": make,
                        "model": model, "generation": generation,
                        "year_from": str(year_from), "year_to": str(year_to),
                        "vehicle_aliases": aliases,
                    })
    return out


def categories_csv() -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["slug", "name_en", "name_de", "synonyms"])
    for slug, name_en, name_de, synonyms, _brands, _prices in CATEGORIES:
        writer.writerow([slug, name_en, name_de, synonyms])
    return buffer.getvalue()


def parts_csv(seed: int = 7) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(seed))
    return buffer.getvalue()


if __name__ == "__main__":
    sys.stdout.write(parts_csv())
