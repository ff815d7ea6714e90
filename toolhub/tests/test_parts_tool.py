"""The parts tool and the router on the shipped sample catalog."""

from __future__ import annotations

import pytest

from toolhub import router
from toolhub.catalog import ImportReport
from toolhub.services import ToolContext, tool_call

# Tools run in ToolHub's own threads, on their own database connections: the data must
# be committed for them to see it.
pytestmark = pytest.mark.django_db(transaction=True)


def lookup(language: str = "en", **arguments: str) -> dict[str, object]:
    result = tool_call(name="parts_lookup", arguments=arguments,
                       context=ToolContext(language=language))
    assert result.ok, result.error
    return result.content  # type: ignore[no-any-return]


def test_the_sample_catalog_is_a_few_hundred_parts_over_dozens_of_vehicles(
        sample_parts: ImportReport) -> None:
    assert sample_parts.created >= 300 and sample_parts.vehicles_created >= 30


def test_brake_pads_for_a_golf_seven_in_german_and_english(sample_parts: ImportReport) -> None:
    english = lookup(vehicle="VW Golf 7", part="brake pads")
    german = lookup("de", vehicle="Golf sieben", part="Bremsbeläge")
    assert english["vehicle"] == german["vehicle"] == "Volkswagen Golf VII (2012-2020)"
    numbers = [p["part_number"] for p in english["parts"]]  # type: ignore[index]
    assert numbers == ["TP-10098", "TP-10137"]  # in stock first, then by price
    assert [p["part_number"] for p in german["parts"]] == numbers  # type: ignore[index]
    assert german["parts"][0]["name"] == "ATE Bremsbeläge Hinterachse"  # type: ignore[index]
    assert english["summary"] == (
        "Volkswagen Golf VII (2012-2020): ATE brake pads rear axle, part number TP-10098, "
        "46.38 EUR, 2 in stock; TRW brake pads rear axle, part number TP-10137, 51.34 EUR, "
        "1 in stock")
    assert "Teilenummer TP-10098, 46,38 EUR, 2 auf Lager" in str(german["summary"])


def test_part_numbers_are_found_however_they_are_read_out(sample_parts: ImportReport) -> None:
    for spoken in ("TP-10098", "tp 10098", "TP10098", "3G0670979", "3G0 670 979"):
        found = lookup(part_number=spoken)
        assert found["found"] and found["parts"][0]["part_number"] == "TP-10098", spoken  # type: ignore[index]
    assert lookup(part_number="XX-1")["found"] is False


def test_an_ambiguous_vehicle_asks_for_the_generation(sample_parts: ImportReport) -> None:
    found = lookup(vehicle="Golf", part="brake pads")
    assert found["found"] is False and len(found["vehicle_candidates"]) == 4  # type: ignore[arg-type]
    assert "ask the caller which generation" in str(found["summary"])


def test_missing_vehicle_or_unknown_part(sample_parts: ImportReport) -> None:
    assert "which car" in str(lookup(part="brake pads")["summary"])
    assert lookup(vehicle="Lada Niva", part="brake pads")["found"] is False
    assert "no 'flux capacitor'" in str(lookup(vehicle="Golf 7", part="flux capacitor")["summary"])


@pytest.mark.parametrize(("text", "tool", "arguments"), [
    ("Hello, do you have brake pads for a VW Golf 7?", "parts_lookup",
     {"vehicle": "Hello, do you have brake pads for a VW Golf 7?", "part": "brake pads"}),
    ("Ich brauche Bremsscheiben für meinen Golf sieben.", "parts_lookup",
     {"vehicle": "Ich brauche Bremsscheiben für meinen Golf sieben.", "part": "Bremsscheiben"}),
    ("Can you check part TP 10098 for me?", "parts_lookup", {"part_number": "TP-10098"}),
    ("Do you have wiper blades?", "parts_lookup", {"vehicle": "", "part": "wiper blades"}),
])
def test_the_router_sends_parts_questions_to_the_parts_tool(
        sample_parts: ImportReport, text: str, tool: str, arguments: dict[str, str]) -> None:
    language = "de" if "Ich" in text else "en"
    assert router.tool_route(text=text, language=language) == [(tool, arguments)]


def test_the_router_leaves_chat_alone_and_respects_disabled_sources(
        sample_parts: ImportReport) -> None:
    from toolhub.models import ToolSource

    ToolSource.objects.exclude(kind=ToolSource.Kind.PARTS).update(enabled=False)
    assert router.tool_route(text="Hello, how are you today?", language="en") == []
    assert router.tool_route(text="I drive a Golf 7.", language="en") == []
    ToolSource.objects.filter(kind=ToolSource.Kind.PARTS).update(enabled=False)
    assert router.tool_route(text="Brake pads for a Golf 7?", language="en") == []
