from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient

from voice import warmup
from voice.warmup import WarmState, WarmStatus


@pytest.fixture(autouse=True)
def serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a web process that warmed up (the default backend is local)."""
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.WARM, seconds=3.2))


@pytest.mark.django_db
async def test_healthz_probes_database_and_channel_layer() -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    probes = {p["name"]: p for p in body["probes"]}
    assert body["ok"] is True
    assert probes["database"]["ok"] and probes["database"]["detail"] == (
        "postgresql" if settings.DATABASE_URL else "sqlite")
    expected_layer = "RedisChannelLayer" if settings.REDIS_URL else "InMemoryChannelLayer"
    assert probes["channel_layer"] == {**probes["channel_layer"], "ok": True,
                                       "detail": expected_layer}


@pytest.mark.django_db
async def test_healthz_reports_a_dead_channel_layer(settings: object) -> None:
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {  # type: ignore[attr-defined]
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}},
    }
    channel_layers.backends.clear()
    try:
        response = await AsyncClient().get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    probes = {p["name"]: p for p in response.json()["probes"]}
    assert probes["channel_layer"]["ok"] is False and probes["database"]["ok"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("state", [WarmState.PENDING, WarmState.WARMING, WarmState.FAILED])
async def test_healthz_answers_503_until_the_process_is_warm(
        state: WarmState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_status", WarmStatus(state, error="ModelError"
                                                      if state is WarmState.FAILED else ""))
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["warm"] is False
    assert body["warm_up"]["state"] == state
    assert all(p["ok"] for p in body["probes"])  # the services answer: only warmth is missing
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.WARM, seconds=3.2))
    warm = await AsyncClient().get("/healthz")
    assert warm.status_code == 200 and warm.json()["warm"] is True
    assert warm.json()["warm_up"]["seconds"] == 3.2


@pytest.mark.django_db
async def test_healthz_of_the_echo_session_or_with_warm_up_off(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.WARMING))
    settings.TOM_SESSION_BACKEND = "echo"  # nothing to load: warm at once
    echo = await AsyncClient().get("/healthz")
    assert echo.status_code == 200 and echo.json()["warm"] is True
    settings.TOM_SESSION_BACKEND, settings.TOM_WARM_UP = "local", False
    off = await AsyncClient().get("/healthz")
    assert off.status_code == 200
    assert off.json()["warm"] is False and off.json()["warm_up"]["state"] == "off"


@pytest.mark.django_db
async def test_a_process_that_serves_no_calls_is_not_held_to_warmth(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-check command's own probes: it reads the web process's /healthz."""
    monkeypatch.setattr(warmup, "_status", WarmStatus(WarmState.NONE))
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200 and response.json()["warm"] is False
