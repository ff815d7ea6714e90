"""The parts catalog: CSV import and the lookups the parts tool runs.

The import is all or nothing: every row is checked first, errors are reported with
their line numbers, and only a clean file is written, in one transaction. Importing
the same file again changes nothing (parts are upserted by part number, fitments are
set, not appended).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from toolhub import matching
from toolhub.models import Part, PartCategory, Vehicle

logger = logging.getLogger(__name__)

REQUIRED = ("part_number", "name", "category", "price", "make", "model")
MAX_ROWS = 100_000


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    vehicles_created: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return (f"nothing imported: {len(self.errors)} bad row(s) of {self.rows}; "
                    + "; ".join(self.errors[:5]))
        return (f"{self.rows} rows: {self.created} parts created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.duplicates} duplicate rows skipped, "
                f"{self.vehicles_created} vehicles created")


@dataclass
class _PartRow:
    values: dict[str, Any]
    vehicles: set[tuple[str, str, str]] = field(default_factory=set)
    line: int = 0


def _parse_row(row: dict[str, str], categories: set[str]) -> tuple[dict[str, Any], tuple[
        str, str, str, int | None, int | None, str]]:
    missing = [name for name in REQUIRED if not (row.get(name) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    category = row["category"].strip()
    if category not in categories:
        raise ValueError(f"unknown category {category!r}")
    try:
        price = Decimal(row["price"].strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"price {row['price']!r} is not a number") from None
    if price < 0 or price >= Decimal("10000000"):
        raise ValueError(f"price {price} is out of range")
    stock_text = (row.get("stock") or "0").strip()
    if not stock_text.isdigit():
        raise ValueError(f"stock {stock_text!r} is not a whole number >= 0")
    years: list[int | None] = []
    for name in ("year_from", "year_to"):
        text = (row.get(name) or "").strip()
        if text and not (text.isdigit() and 1900 <= int(text) <= 2100):
            raise ValueError(f"{name} {text!r} is not a year")
        years.append(int(text) if text else None)
    if years[0] and years[1] and years[0] > years[1]:
        raise ValueError("year_from is after year_to")
    values = {
        "name": row["name"].strip(), "name_de": (row.get("name_de") or "").strip(),
        "category": category, "brand": (row.get("brand") or "").strip(),
        "oem_numbers": [o.strip() for o in (row.get("oem_numbers") or "").split(";")
                        if o.strip()],
        "price": price, "currency": (row.get("currency") or "EUR").strip().upper()[:3],
        "stock": int(stock_text),
    }
    vehicle = (row["make"].strip(), row["model"].strip(), (row.get("generation") or "").strip(),
               years[0], years[1], (row.get("vehicle_aliases") or "").strip())
    return values, vehicle


def parts_import_csv(*, text: str) -> ImportReport:
    """Upsert parts and fitments from CSV ``text``; write nothing if any row is bad."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        report.errors.append(f"header: missing column(s) {', '.join(missing)}")
        return report
    categories = set(PartCategory.objects.values_list("slug", flat=True))
    parts: dict[str, _PartRow] = {}
    vehicles: dict[tuple[str, str, str], tuple[int | None, int | None, str]] = {}
    seen_rows: set[tuple[tuple[str, str], ...]] = set()
    for line, row in enumerate(reader, start=2):
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(f"more than {MAX_ROWS} rows")
            break
        key = tuple(sorted((k, (v or "").strip()) for k, v in row.items() if k))
        if key in seen_rows:
            report.duplicates += 1
            continue
        seen_rows.add(key)
        number = (row.get("part_number") or "").strip()
        try:
            values, vehicle = _parse_row(row, categories)
        except ValueError as exc:
            report.errors.append(f"line {line}: {exc}")
            continue
        vehicle_key = vehicle[:3]
        known = vehicles.setdefault(vehicle_key, vehicle[3:])
        if known != vehicle[3:]:
            report.errors.append(f"line {line}: {' '.join(vehicle_key)} has other years "
                                 "or aliases than on an earlier line")
            continue
        entry = parts.setdefault(number, _PartRow(values=values, line=line))
        if entry.values != values:
            report.errors.append(f"line {line}: part {number} differs from line {entry.line}")
            continue
        entry.vehicles.add(vehicle_key)
    if report.errors:
        return report
    with transaction.atomic():
        _write(parts, vehicles, report)
    logger.info("toolhub.parts_imported", extra={
        "rows": report.rows, "parts_created": report.created,
        "parts_updated": report.updated})
    return report


