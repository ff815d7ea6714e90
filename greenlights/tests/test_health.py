from __future__ import annotations

import pytest
from django.conf import settings
from django.test import AsyncClient


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
