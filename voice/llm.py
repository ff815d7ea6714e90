"""Language models: a streaming chat interface over llama.cpp (in-process), Ollama and
OpenAI-compatible servers.

``stream`` is a blocking generator of typed deltas (voice.llm_deltas: spoken text and
tool-call requests), run in a worker thread by the session; ``cancel`` (a
``threading.Event``) stops generation between tokens, which is how barge-in frees the
model within one token's time.
"""

from __future__ import annotations

import abc
import atexit
import os
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

from voice import backends, models
from voice.llm_deltas import LlmDelta
from voice.llm_tags import ToolTagParser

Message = dict[str, Any]


class LlmBackend(abc.ABC):
    """What ``TOM_LLM_BACKEND`` names: built once per ``settings_key`` (voice.backends)."""

    @classmethod
    def from_settings(cls) -> LlmBackend:
        """A backend configured from settings."""
        return cls()

    @classmethod
    def settings_key(cls) -> tuple[Any, ...]:
        """What ``from_settings`` reads: instances are shared while it stays the same."""
        return ()

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System-check messages about this backend's configuration."""
        return []

    @abc.abstractmethod
    def stream(self, messages: list[Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        """Yield the reply as ``TextDelta``s and ``ToolCallRequest``s (``ToolCallInvalid``
        for a call that cannot be read); stop early when ``cancel`` is set.

        With ``tools`` (OpenAI "tools" schemas) the model may call one. A backend whose
        server returns structured calls yields them as they are; one whose model writes
        them as text reads them out of it (voice.llm_tags) before yielding.
        """


class LlamaCppLlm(LlmBackend):
    def __init__(self, model_path: str) -> None:
        from llama_cpp import Llama

        if not os.path.exists(model_path):
            raise models.ModelError(f"no GGUF model at {model_path}: run manage.py tom_models")
        threads = settings.TOM_LLM_THREADS or os.cpu_count() or 2
        self.llm = Llama(model_path=model_path, n_ctx=settings.TOM_LLM_CONTEXT_TOKENS,
                         n_threads=threads, n_gpu_layers=settings.TOM_LLM_GPU_LAYERS,
                         verbose=False)
        # One llama context cannot serve two generations at once.
        self._lock = threading.Lock()
        # Free the model before the interpreter tears down the C library it lives in.
        atexit.register(self.llm.close)
        # llama.cpp reuses the KV cache for the longest prefix shared with the previous
        # prompt: evaluating the system prompt now spares the first caller ~0.4 s.
        language = str(settings.TOM_LANGUAGE or "en")
        self.llm.create_chat_completion(
            messages=[{"role": "system", "content": system_prompt(language=language)},
                      {"role": "user", "content": "Hallo" if language.startswith("de")
                       else "Hello"}],
            max_tokens=1,
        )

    @classmethod
    def from_settings(cls) -> LlmBackend:
        return cls(str(models.llm_model_path()))

    @classmethod
    def settings_key(cls) -> tuple[Any, ...]:
        return (str(models.llm_model_path()),)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        if models.llm_model_path().exists():
            return []
        return [Error(f"LLM model {models.llm_model_path()} does not exist.",
                      hint="Run `python manage.py tom_models`, or set TOM_LLM_MODEL_PATH to a "
                           "GGUF file.", id="voice.E002")]

    def stream(self, messages: list[Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        # The GGUF's chat template renders the tools into the system turn; the model
        # answers with <tool_call> tags or bare JSON in its text, read out here.
        parser = ToolTagParser()
        with self._lock:
            chunks: Any = self.llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                tools=tools or None,  # type: ignore[arg-type]
                stream=True, max_tokens=settings.TOM_LLM_MAX_TOKENS,
                temperature=settings.TOM_LLM_TEMPERATURE,
            )
            for chunk in chunks:
                if cancel.is_set():
                    return  # a cancelled reply's held text is not wanted
                content = chunk["choices"][0].get("delta", {}).get("content")
                if content:
                    yield from parser.feed(str(content))
        yield from parser.flush()  # a call left unclosed, or text held at the end


def get_llm() -> LlmBackend:
    """The process-wide LLM backend from ``TOM_LLM_BACKEND``."""
    backend: LlmBackend = backends.backend_instance("llm")
    return backend


def system_prompt(*, language: str) -> str:
    """The persona's instructions, from ``TOM_SYSTEM_PROMPT`` or built in per language."""
    if settings.TOM_SYSTEM_PROMPT:
        return str(settings.TOM_SYSTEM_PROMPT)
    name = settings.TOM_PERSONA_NAME
    if language.startswith("de"):
        return (f"Du bist {name}, der freundliche Telefonassistent eines Autoteilehändlers. "
                "Antworte auf Deutsch in ein oder zwei kurzen, gesprochenen Sätzen, ohne "
                "Aufzählungen, Markdown oder Emojis. Stehen am Ende der Nachricht Daten aus "
                "unserem System in Klammern, antworte nur mit diesen Daten und nenne "
                "Teilenummern und Preise genau so.")
    return (f"You are {name}, the friendly phone assistant of a car parts shop. Answer in "
            "one or two short spoken sentences, without lists, markdown or emojis. When the "
            "caller's message ends with data from our system in brackets, answer only from "
            "that data and say part numbers and prices exactly as given.")
