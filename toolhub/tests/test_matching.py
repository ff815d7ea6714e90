"""What callers say about their car and the part, matched to the sample catalog."""

from __future__ import annotations

import pytest

from toolhub import matching, sampledata

VEHICLES = [matching.VehicleTerms(key=i, make=make, model=model, generation=gen,
                                  year_from=start, year_to=end,
                                  aliases=tuple(a.strip() for a in aliases.split(",") if a))
            for i, (make, model, gen, start, end, aliases) in enumerate(sampledata.VEHICLES)]
CATEGORIES = [matching.CategoryTerms(key=i, names=(en, de, *(s.strip() for s in syn.split(","))))
              for i, (_slug, en, de, syn, _b, _p) in enumerate(sampledata.CATEGORIES)]


def vehicle(label: str) -> int:
    return next(v.key for v in VEHICLES
                if f"{v.make} {v.model} {v.generation}" == label)


@pytest.mark.parametrize(("phrase", "expected"), [
    # German
    ("Golf sieben", "Volkswagen Golf VII"),
    ("einen VW Golf 7", "Volkswagen Golf VII"),
    ("Golf VII", "Volkswagen Golf VII"),
    ("mein Golf sechs von 2010", "Volkswagen Golf VI"),
    ("für meinen Golf acht", "Volkswagen Golf VIII"),
    ("Passat B8", "Volkswagen Passat B8"),
    ("BMW Dreier F30", "BMW 3 Series F30"),
    ("3er BMW G20", "BMW 3 Series G20"),
    ("Mercedes C-Klasse W205", "Mercedes-Benz C-Class W205"),
    ("C Klasse von 2010", "Mercedes-Benz C-Class W204"),
    ("Skoda Octavia drei", "Skoda Octavia III"),
    ("Opel Astra K", "Opel Astra K"),
    ("Ford Focus vier", "Ford Focus IV"),
    ("Audi A4 B9", "Audi A4 B9"),
    # English
    ("Golf 7", "Volkswagen Golf VII"),
    ("a Volkswagen Golf seven", "Volkswagen Golf VII"),
    ("my Golf Mk7", "Volkswagen Golf VII"),
    ("golf mark 6", "Volkswagen Golf VI"),
    ("VW Polo six", "Volkswagen Polo VI"),
    ("Ford Focus Mk3", "Ford Focus III"),
    ("BMW three series from 2015", "BMW 3 Series F30"),
    ("a 2019 Toyota Corolla", "Toyota Corolla E210"),
    ("Renault Clio four", "Renault Clio IV"),
    ("Hyundai i30", "Hyundai i30 III"),
    ("Seat Leon 3", "Seat Leon III"),
    ("Skoda Fabia", "Skoda Fabia III"),
    # A chassis code alone
    ("BMW F30", "BMW 3 Series F30"),
    ("a Mercedes W205", "Mercedes-Benz C-Class W205"),
    # Speech-recognition spellings
    ("Volkswagon Golf 7", "Volkswagen Golf VII"),
    ("Octavia 3", "Skoda Octavia III"),
])
def test_caller_phrasings_find_the_vehicle(phrase: str, expected: str) -> None:
    matches = matching.vehicle_match(phrase, VEHICLES)
    assert matches, phrase
    assert matches[0].key == vehicle(expected), (phrase, matches)
    # The winner is unambiguous: no other vehicle scores as high.
    assert len(matches) == 1 or matches[1].score < matches[0].score, matches


def test_a_model_without_generation_is_ambiguous() -> None:
    matches = matching.vehicle_match("a VW Golf", VEHICLES, limit=5)
    golfs = {vehicle(f"Volkswagen Golf {g}") for g in ("V", "VI", "VII", "VIII")}
    assert {m.key for m in matches} == golfs
    assert len({m.score for m in matches}) == 1


def test_unknown_cars_and_chat_match_nothing() -> None:
    assert matching.vehicle_match("a Lada Niva", VEHICLES) == []
    assert matching.vehicle_match("hello, what are your opening hours?", VEHICLES) == []
    assert matching.vehicle_match("I need it for my car", VEHICLES) == []


@pytest.mark.parametrize(("phrase", "expected"), [
    ("Bremsbeläge", "brake pads"), ("Bremsbelägen", "brake pads"),
    ("neue Bremsklötze", "brake pads"), ("brake pads", "brake pads"),
    ("a brake pad", "brake pads"), ("Bremsscheiben vorne", "brake discs"),
    ("brake rotors", "brake discs"), ("einen Ölfilter", "oil filter"),
    ("Pollenfilter", "cabin filter"), ("Zündkerzen", "spark plugs"),
    ("wiper blades", "wiper blades"), ("Scheibenwischer", "wiper blades"),
    ("eine neue Batterie", "battery"), ("Stoßdämpfer hinten", "shock absorber"),
    ("Zahnriemen", "timing belt kit"), ("clutch", "clutch kit"),
])
def test_part_names_find_the_category(phrase: str, expected: str) -> None:
    found = matching.category_match(phrase, CATEGORIES)
    assert found, phrase
    assert CATEGORIES[found[0].key].names[0] == expected, (phrase, found)


def test_normalisation() -> None:
    assert matching.fold("Bremsbeläge für den Škoda") == "bremsbelaege fuer den skoda"
    assert matching.tokens("Golf sieben Mk 7 3er") == ["golf", "7", "7", "3"]
    assert matching.generation_number("VII") == 7
    assert matching.generation_number("Mk3") == 3
    assert matching.generation_number("B8") is None
