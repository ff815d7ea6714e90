"""Pick the session kind from ``TOM_SESSION_BACKEND``: ``local`` or ``echo``.

The STT, LLM, TTS and VAD inside a local session are each chosen by their own
``TOM_*_BACKEND`` setting (voice.backends). ``provider`` is kept as a deprecated name of
``local``: tomsite.tom_settings turns it into the ``openai`` STT/LLM/TTS backends where
their settings are not set, so an explicit ``TOM_LLM_BACKEND=ollama`` still wins.
"""

from __future__ import annotations

from django.conf import settings

from calls.variants import VariantParameters
from voice import backends
from voice.backends import BackendUnavailable as BackendUnavailable  # re-exported
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession


def create_session(*, call: CallStart, backend: str | None = None,
                   call_id: int | None = None,
                   params: VariantParameters | None = None) -> RealtimeSession:
    """A session for ``call``; raises ``BackendUnavailable`` (with the reason) when the
    configured session kind or one of its backends cannot be loaded."""
    name = backend or settings.TOM_SESSION_BACKEND
    if name == "echo":
        from voice.session.echo import EchoSession

        return EchoSession(call=call)
    if name in ("local", "provider"):
        from voice.session.local import LocalSession
        from voice.tools import default_hook

        # A setting that names nothing loadable refuses the call now, in words, rather
        # than as an ImportError once the models start loading.
        for kind in ("stt", "llm", "tts"):
            try:
                backends.backend_class(kind)
            except backends.BackendError as exc:
                raise BackendUnavailable(str(exc)) from None
        return LocalSession(call=call, tool_hook=default_hook(), call_id=call_id,
                            params=params)
    raise BackendUnavailable(f"session backend {name!r} is not available in this build")
