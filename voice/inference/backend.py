"""``TOM_LLM_BACKEND=llamacpp-server``: the OpenAI-compatible backend, pointed at the
host's llama-server (voice.inference.host) instead of ``TOM_PROVIDER_BASE_URL``.

Streaming, typed deltas and structured tool calls are the OpenAI backend's; this class
only finds the server, waits for it while it (re)starts, and tells the host view when a
request to it failed, so that the next turn asks whether it is back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
from django.conf import settings
from django.core.checks import CheckMessage, Error

from voice import models
from voice.backends import endpoint_check
from voice.egress import check_endpoint
from voice.inference import server
from voice.inference.host import HostServer, host_server
from voice.llm import LlmBackend, Message
from voice.llm_deltas import LlmDelta
from voice.providers import OpenAiLlm


class LlamaServerLlm(OpenAiLlm):
    """llama.cpp's llama-server with ``TOM_LLM_PARALLEL`` slots, out of this process."""

    def __init__(self, host: HostServer) -> None:
        # Not OpenAiLlm.__init__: no provider URL or API key; the client follows the server.
        self.host = host
        self.model = server.MODEL_ALIAS
        self._base = ""
        self._client_guard = threading.Lock()

    @classmethod
    def from_settings(cls) -> LlmBackend:
        host = host_server()
        if not host.external_url and not models.llm_model_path().exists():
            # At once, as in process: a llama-server without its model never becomes healthy.
            raise models.ModelError(
                f"no GGUF model at {models.llm_model_path()}: run manage.py tom_models")
        # Built once per process, by the warm-up or the first call: the model loads here.
        host.endpoint(timeout=settings.TOM_LLM_SERVER_START_TIMEOUT_S)
        return cls(host)

    @classmethod
    def settings_key(cls) -> tuple[Any, ...]:
        return (settings.TOM_DATA_DIR, settings.TOM_LLM_SERVER_URL,
                settings.TOM_LLM_SERVER_PORT, settings.TOM_LLM_SERVER_BIN,
                str(models.llm_model_path()), settings.TOM_LLM_PARALLEL,
                settings.TOM_LLM_CONTEXT_TOKENS, settings.TOM_PROVIDER_TIMEOUT_S)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        if settings.TOM_LLM_SERVER_URL:  # someone else runs it: only its address matters
            return endpoint_check(url=settings.TOM_LLM_SERVER_URL, setting="TOM_LLM_SERVER_URL")
        messages: list[CheckMessage] = []
        if server.server_binary() is None:
            where = (f"TOM_LLM_SERVER_BIN={settings.TOM_LLM_SERVER_BIN!r} is not an "
                     "executable file" if settings.TOM_LLM_SERVER_BIN else
                     "no llama-server in .venv/bin or on PATH")
            messages.append(Error(
                f"TOM_LLM_BACKEND=llamacpp-server but {where}.",
                hint="Run deploy/local/run.sh (deploy/local/_llama_server.sh builds it), set "
                     "TOM_LLM_SERVER_BIN, or TOM_LLM_SERVER_URL for a server run elsewhere.",
                id="voice.E020"))
        if not models.llm_model_path().exists():
            messages.append(Error(
                f"LLM model {models.llm_model_path()} does not exist.",
                hint="Run `python manage.py tom_models`, or set TOM_LLM_MODEL_PATH to a "
                     "GGUF file.", id="voice.E002"))
        return messages

    def stream(self, messages: list[Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        # A server restarting after a crash is waited for (within the provider timeout);
        # one that is not back by then fails this turn, which then apologises.
        base = self.host.endpoint(timeout=settings.TOM_PROVIDER_TIMEOUT_S)
        with self._client_guard:
            if base != self._base:
                if self.host.external_url:
                    check_endpoint(base)  # the egress policy, as for any provider
                self.client = httpx.Client(base_url=f"{base}/v1/",
                                           timeout=settings.TOM_PROVIDER_TIMEOUT_S)
                self._base = base
        try:
            yield from super().stream(messages, cancel=cancel, tools=tools)
        except httpx.TransportError:
            self.host.unreachable()
            raise