def _write(parts: dict[str, _PartRow],
           vehicles: dict[tuple[str, str, str], tuple[int | None, int | None, str]],
           report: ImportReport) -> None:
    vehicle_ids: dict[tuple[str, str, str], int] = {}
    for (make, model, generation), (year_from, year_to, aliases) in vehicles.items():
        vehicle, created = Vehicle.objects.update_or_create(
            make=make, model=model, generation=generation,
            defaults={"year_from": year_from, "year_to": year_to, "aliases": aliases})
        report.vehicles_created += created
        vehicle_ids[(make, model, generation)] = vehicle.pk
    category_ids = dict(PartCategory.objects.values_list("slug", "pk"))
    existing = {p.part_number: p for p in Part.objects.filter(part_number__in=list(parts))
                .prefetch_related("vehicles")}
    for number, entry in parts.items():
        values = dict(entry.values)
        values["category_id"] = category_ids[values.pop("category")]
        fits = {vehicle_ids[v] for v in entry.vehicles}
        part = existing.get(number)
        if part is None:
            part = Part.objects.create(part_number=number, **values)
            report.created += 1
        else:
            changed = any(getattr(part, k) != v for k, v in values.items())
            changed |= {v.pk for v in part.vehicles.all()} != fits
            if changed:
                for name, value in values.items():
                    setattr(part, name, value)
                part.save()
                report.updated += 1
            else:
                report.unchanged += 1
        part.vehicles.set(fits)


def vehicle_terms() -> list[matching.VehicleTerms]:
    return [matching.VehicleTerms(key=v.pk, make=v.make, model=v.model,
                                  generation=v.generation, year_from=v.year_from,
                                  year_to=v.year_to,
                                  aliases=tuple(a.strip() for a in v.aliases.split(",")
                                                if a.strip()))
            for v in Vehicle.objects.all()]


def category_terms() -> list[matching.CategoryTerms]:
    return [matching.CategoryTerms(key=c.pk, names=(
        c.name_en, c.name_de, *(s.strip() for s in c.synonyms.split(",") if s.strip())))
        for c in PartCategory.objects.all()]


def part_summary(part: Part, *, language: str) -> dict[str, Any]:
    """What the LLM is told about one part: enough to answer, nothing it cannot say."""
    return {
        "part_number": part.part_number,
        "name": part.name_de if language.startswith("de") and part.name_de else part.name,
        "brand": part.brand,
        "price": f"{part.price} {part.currency}",
        "in_stock": part.stock,
        "oem_numbers": part.oem_numbers,
    }


_NUMBER_WORDS = {"en": ["one", "two", "three", "four", "five", "six", "seven", "eight"],
                 "de": ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht"]}
_vocabularies: dict[tuple[str, tuple[Any, ...]], Any] = {}


def catalog_version() -> tuple[Any, ...]:
    """Changes whenever the catalog does (a cache key for what is built from it)."""
    from django.db.models import Count, Max

    parts = Part.objects.aggregate(n=Count("pk"), at=Max("updated_at"))
    return (parts["n"], parts["at"], Vehicle.objects.count(), PartCategory.objects.count())


def catalog_vocabulary(*, language: str) -> Any:
    """The catalog's words for speech (``toolhub.entities.Vocabulary``), per language,
    rebuilt when the catalog changes."""
    from toolhub.entities import Vocabulary

    lang = "de" if language.startswith("de") else "en"
    key = (lang, catalog_version())
    if key in _vocabularies:
        return _vocabularies[key]
    vocabulary = Vocabulary()
    for vehicle in Vehicle.objects.all():
        vocabulary.terms += [vehicle.make, f"{vehicle.make} {vehicle.model}", vehicle.model]
        number = matching.generation_number(vehicle.generation) if vehicle.generation else None
        canonical = f"{vehicle.model} {vehicle.generation}".strip()
        vocabulary.terms.append(canonical)
        if number and number <= len(_NUMBER_WORDS[lang]):
            for spoken in (str(number), _NUMBER_WORDS[lang][number - 1]):
                variant = f"{vehicle.model} {spoken}"
                vocabulary.terms.append(variant)
                vocabulary.canonical[variant] = canonical
        vocabulary.terms += [a.strip() for a in vehicle.aliases.split(",") if a.strip()]
    for category in PartCategory.objects.all():
        name = category.name_de if lang == "de" else category.name_en
        vocabulary.terms.append(name)
        for synonym in (s.strip() for s in category.synonyms.split(",") if s.strip()):
            vocabulary.terms.append(synonym)
    vocabulary.terms = list(dict.fromkeys(vocabulary.terms))
    for part_number in Part.objects.values_list("part_number", flat=True).iterator():
        digits = re.sub(r"\D", "", part_number)
        if len(digits) >= 4:  # shorter ones would catch quantities and prices
            vocabulary.part_numbers.setdefault(digits, part_number)
    # Ordered to the last column: the hint list (and so what Whisper hears) must be the
    # same on every database.
    vehicles = list(Vehicle.objects.order_by("make", "model", "generation", "pk"))
    categories = list(PartCategory.objects.order_by("slug"))
    vocabulary.hints = [
        *dict.fromkeys(v.make for v in vehicles), *dict.fromkeys(v.model for v in vehicles),
        *((c.name_de if lang == "de" else c.name_en) for c in categories),
        *dict.fromkeys(f"{v.model} {v.generation}".strip() for v in vehicles)]
    vocabulary.vehicles, vocabulary.categories = vehicle_terms(), category_terms()
    vocabulary.makes = frozenset({matching.fold(v.make).split()[0] for v in vehicles}
                                 | {a for a in matching.MAKE_ALIASES if " " not in a})
    _vocabularies.clear()  # one catalog version is enough to keep
    _vocabularies[key] = vocabulary
    return vocabulary
