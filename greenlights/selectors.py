"""Live health of the services TOM depends on, as measured values rather than verdicts."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

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
    """Probe the database and the channel layer; ``ok`` only if every probe is."""
    probes = [await database_sync_to_async(_database_probe)(), await _channel_layer_probe()]
    return {"ok": all(p.ok for p in probes), "probes": [asdict(p) for p in probes]}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
