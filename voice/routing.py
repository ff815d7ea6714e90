"""WebSocket routes of the voice path: the FreeSWITCH fork endpoints."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from voice.consumers import AudioStreamConsumer, ForkConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/fork/", ForkConsumer.as_asgi()),
    path("ws/audio-stream/", AudioStreamConsumer.as_asgi()),
]
