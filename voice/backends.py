"""STT, LLM, TTS and VAD backends: one setting per kind, one handler that loads them.

Each kind has a setting (``TOM_STT_BACKEND``, ``TOM_LLM_BACKEND``, ``TOM_TTS_BACKEND``,
``TOM_VAD_BACKEND``) holding a short alias (``whisper``, ``ollama``…) or the dotted path
of a class that subclasses the kind's base class. The class is imported once per process
and setting value (``django.utils.module_loading.import_string``, as Django's
``CACHES`` and ``SESSION_ENGINE`` are loaded: ``django/utils/connection.py``), and its
instances are built once per configuration and shared by every call, because a model
takes seconds to load. Each backend class answers ``check()`` with system-check
messages about its own configuration; ``backends_check`` gathers them for
``voice.checks``. A value that cannot be loaded is a check error (``voice.E010``) and,
at call time, ``BackendUnavailable`` with the same words, never a bare ``ImportError``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


class BackendError(ImproperlyConfigured):
    """A backend setting names nothing loadable, or a class of the wrong kind."""


class BackendUnavailable(RuntimeError):
    """The configured backend cannot answer calls in this process (and why)."""


@dataclass(frozen=True, slots=True)
class BackendKind:
    name: str
    setting: str
    base: str  # dotted path of the base class every backend of this kind subclasses
    aliases: Mapping[str, str]


KINDS: dict[str, BackendKind] = {kind.name: kind for kind in (
    BackendKind("stt", "TOM_STT_BACKEND", "voice.stt.SttBackend", {
        "whisper": "voice.stt.WhisperStt",
        "openai": "voice.providers.OpenAiStt",
        "speech-server": "voice.speech.backend.SpeechServerStt",  # out of process, batched
    }),
    BackendKind("llm", "TOM_LLM_BACKEND", "voice.llm.LlmBackend", {
        "llama_cpp": "voice.llm.LlamaCppLlm",
        "llamacpp": "voice.llm.LlamaCppLlm",  # the name before issue 15
        "llamacpp-server": "voice.inference.backend.LlamaServerLlm",  # out of process, batched
        "ollama": "voice.providers.OllamaLlm",
        "openai": "voice.providers.OpenAiLlm",
    }),
    BackendKind("tts", "TOM_TTS_BACKEND", "voice.tts.TtsBackend", {
        "piper": "voice.tts.PiperTts",
        "espeak": "voice.tts.EspeakTts",
        "openai": "voice.providers.OpenAiTts",
        "speech-server": "voice.speech.backend.SpeechServerTts",  # out of process
    }),
    BackendKind("vad", "TOM_VAD_BACKEND", "voice.vad.VadBackend", {
        "webrtc": "voice.vad.WebrtcClassifier",
        "silero": "voice.vad.SileroClassifier",
    }),
)}


class BackendHandler:
    """Resolves each kind's setting to its class and keeps the instances built from it.

    Classes are cached per (kind, setting value) and instances per (class, the
    configuration the class says it was built from), so a test that overrides a setting
    gets the backend it names while every call of a process shares one loaded model.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._classes: dict[tuple[str, str], type[Any]] = {}
        self._instances: dict[tuple[Any, ...], Any] = {}
        self._loading: dict[tuple[Any, ...], threading.Lock] = {}

    def spec(self, kind: str) -> str:
        return str(getattr(settings, KINDS[kind].setting) or "").strip()

    def backend_class(self, kind: str, spec: str | None = None) -> type[Any]:
        """The class ``spec`` (default: the kind's setting) names; raises ``BackendError``."""
        value = self.spec(kind) if spec is None else spec.strip()
        key = (kind, value)
        cached = self._classes.get(key)
        if cached is None:
            cached = self._classes.setdefault(key, _resolve(KINDS[kind], value))
        return cached

    def instance(self, kind: str, **options: Any) -> Any:
        """The process-wide backend of ``kind`` for ``options``, built on first use.

        Raises ``BackendUnavailable`` when the setting cannot be loaded or the backend
        refuses its endpoint (the egress policy); a missing model raises the backend's
        own error (``ModelError``, ``TtsError``), which names the file.
        """
        from voice.egress import EgressRefused

        try:
            cls = self.backend_class(kind)
        except BackendError as exc:
            raise BackendUnavailable(str(exc)) from None
        key = (cls, cls.settings_key(**options))
        found = self._instances.get(key)
        if found is not None:  # the common case, on every turn: no lock at all
            return found
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        # One lock per configuration: two calls never load one model twice, and a call
        # loading a new Whisper model does not hold up another call's cached TTS.
        with key_lock:
            if key not in self._instances:
                try:
                    self._instances[key] = cls.from_settings(**options)
                except EgressRefused as exc:
                    raise BackendUnavailable(str(exc)) from None
            return self._instances[key]


def _resolve(kind: BackendKind, value: str) -> type[Any]:
    setting = kind.setting
    if not value:
        raise BackendError(f"{setting} is empty: set it to one of "
                           f"{', '.join(kind.aliases)} or a dotted path to a class.")
    path = kind.aliases.get(value.lower())
    if path is None:
        if "." not in value:
            raise BackendError(f"{setting}={value!r} is neither an alias "
                               f"({', '.join(kind.aliases)}) nor a dotted path.")
        path = value
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise BackendError(f"{setting}={value!r} cannot be imported: {exc}") from None
    base = import_string(kind.base)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise BackendError(f"{setting}={value!r} is not a subclass of {kind.base}.")
    return cls


handler = BackendHandler()


def backend_class(kind: str, *, spec: str | None = None) -> type[Any]:
    """The class configured for ``kind`` ("stt", "llm", "tts", "vad")."""
    return handler.backend_class(kind, spec)


def backend_instance(kind: str, **options: Any) -> Any:
    """The shared instance of ``kind``'s configured backend for ``options``."""
    return handler.instance(kind, **options)


def backends_check(*, kinds: tuple[str, ...] = tuple(KINDS)) -> list[CheckMessage]:
    """Every configured backend's ``check()`` messages, each once (``voice.E010`` for a
    setting that names nothing loadable)."""
    messages: list[CheckMessage] = []
    for name in kinds:
        try:
            cls = handler.backend_class(name)
        except BackendError as exc:
            messages.append(Error(str(exc), hint=f"See env.sample for {KINDS[name].setting}.",
                                  id="voice.E010"))
            continue
        # The OpenAI backends share one endpoint: say what is wrong with it once.
        messages.extend(m for m in cls.check() if m not in messages)
    return messages


def endpoint_check(*, url: str, setting: str) -> list[CheckMessage]:
    """An HTTP backend's endpoint: a well-formed http(s) URL the egress policy allows."""
    from voice.egress import endpoint_is_local

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return [Error(f"{setting}={url!r} is not an http(s) URL with a host.",
                      hint="e.g. http://127.0.0.1:8080/v1 (see env.sample).",
                      id="voice.E011")]
    if not settings.ALLOW_EGRESS and not endpoint_is_local(url):
        return [Error(f"{setting} points at {parsed.hostname}, outside the local network, "
                      "and ALLOW_EGRESS is false: every call would be refused.",
                      hint="Use a loopback/private endpoint or set ALLOW_EGRESS=true.",
                      id="voice.E012")]
    return []
