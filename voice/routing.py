"""WebSocket routes of the voice path.

The FreeSWITCH fork endpoints (``/ws/fork/``, ``/ws/audio-stream/``) are added by
the telephony bridge; until then every WebSocket is refused by the router.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

websocket_urlpatterns: list[URLPattern | URLResolver] = []
