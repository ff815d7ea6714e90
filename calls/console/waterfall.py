"""Each turn's latency waterfall as an inline SVG: where the time between the caller's
last word and TOM's first went.

A pure function of the turns: it reads ``CallTurn.waterfall`` (each stage as ms after the
caller stopped speaking, the VAD stop, as ``voice.session.events.AgentSpeech.waterfall_ms``
records it) and, for turns recorded before that existed, the per-stage durations in the
turn's columns laid end to end (an estimate, and the tooltip says so). All turns share one
time axis, so a slow turn looks slow next to the others. Every piece of text goes through
``format_html``; the only words drawn are ours (stage names) and numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Geometry, in SVG user units (px at 1:1).
WIDTH = 760
LABEL_W = 64  # "turn 12" on the left
TOTAL_W = 96  # "e2e 640 ms" and the barge-in mark on the right
AXIS_H = 22
ROW_H = 24
BAR_H = 12
MIN_LABEL_W = 34  # a bar narrower than this carries no ms label inside
PLOT_W = WIDTH - LABEL_W - TOTAL_W

# (stage, label, start mark, end mark): a bar spans its two marks, which are keys of
# CallTurn.waterfall. Alternatives for a start are tried in order (streaming STT starts
# before the caller stops; without it, STT starts at the VAD stop, 0).
STAGES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("stt", "STT", ("stt_start", "@0"), "stt_done"),
    ("understand", "understand", ("stt_done",), "routed"),
    ("llm", "LLM first token", ("llm_request",), "llm_first_text"),
    # After the LLM: a tool runs while the LLM waits for it, so it is drawn over that bar.
    ("tool", "tools", ("llm_tool_call", "routed"), "tools_done"),
    ("tts", "TTS first audio", ("first_clause", "llm_first_text"), "tts_first_audio"),
    ("send", "first audio sent", ("tts_first_audio",), "first_audio_sent"),
)
# Marks drawn as ticks, with what they mean.
MARKS: dict[str, str] = {
    "stt_start": "STT started", "turn_start": "end of turn decided", "stt_done": "STT done",
    "understood": "understood", "routed": "routed", "llm_request": "LLM asked",
    "llm_speculated": "LLM guessed ahead", "llm_tool_call": "tool called",
    "tools_done": "tools done", "llm_first_text": "LLM first token",
    "first_clause": "first clause", "tts_first_audio": "TTS first audio",
    "first_audio_sent": "first audio sent",
}
# Old turns: the stages' durations, laid end to end from the VAD stop.
FALLBACK: tuple[tuple[str, str, str], ...] = (
    ("stt", "STT", "stt_ms"), ("tool", "tools", "tools_ms"),
    ("llm", "LLM first token", "llm_first_token_ms"),
    ("tts", "TTS first audio", "tts_first_audio_ms"),
)
STYLE = (
    ".tom-waterfall text{font:11px system-ui,sans-serif;fill:var(--body-fg,#333)}"
    ".tom-waterfall .grid{stroke:var(--hairline-color,#ddd);stroke-width:1}"
    ".tom-waterfall .vad{stroke:var(--body-fg,#333);stroke-width:1.5}"
    ".tom-waterfall .tick{stroke:var(--body-quiet-color,#666);stroke-width:1}"
    ".tom-waterfall .bar text{fill:#fff;font-size:10px}"
    ".tom-waterfall .stage-stt rect{fill:#3b73b9}"
    ".tom-waterfall .stage-understand rect{fill:#7c5fb0}"
    ".tom-waterfall .stage-tool rect{fill:#b58900}.tom-waterfall .stage-llm rect{fill:#2e7d32}"
    ".tom-waterfall .stage-tts rect{fill:#c2571a}.tom-waterfall .stage-send rect{fill:#6b7280}"
    ".tom-waterfall .stage-other rect{fill:#9aa0a6}"
    ".tom-waterfall [data-estimated] rect{fill-opacity:.55}"
    ".tom-waterfall .barge-in path{fill:var(--error-fg,#ba2121)}"
)


class TurnLike(Protocol):
    """What is read of a turn (``calls.models.CallTurn`` has it all); read-only."""

    @property
    def index(self) -> int: ...
    @property
    def waterfall(self) -> Any: ...
    @property
    def stt_ms(self) -> int | None: ...
    @property
    def llm_first_token_ms(self) -> int | None: ...
    @property
    def tts_first_audio_ms(self) -> int | None: ...
    @property
    def tools_ms(self) -> int | None: ...
    @property
    def e2e_ms(self) -> int | None: ...
    @property
    def barge_in(self) -> bool: ...
    @property
    def agent_audio_ms(self) -> int | None: ...
    @property
    def agent_audio_heard_ms(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Bar:
    stage: str
    label: str
    start_ms: int
    end_ms: int

    @property
    def ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(slots=True)
class TurnBars:
    """One turn's bars and ticks, in ms after the caller stopped speaking."""

    index: int
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[str, int]] = field(default_factory=list)  # (mark, ms)
    total_ms: int | None = None
    estimated: bool = False
    barge_in: bool = False
    heard: str = ""

    @property
    def extent(self) -> tuple[int, int]:
        points = [0] + [ms for _, ms in self.ticks] + [b.start_ms for b in self.bars] \
            + [b.end_ms for b in self.bars] + ([self.total_ms] if self.total_ms else [])
        return min(points), max(points)


def _marks(raw: Any) -> dict[str, int]:
    """The known, numeric marks of a stored waterfall (anything else is ignored)."""
    if not isinstance(raw, dict):
        return {}
    return {k: int(v) for k, v in raw.items() if k in MARKS and isinstance(v, int | float)
            and not isinstance(v, bool) and math.isfinite(v)}


