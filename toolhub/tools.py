"""The tools TOM's agent can call. Importing this module registers them.

Each returns plain JSON-able data, small enough for a 2k-token context, in the
caller's language where the catalog has it.
"""

from __future__ import annotations

import re
from typing import Any

from toolhub import catalog, matching, vectorstore
from toolhub.models import Part, ToolSource, Vehicle
from toolhub.registry import tool
from toolhub.services import ToolContext

VEHICLE_MIN_SCORE = 0.5
MAX_PARTS = 4
SUMMARY_CHARS = 400
SPOKEN_PARTS = 2  # what a caller can take in by ear


def _limit(kind: str, default: int) -> int:
    configs = ToolSource.objects.filter(kind=kind, enabled=True).values_list("config", flat=True)
    limits = [int(c.get("limit", default)) for c in configs if isinstance(c, dict)]
    return max(1, min(max(limits, default=default), 10))


def _source_ids(kind: str) -> list[int]:
    return list(ToolSource.objects.filter(kind=kind, enabled=True).values_list("pk", flat=True))


def _compact(number: str) -> str:
    return re.sub(r"[^0-9a-z]", "", number.lower())


@tool(kind=ToolSource.Kind.PARTS)
def parts_lookup(*, context: ToolContext, vehicle: str = "", part: str = "",
                 part_number: str = "") -> dict[str, Any]:
    """Find car parts in the shop's catalog: which parts fit a vehicle, their price and stock.

    Args:
        vehicle: The caller's car as they said it, e.g. "VW Golf 7" or "BMW 3er F30 2015".
        part: What part they need, e.g. "brake pads", "Bremsscheiben", "oil filter".
        part_number: A shop or OEM part number, when the caller reads one out.
    """
    language = context.language
    if part_number.strip():
        wanted = _compact(part_number)
        # Numbers are read out with or without dashes and spaces: compare them compacted.
        keys = [pk for pk, number, oem in Part.objects.values_list("pk", "part_number",
                                                                    "oem_numbers")
                if _compact(number) == wanted or any(_compact(o) == wanted for o in oem)]
        found = list(Part.objects.filter(pk__in=keys))
        if not found:
            return _say({"found": False}, f"no part with number {part_number}")
        described = [_describe(p, language) for p in found[:MAX_PARTS]]
        return _say({"found": True, "parts": described}, _parts_text(described, language))
    if not vehicle.strip() and not part.strip():
        return _say({"found": False}, "ask the caller which vehicle and which part")
    matches = [m for m in matching.vehicle_match(f"{vehicle} {part}", catalog.vehicle_terms(),
                                                 limit=6) if m.score >= VEHICLE_MIN_SCORE]
    categories = matching.category_match(f"{part} {vehicle}", catalog.category_terms())
    if not matches and not vehicle.strip():
        return _say({"found": False}, f"ask the caller which car the {part} are for "
                                      "(make, model and year)")
    if not matches:
        return _say({"found": False}, f"no vehicle in the catalog matches {vehicle!r}")
    best = [m for m in matches if m.score == matches[0].score]
    vehicles = {v.pk: v for v in Vehicle.objects.filter(pk__in=[m.key for m in best])}
    if len(best) > 1:
        candidates = [str(vehicles[m.key]) for m in best][:4]
        return _say({"found": False, "vehicle_candidates": candidates},
                    f"several cars match ({'; '.join(candidates)}): ask the caller which "
                    "generation or year")
    chosen = vehicles[best[0].key]
    parts = Part.objects.filter(vehicles=chosen).select_related("category")
    if categories:
        parts = parts.filter(category_id=categories[0].key)
    elif part.strip():
        return _say({"found": False, "vehicle": str(chosen)},
                    f"the catalog has no {part!r} for the {chosen}")
    listed = sorted(parts, key=lambda p: (p.stock == 0, p.price))[:_limit("parts", MAX_PARTS)]
    described = [_describe(p, language) for p in listed]
    text = (f"{chosen}: {_parts_text(described, language)}" if described
            else f"no matching parts for the {chosen}")
    return _say({"found": bool(listed), "vehicle": str(chosen), "parts": described}, text)


