"""Reads for the console's pages: the open calls, and one call with its turns."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch

from calls import selectors as call_selectors
from calls.models import Call, CallTurn

OPEN = (Call.Status.NEW, Call.Status.ACTIVE)


def live_row(state: dict[str, Any]) -> dict[str, Any]:
    """A board row from a call's live state (voice.live.LiveCall.state), with its
    latency so far in words."""
    latencies = [int(ms) for ms in state.get("latencies_ms") or []]
    seconds = max(0, int(time.time() - float(state.get("started_at") or time.time())))
    return {**state, "latency": latency_words(latencies), "replies": len(latencies),
            "duration": f"{seconds // 60}:{seconds % 60:02d}"}


def latency_words(latencies: list[int]) -> str:
    if not latencies:
        return "no reply yet"
    last = latencies[-1] / 1000
    if len(latencies) == 1:
        return f"{last:.2f} s"
    return f"last {last:.2f} s · median {statistics.median(latencies) / 1000:.2f} s"


def board_rows(*, now: datetime) -> tuple[list[dict[str, Any]], list[Call]]:
    """The open calls as board rows (their state as far as the database knows it), and
    the stale ones apart: those the live stream will never report."""
    rows: list[dict[str, Any]] = []
    stale: list[Call] = []
    turns = CallTurn.objects.order_by("index")
    calls = (Call.objects.filter(status__in=OPEN).order_by("started_at")
             .prefetch_related(Prefetch("turns", queryset=turns)))
    for call in calls:
        if call_selectors.call_is_stale(call=call, now=now):
            stale.append(call)
            continue
        done = list(call.turns.all())
        rows.append(live_row({
            "uuid": call.uuid, "call_id": call.pk, "started_at": call.started_at.timestamp(),
            "language": call.language, "variant": call.policy_variant,
            "synthetic": call.synthetic,
            "stage": "listening" if call.status == Call.Status.ACTIVE else "ringing",
            "turn": len(done), "caller_line": done[-1].caller_text if done else "",
            "agent_line": done[-1].agent_text if done else "",
            "latencies_ms": [t.e2e_ms for t in done if t.e2e_ms is not None],
            "recording": bool(call.recording),
        }))
    return rows, stale


@dataclass(frozen=True)
class TurnView:
    turn: CallTurn
    offset_s: float | None  # where the caller began speaking, in the recording
    tool_calls: list[dict[str, Any]]


def call_turns(*, call: Call) -> list[TurnView]:
    """The call's turns, each with its place in the recording (seconds from its start)."""
    origin = call.answered_at or call.started_at
    views = []
    for turn in call.turns.order_by("index"):
        offset = (turn.started_at - origin).total_seconds() if origin else None
        views.append(TurnView(turn=turn, offset_s=max(0.0, offset) if offset is not None
                              else None, tool_calls=list(turn.tool_calls or [])))
    return views
