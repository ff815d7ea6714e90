"""Live health of the services TOM depends on, as measured values rather than verdicts."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from voice.admission import admission_capacity_status
from voice.warmup import warm_status

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    ok: bool
    ms: float
    detail: str = ""


def _database_probe() -> Probe:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not healthy", with the reason
        return Probe("database", False, _ms(started), type(exc).__name__)
    return Probe("database", True, _ms(started), connection.vendor)


async def _channel_layer_probe() -> Probe:
    """Send a message to ourselves through the channel layer and read it back."""
    import asyncio

    started = time.perf_counter()
    layer = get_channel_layer()
    if layer is None:
        return Probe("channel_layer", False, 0.0, "CHANNEL_LAYERS not configured")
    try:
        channel = await layer.new_channel("health.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await asyncio.wait_for(layer.receive(channel), PROBE_TIMEOUT_S)
    except Exception as exc:  # Redis down, timeout: report it as unhealthy
        return Probe("channel_layer", False, _ms(started), type(exc).__name__)
    ok = message.get("token") == token
    return Probe("channel_layer", ok, _ms(started), type(layer).__name__)


async def health_status() -> dict[str, Any]:
    """Probe the database and the channel layer; ``ok`` only if every probe is and the
    process is ready for calls: warm (voice.warmup), or not meant to warm up. ``capacity``:
    the calls served at once before the busy message, and where that number comes from."""
    probes = [await database_sync_to_async(_database_probe)(), await _channel_layer_probe()]
    warm = warm_status()
    return {"ok": all(p.ok for p in probes) and warm.ready, "warm": warm.warm,
            "warm_up": warm.as_dict(), "capacity": admission_capacity_status().as_dict(),
            "probes": [asdict(p) for p in probes]}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _broker_probe() -> Probe:
    """Open a connection to the Celery broker (Redis, or the embedded filesystem one)."""
    from tomsite.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=int(PROBE_TIMEOUT_S))
    except Exception as exc:  # unreachable broker: unhealthy, with the reason
        return Probe("broker", False, _ms(started), type(exc).__name__)
    return Probe("broker", True, _ms(started), app.conf.broker_url.split("://")[0])


def _web_probe(url: str) -> Probe:
    """The web process answers /healthz and reports itself healthy."""
    import json
    import urllib.request

    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz",  # noqa: S310
                                    timeout=PROBE_TIMEOUT_S) as response:
            ok = bool(json.loads(response.read()).get("ok"))
    except Exception as exc:  # refused, timeout, 503: the web process is not healthy
        return Probe("web", False, _ms(started), type(exc).__name__)
    return Probe("web", ok, _ms(started), url)


async def selfcheck_status(*, web_url: str | None = None) -> dict[str, Any]:
    """``health_status`` plus the broker and, given its URL, the web process."""
    status = await health_status()
    probes = [await database_sync_to_async(_broker_probe)()]
    if web_url:
        probes.append(await database_sync_to_async(_web_probe)(web_url))
    status["probes"] += [asdict(p) for p in probes]
    status["ok"] = status["ok"] and all(p.ok for p in probes)
    return status


@dataclass(frozen=True, slots=True)
class Measure:
    """The number a check's sparkline follows: a key of its result's ``values``."""

    key: str
    label: str
    unit: str


# A check missing here measures nothing worth a trend (its result is a verdict).
TREND_VALUES = {
    "stt_latency": Measure("worst_ms", "worst STT", "ms"),
    "llm_latency": Measure("worst_ms", "worst LLM first token", "ms"),
    "tts_latency": Measure("worst_ms", "worst TTS first audio", "ms"),
    "e2e_latency": Measure("client_ms", "first reply, caller's clock", "ms"),
    "barge_in": Measure("barge_in_ms", "killAudio after the interruption", "ms"),
    "audio_quality": Measure("wer", "WER of the agent's speech", ""),
    "rl_reward": Measure("mean_reward", "mean reward", ""),
}

SPARK_W, SPARK_H = 120, 24


@dataclass(frozen=True, slots=True)
class Trend:
    """One check's measured value over the last runs, oldest first, as a sparkline."""

    measure: Measure
    values: list[float]
    points: str  # the SVG polyline's points, scaled to the box's min and max

    @property
    def latest(self) -> str:
        return _number(self.values[-1], self.measure.unit)

    @property
    def title(self) -> str:
        unit = self.measure.unit
        return (f"{self.measure.label}, last {len(self.values)} runs: "
                f"min {_number(min(self.values), unit)}, max {_number(max(self.values), unit)}, "
                f"latest {self.latest}")

    @property
    def last_point(self) -> tuple[str, str]:
        x, y = self.points.rsplit(" ", 1)[-1].split(",")
        return x, y


def _number(value: float, unit: str) -> str:
    text = f"{value:.0f}" if unit == "ms" or value == int(value) else f"{value:.3g}"
    return f"{text} {unit}".strip()


def result_event(result: Any) -> dict[str, Any]:
    """What the page (and its event stream) shows of one result."""
    from django.urls import reverse

    return {"check": result.name, "category": result.category, "state": result.state,
            "summary": result.summary, "values": result.values, "error": result.error,
            "ms": result.ms, "call_url": reverse("admin:calls_call_change", args=[result.call_id])
            if result.call_id else None}


def trend_value(*, name: str, values: dict[str, Any]) -> float | None:
    """The measured value ``name``'s result carries, or ``None`` (not measured, failed)."""
    measure = TREND_VALUES.get(name)
    value = values.get(measure.key) if measure else None
    if isinstance(value, list):  # per turn: the first reply is the one the check grades
        value = value[0] if value else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def sparkline(points: list[float], *, width: int = SPARK_W, height: int = SPARK_H) -> str:
    """An SVG polyline's points for ``points`` (oldest first), scaled to the box: the
    lowest value at the bottom, the highest at the top, 1 px clear of each edge."""
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    return " ".join(f"{i * step:.1f},{height - (p - low) / span * (height - 2) - 1:.1f}"
                    for i, p in enumerate(points))


def check_trends(*, runs: list[Any]) -> dict[str, Trend]:
    """Each measured check's value over ``runs`` (any order), where it has two or more."""
    from greenlights.models import GreenlightResult

    series: dict[str, list[float]] = {}
    results = (GreenlightResult.objects.filter(run__in=runs, name__in=list(TREND_VALUES))
               .order_by("run__started_at", "run_id").only("name", "values"))
    for result in results:
        value = trend_value(name=result.name, values=result.values)
        if value is not None:
            series.setdefault(result.name, []).append(value)
    return {name: Trend(measure=TREND_VALUES[name], values=values, points=sparkline(values))
            for name, values in series.items() if len(values) >= 2}


def page_state(*, history: int = 20) -> dict[str, Any]:
    from greenlights.checks import REGISTRY
    from greenlights.models import GreenlightResult, GreenlightRun

    runs = list(GreenlightRun.objects.order_by("-started_at")[:history])
    latest: dict[str, Any] = {}
    for result in GreenlightResult.objects.filter(run__in=runs).order_by("-run__started_at",
                                                                        "-id"):
        latest.setdefault(result.name, result)
    trends = check_trends(runs=runs)
    tiles = [{"name": c.name, "category": c.category,
              "result": result_event(latest[c.name]) if c.name in latest else None,
              "trend": trends.get(c.name)} for c in REGISTRY.values()]
    return {"tiles": tiles, "runs": runs,
            "running": next((r for r in runs if r.state == "running"), None)}
