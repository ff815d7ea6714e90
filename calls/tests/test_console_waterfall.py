"""The per-turn latency waterfall SVG: one row per turn on a shared axis, bars as wide as
their stages took, barge-ins marked, missing stages left out, nothing unescaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from calls.console.waterfall import LABEL_W, PLOT_W, waterfall_svg
from calls.models import CallTurn

NS = {"svg": "http://www.w3.org/2000/svg"}
FULL = {"stt_start": -300, "stt_done": 150, "turn_start": 420, "understood": 160,
        "routed": 170, "llm_request": 180, "llm_first_text": 480, "first_clause": 520,
        "tts_first_audio": 600, "first_audio_sent": 640}


def _turn(index: int, **fields: Any) -> CallTurn:
    return CallTurn(index=index, **fields)  # unsaved: the SVG needs no database


def _svg(turns: list[CallTurn]) -> ET.Element:
    # Our own output, parsed to check it is well-formed XML: no untrusted input here.
    return ET.fromstring(str(waterfall_svg(turns=turns)))  # noqa: S314


def _rows(svg: ET.Element) -> list[ET.Element]:
    return svg.findall("svg:g[@class='turn']", NS)


def _bars(row: ET.Element) -> dict[str, tuple[float, int]]:
    """stage -> (drawn width, ms)"""
    bars = {}
    for group in row.findall("svg:g[@data-stage]", NS):
        rect = group.find("svg:rect", NS)
        assert rect is not None
        bars[group.get("data-stage", "")] = (float(rect.get("width", "")),
                                             int(group.get("data-ms", "")))
    return bars


def test_one_row_per_turn_with_bars_proportional_to_their_ms() -> None:
    turns = [_turn(0, waterfall=FULL, e2e_ms=640),
             _turn(1, waterfall={**FULL, "llm_first_text": 1380, "first_clause": 1420,
                                 "tts_first_audio": 1500, "first_audio_sent": 1540},
                   e2e_ms=1540)]
    svg = _svg(turns)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    rows = _rows(svg)
    assert [row.get("data-turn") for row in rows] == ["0", "1"]
    first, second = _bars(rows[0]), _bars(rows[1])
    assert set(first) == {"stt", "understand", "llm", "tts", "send"}  # no tool was called
    assert first["stt"][1] == 450 and first["llm"][1] == 300 and first["send"][1] == 40
    # One scale for every bar of every turn: width / ms is the same everywhere.
    ratios = {round(width / ms, 4) for bars in (first, second) for width, ms in bars.values()}
    assert max(ratios) - min(ratios) < 0.01, ratios
    assert second["llm"][1] == 1200
    assert second["llm"][0] > 3.9 * first["llm"][0]
    # The axis spans the earliest mark (STT started before the caller stopped) to the
    # latest, rounded to the grid, and the VAD stop is drawn at 0.
    scale = next(iter(ratios))
    assert PLOT_W / scale >= 1540 + 300
    vad = svg.find("svg:line[@class='vad']", NS)
    assert vad is not None and float(vad.get("x1", "")) > LABEL_W
    text = "".join(rows[1].itertext())
    assert "e2e 1540 ms" in text and "turn 1" in text
    titles = [t.text or "" for t in rows[0].iter("{http://www.w3.org/2000/svg}title")]
    assert "LLM first token: 300 ms (180 → 480 ms)" in titles
    assert "end of turn decided: 420 ms" in titles


def test_a_barge_in_is_marked_only_on_its_turn() -> None:
    svg = _svg([_turn(0, waterfall=FULL, e2e_ms=640),
                _turn(1, waterfall=FULL, e2e_ms=640, barge_in=True, agent_audio_ms=2400,
                      agent_audio_heard_ms=900)])
    rows = _rows(svg)
    assert rows[0].find("svg:g[@class='barge-in']", NS) is None
    mark = rows[1].find("svg:g[@class='barge-in']", NS)
    assert mark is not None
    assert mark.findtext("svg:title", "", NS) == \
        "The caller interrupted this reply (heard 900 of 2400 ms)"


def test_missing_stages_are_skipped_and_tools_drawn_when_called() -> None:
    partial = {"stt_done": 200, "routed": 220, "llm_tool_call": 400, "tools_done": 900,
               "llm_request": 910, "llm_first_text": 1100}
    row = _rows(_svg([_turn(0, waterfall=partial)]))[0]
    bars = _bars(row)
    assert list(bars) == ["stt", "understand", "llm", "tool"]  # no TTS, nothing sent
    assert bars["stt"][1] == 200  # from the VAD stop: streaming STT did not start earlier
    assert bars["tool"][1] == 500
    ticks = {line.get("data-mark") for line in row.findall("svg:line", NS)}
    assert ticks == set(partial)
    assert "e2e" not in "".join(row.itertext())


def test_old_turns_lay_their_columns_end_to_end_as_an_estimate() -> None:
    row = _rows(_svg([_turn(3, stt_ms=120, llm_first_token_ms=300, tts_first_audio_ms=90,
                            e2e_ms=640)]))[0]
    assert row.get("data-estimated") == "true"
    bars = _bars(row)
    assert {stage: ms for stage, (_, ms) in bars.items()} == {
        "stt": 120, "llm": 300, "tts": 90, "other": 130}
    starts = [int(g.get("data-start-ms", "")) for g in row.findall("svg:g[@data-stage]", NS)]
    assert starts == [0, 120, 420, 510]


def test_a_turn_without_timings_still_has_its_row_and_junk_is_ignored() -> None:
    junk: dict[str, Any] = {"stt_done": "soon", "<script>": 5, "routed": True,
                            "first_audio_sent": float("nan")}
    svg = _svg([_turn(0, waterfall=junk), _turn(1, waterfall=FULL, e2e_ms=640)])
    rows = _rows(svg)
    assert len(rows) == 2 and _bars(rows[0]) == {}
    assert "no timings" in "".join(rows[0].itertext())
    assert "<script>" not in str(waterfall_svg(turns=[_turn(0, waterfall=junk)]))


def test_no_turn_draws_no_svg() -> None:
    assert "<svg" not in str(waterfall_svg(turns=[]))
