"""Pick the session backend from ``TOM_SESSION_BACKEND``."""

from __future__ import annotations

from django.conf import settings

from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession


class BackendUnavailable(RuntimeError):
    """The configured backend cannot answer calls in this process (and why)."""


def create_session(*, call: CallStart, backend: str | None = None) -> RealtimeSession:
    name = backend or settings.TOM_SESSION_BACKEND
    if name == "echo":
        from voice.session.echo import EchoSession

        return EchoSession(call=call)
    if name == "local":
        from voice.session.local import LocalSession

        return LocalSession(call=call)
    # The provider backend (OpenAI-compatible HTTP) is not built yet.
    raise BackendUnavailable(f"session backend {name!r} is not available in this build")
