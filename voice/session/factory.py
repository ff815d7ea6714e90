"""Pick the session backend from ``TOM_SESSION_BACKEND``."""

from __future__ import annotations

from django.conf import settings

from calls.variants import VariantParameters
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession


class BackendUnavailable(RuntimeError):
    """The configured backend cannot answer calls in this process (and why)."""


def create_session(*, call: CallStart, backend: str | None = None,
                   call_id: int | None = None,
                   params: VariantParameters | None = None) -> RealtimeSession:
    name = backend or settings.TOM_SESSION_BACKEND
    if name == "echo":
        from voice.session.echo import EchoSession

        return EchoSession(call=call)
    if name == "local":
        from voice.session.local import LocalSession
        from voice.tools import default_hook

        return LocalSession(call=call, tool_hook=default_hook(), call_id=call_id,
                            params=params)
    if name == "provider":
        from voice.egress import EgressRefused
        from voice.providers import OpenAiLlm, OpenAiStt, OpenAiTts
        from voice.session.local import LocalSession
        from voice.tools import default_hook

        try:
            return LocalSession(call=call, stt_backend=OpenAiStt(), llm_backend=OpenAiLlm(),
                                tts_backend=OpenAiTts(), tool_hook=default_hook(),
                                call_id=call_id, params=params)
        except EgressRefused as exc:
            raise BackendUnavailable(str(exc)) from None
    raise BackendUnavailable(f"session backend {name!r} is not available in this build")
