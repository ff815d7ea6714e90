"""Which tool a caller's sentence needs, decided before the LLM sees it.

A 0.5B model on a CPU picks tools badly (it asked the PDF catalog for brake-pad prices)
and every tool round trip through it costs a second. So the voice loop asks the router
first: a part number, a car plus a part, a technical question or a shop question each
map to one tool call with arguments taken from the sentence. The LLM then answers from
the result, and may still call a tool itself when the router found nothing
(``TOM_TOOL_ROUTING``). Larger models behind Ollama or vLLM can be left to choose
alone with ``TOM_TOOL_ROUTING=llm``.
"""

from __future__ import annotations

import re
from typing import Any

from toolhub import catalog, matching, vectorstore
from toolhub.models import PartCategory, ToolSource

PART_NUMBER = re.compile(r"\bT\s*P[\s-]*(\d(?:[\s-]?\d){4})\b", re.IGNORECASE)
VEHICLE_MIN_SCORE = 0.6
# Cosine distances of MiniLM vectors between a short question and an article: the right
# article is usually below 0.5 and rarely above 0.75; greetings and chat land above 0.8.
KNOWLEDGE_SURE = 0.45
KNOWLEDGE_MAX_DISTANCE = 0.75
QUESTION_WORDS = re.compile(
    r"^\s*(what|when|where|which|who|how|why|do|does|can|could|is|are|will|would|"
    r"was|wann|wo|wie|welche\w*|wer|warum|haben|kann|koennen|können|ist|sind|gibt)\b",
    re.IGNORECASE)
# Words of a technical question, answered from the PDF catalog rather than the price list.
TECHNICAL = re.compile(
    r"\b(thickness|torque|how often|when (should|do|to)|interval|minimum|specification|"
    r"gap|bed(ding)?[- ]in|newton|nm|mileage|wear limit|"
    r"mindest\w*|anzugsmoment|wie oft|wann (muss|sollte|soll)|intervall|abstand|"
    r"einbremsen|wechselintervall|verschlei\w*grenze)\b", re.IGNORECASE)

Proposal = tuple[str, dict[str, Any]]


def tool_route(*, text: str, language: str) -> list[Proposal]:
    """At most one confident tool call for ``text``; none when the sentence needs none."""
    kinds = set(ToolSource.objects.filter(enabled=True).values_list("kind", flat=True))
    number = PART_NUMBER.search(text)
    if number and ToolSource.Kind.PARTS in kinds:
        return [("parts_lookup", {"part_number": "TP-" + re.sub(r"\D", "", number.group(1))})]
    technical = bool(TECHNICAL.search(text))
    if technical and ToolSource.Kind.PDF_CATALOG in kinds:
        return [("catalog_search", {"query": text})]
    proposal = _parts(text, language) if ToolSource.Kind.PARTS in kinds else None
    if proposal and proposal[1]["vehicle"]:
        return [proposal]  # a car and a part: the price list
    distance = _knowledge_distance(text) if ToolSource.Kind.KNOWLEDGE_BASE in kinds else 2.0
    knowledge = [("knowledge_search", {"query": text})]
    if distance <= KNOWLEDGE_SURE:
        return knowledge  # "the deposit on a battery" is a policy, not a part
    if proposal:
        return [proposal]  # a part but no car: the tool tells the LLM to ask for the car
    return knowledge if distance <= KNOWLEDGE_MAX_DISTANCE and _is_question(text) else []


def _parts(text: str, language: str) -> Proposal | None:
    categories = matching.category_match(text, catalog.category_terms())
    vehicles = [m for m in matching.vehicle_match(text, catalog.vehicle_terms())
                if m.score >= VEHICLE_MIN_SCORE]
    if not categories:
        return None  # "I drive a Golf": the LLM asks what they need
    category = PartCategory.objects.get(pk=categories[0].key)
    name = category.name_de if language.startswith("de") else category.name_en
    return ("parts_lookup", {"vehicle": text if vehicles else "", "part": name})


def _is_question(text: str) -> bool:
    return "?" in text or bool(QUESTION_WORDS.match(text))


def _knowledge_distance(text: str) -> float:
    sources = list(ToolSource.objects.filter(kind=ToolSource.Kind.KNOWLEDGE_BASE,
                                             enabled=True).values_list("pk", flat=True))
    hits = vectorstore.search(kind=ToolSource.Kind.KNOWLEDGE_BASE, query=text,
                              source_ids=sources, limit=1)
    return float(hits[0]["distance"]) if hits else 2.0
