"""What a greenlight check is: a named, categorised function that measures something live
and grades the measurement green, yellow or red against thresholds from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from greenlights.models import State


@dataclass
class Outcome:
    state: str
    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    call_id: int | None = None


@dataclass(frozen=True)
class Check:
    name: str
    category: str
    func: Callable[[RunContext], Outcome]
    timeout_s: float


REGISTRY: dict[str, Check] = {}


def check(*, name: str, category: str, timeout_s: float = 30.0) -> Callable[
        [Callable[[RunContext], Outcome]], Callable[[RunContext], Outcome]]:
    def register(func: Callable[[RunContext], Outcome]) -> Callable[[RunContext], Outcome]:
        REGISTRY[name] = Check(name=name, category=category, func=func, timeout_s=timeout_s)
        return func
    return register


# (green up to, yellow up to); above the second is red. Milliseconds unless named.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "stt_latency": (300, 1500),
    "llm_latency": (500, 1500),
    "tts_latency": (200, 600),
    "e2e_latency": (800, 2500),
    "barge_in": (120, 250),
    "audio_quality_wer": (0.2, 0.5),
}


def thresholds(name: str) -> tuple[float, float]:
    configured = settings.TOM_GREENLIGHTS_THRESHOLDS.get(name)
    if configured:
        return float(configured[0]), float(configured[1])
    return DEFAULT_THRESHOLDS[name]


def grade(name: str, value: float | None) -> str:
    """Green, yellow or red for a measurement where lower is better; red if missing."""
    if value is None:
        return State.RED
    green, yellow = thresholds(name)
    if value <= green:
        return State.GREEN
    return State.YELLOW if value <= yellow else State.RED


class RunContext:
    """What the checks of one run share: the web endpoint and one synthetic call."""

    def __init__(self, *, web_url: str, ws_url: str) -> None:
        self.web_url, self.ws_url = web_url.rstrip("/"), ws_url.rstrip("/")
        self._lock = threading.Lock()
        self._probe: Any = None
        self._probe_error: BaseException | None = None
        self.metrics_before: dict[str, float] | None = None

    def call_probe(self) -> Any:
        """The run's synthetic call (placed once, on first use) — see checks.calls."""
        from greenlights.checks.calls import place_probe_call

        with self._lock:
            if self._probe is None and self._probe_error is None:
                try:
                    self._probe = place_probe_call(self)
                except Exception as exc:  # every check that needs it reports the reason
                    self._probe_error = exc
            if self._probe_error is not None:
                raise RuntimeError(f"the synthetic call failed: {self._probe_error}")
            return self._probe