def _say(data: dict[str, Any], summary: str) -> dict[str, Any]:
    """Attach the short text the LLM reads (a 0.5B model restates prose, not JSON)."""
    return {**data, "summary": summary}


def _parts_text(parts: list[dict[str, Any]], language: str) -> str:
    german = language.startswith("de")
    texts = []
    for part in parts[:SPOKEN_PARTS]:
        price = part["price"].replace(".", ",") if german else part["price"]
        stock = (f"{part['in_stock']} auf Lager" if german else f"{part['in_stock']} in stock") \
            if part["in_stock"] else ("nicht auf Lager" if german else "out of stock")
        number = "Teilenummer" if german else "part number"
        texts.append(f"{part['name']}, {number} {part['part_number']}, {price}, {stock}")
    return "; ".join(texts)


def _describe(part: Part, language: str) -> dict[str, Any]:
    summary = catalog.part_summary(part, language=language)
    summary["fits"] = [str(v) for v in part.vehicles.all()[:3]]
    return summary


@tool(kind=ToolSource.Kind.PDF_CATALOG)
def catalog_search(*, context: ToolContext, query: str) -> dict[str, Any]:
    """Search the uploaded PDF parts catalogs for technical details, specifications and
    fitting notes; answers come with the catalog page.

    Args:
        query: What to look up, in the caller's words, e.g. "minimum thickness brake disc".
    """
    hits = vectorstore.search(kind=ToolSource.Kind.PDF_CATALOG, query=query,
                              source_ids=_source_ids(ToolSource.Kind.PDF_CATALOG),
                              limit=_limit(ToolSource.Kind.PDF_CATALOG, 3))
    passages = [{"text": h["text"], "catalog": h["meta"].get("title"),
                 "file": h["meta"].get("file"), "page": h["meta"].get("page")} for h in hits]
    best = passages[0] if passages else None
    return _say({"passages": passages},
                f"{best['catalog']}, page {best['page']}: {_focus(best['text'], query)}"
                if best else "nothing in the catalogs")


@tool(kind=ToolSource.Kind.KNOWLEDGE_BASE)
def knowledge_search(*, context: ToolContext, query: str) -> dict[str, Any]:
    """Search the shop's knowledge base: opening hours, address, returns, warranty,
    delivery, payment and other policies.

    Args:
        query: The caller's question, e.g. "are you open on Saturday".
    """
    kind = ToolSource.Kind.KNOWLEDGE_BASE
    sources, limit = _source_ids(kind), _limit(kind, 3)
    hits = vectorstore.search(kind=kind, query=query, source_ids=sources, limit=limit,
                              where={"language": context.language[:2]})
    if not hits:  # no article in the caller's language: any language beats none
        hits = vectorstore.search(kind=kind, query=query, source_ids=sources, limit=limit)
    answers = [{"title": h["meta"].get("title"), "text": h["text"]} for h in hits]
    return _say({"answers": answers},
                _focus(answers[0]["text"], query) if answers else "nothing in the knowledge base")


def _focus(text: str, query: str, *, keep: int = 2) -> str:
    """The ``keep`` sentences of ``text`` that share most words with ``query``, in order.

    A passage holds several facts; a small model repeats whichever comes first, so the
    summary leads it to the ones the caller asked about.
    """
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    asked = {w for w in matching.tokens(query) if len(w) > 2}

    def overlap(sentence: str) -> int:
        said = matching.tokens(sentence)
        return sum(any(w.startswith(a[:5]) or a.startswith(w[:5]) for w in said if len(w) > 2)
                   for a in asked)

    ranked = sorted(range(len(sentences)), key=lambda i: (-overlap(sentences[i]), i))
    chosen = sorted(ranked[:keep])
    return " ".join(sentences[i] for i in chosen)[:SUMMARY_CHARS]