def turn_bars(turn: TurnLike) -> TurnBars:
    """The bars of one turn: from its waterfall, or its columns for an old turn."""
    row = TurnBars(index=int(turn.index), barge_in=bool(turn.barge_in))
    if turn.barge_in and turn.agent_audio_ms is not None:
        heard = turn.agent_audio_ms if turn.agent_audio_heard_ms is None \
            else turn.agent_audio_heard_ms
        row.heard = f" (heard {heard} of {turn.agent_audio_ms} ms)"
    marks = _marks(turn.waterfall)
    if marks:
        known = {"@0": 0, **marks}
        for stage, label, starts, end in STAGES:
            start = next((known[s] for s in starts if s in known), None)
            if start is not None and end in marks and marks[end] >= start:
                row.bars.append(Bar(stage, label, start, marks[end]))
        row.ticks = sorted(marks.items(), key=lambda item: item[1])
        row.total_ms = marks.get("first_audio_sent", turn.e2e_ms)
        return row
    row.estimated = True
    at = 0
    for stage, label, column in FALLBACK:
        ms = getattr(turn, column, None)
        if isinstance(ms, int) and ms > 0:
            row.bars.append(Bar(stage, label, at, at + ms))
            at += ms
    if turn.e2e_ms is not None and turn.e2e_ms > at:
        row.bars.append(Bar("other", "other (not measured apart)", at, turn.e2e_ms))
    row.total_ms = turn.e2e_ms
    return row


def _step(span: int) -> int:
    """A round grid step giving about 4-8 lines over ``span`` ms."""
    for step in (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000):
        if span / step <= 8:
            return step
    return 100000


def waterfall_svg(*, turns: Sequence[TurnLike]) -> SafeString:
    """The turns' waterfalls as one inline SVG, one row per turn on a shared time axis."""
    if not turns:
        return format_html('<p class="console-hint">{}</p>', "No turn yet.")
    rows = [turn_bars(turn) for turn in turns]
    low = min(min(row.extent[0] for row in rows), 0)
    high = max(max(row.extent[1] for row in rows), 1)
    step = _step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    scale = PLOT_W / (high - low)

    def x(ms: int) -> float:
        return round(LABEL_W + (ms - low) * scale, 1)

    height = AXIS_H + ROW_H * len(rows) + 4
    grid = format_html_join(
        "", '<line class="grid" x1="{0}" y1="{1}" x2="{0}" y2="{2}"/>'
            '<text x="{0}" y="{3}" text-anchor="middle">{4}</text>',
        ((x(ms), AXIS_H - 6, height, AXIS_H - 9, f"{ms} ms" if ms else "0")
         for ms in range(low, high + 1, step)))
    vad = format_html('<line class="vad" x1="{0}" y1="{1}" x2="{0}" y2="{2}">'
                      '<title>{3}</title></line>', x(0), AXIS_H - 6, height,
                      "0 ms: the caller stopped speaking (VAD)")
    body = mark_safe("".join(_row(row, y=AXIS_H + i * ROW_H, x=x) for i, row in enumerate(rows)))
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="tom-waterfall" width="{0}" '
        'height="{1}" viewBox="0 0 {0} {1}" role="img" aria-label="{2}"><style>{3}</style>'
        '{4}{5}{6}</svg>',
        WIDTH, height, "Latency per turn, in ms after the caller stopped speaking",
        mark_safe(STYLE), grid, vad, body)


def _row(row: TurnBars, *, y: int, x: Any) -> str:
    mid = y + ROW_H // 2
    top = mid - BAR_H // 2
    how = " (estimated: an old turn, its stages laid end to end)" if row.estimated else ""
    bars = format_html_join("", (
        '<g class="bar stage-{0}" data-stage="{0}" data-ms="{1}" data-start-ms="{2}">'
        '<rect x="{3}" y="{4}" width="{5}" height="{6}"><title>{7}</title></rect>{8}</g>'), (
        (bar.stage, bar.ms, bar.start_ms, x(bar.start_ms), top,
         round(x(bar.end_ms) - x(bar.start_ms), 1), BAR_H,
         f"{bar.label}: {bar.ms} ms ({bar.start_ms} → {bar.end_ms} ms){how}",
         format_html('<text x="{}" y="{}" text-anchor="middle">{}</text>',
                     round((x(bar.start_ms) + x(bar.end_ms)) / 2, 1), mid + 4, bar.ms)
         if x(bar.end_ms) - x(bar.start_ms) >= MIN_LABEL_W else "")
        for bar in row.bars))
    ticks = format_html_join("", (
        '<line class="tick" data-mark="{0}" x1="{1}" y1="{2}" x2="{1}" y2="{3}">'
        '<title>{4}: {5} ms</title></line>'),
        ((mark, x(ms), top - 3, top + BAR_H + 3, MARKS[mark], ms) for mark, ms in row.ticks))
    total = (format_html("e2e {} ms", row.total_ms) if row.total_ms is not None
             else format_html("{}", "no timings" if not row.bars else ""))
    barge = format_html(
        '<g class="barge-in" data-turn="{0}"><path d="M{1},{2} l10,0 l-5,{3} z"/>'
        '<title>{4}</title></g>', row.index, WIDTH - 14, top, BAR_H,
        f"The caller interrupted this reply{row.heard}") if row.barge_in else ""
    return format_html(
        '<g class="turn" data-turn="{0}"{1}><text x="4" y="{2}">turn {0}</text>{3}{4}'
        '<text class="total" x="{5}" y="{2}">{6}</text>{7}</g>',
        row.index, mark_safe(' data-estimated="true"') if row.estimated else "",
        mid + 4, bars, ticks, WIDTH - TOTAL_W + 6, total, barge)
