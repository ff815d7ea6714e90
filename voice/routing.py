"""WebSocket routes of the voice path: the FreeSWITCH fork endpoints, and the console's
test call (a browser: its Django session and the page's Origin are checked, which the
fork routes cannot rely on since FreeSWITCH has neither)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import URLPattern, URLResolver, path

from voice.browser_call import BrowserCallConsumer
from voice.consumers import AudioStreamConsumer, ForkConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/fork/", ForkConsumer.as_asgi()),
    path("ws/audio-stream/", AudioStreamConsumer.as_asgi()),
    path("ws/console/call/", AllowedHostsOriginValidator(
        AuthMiddlewareStack(BrowserCallConsumer.as_asgi()))),
]
