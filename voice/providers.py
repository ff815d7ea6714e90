"""Model backends over HTTP: OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama's
``/v1``, clouds) and Ollama's native ``/api/chat``.

Each checks the endpoint against the egress policy before its first request, and its
``check()`` reports a malformed or refused endpoint as a system check (voice.backends).
Chat streams typed deltas (SSE for OpenAI, NDJSON for Ollama): content as ``TextDelta``,
the server's structured tool calls as ``ToolCallRequest``; STT posts a WAV to
``/v1/audio/transcriptions``; TTS asks ``/v1/audio/speech`` for raw 16-bit PCM.
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from collections.abc import Iterator
from typing import Any

import httpx
from django.conf import settings
from django.core.checks import CheckMessage

from voice.backends import endpoint_check
from voice.egress import check_endpoint
from voice.llm import LlmBackend, Message
from voice.llm_deltas import LlmDelta, TextDelta, tool_call_request
from voice.stt import SttBackend, Transcription
from voice.tts import TtsBackend

PROVIDER_TTS_RATE = 24000  # OpenAI's "pcm" response format: 24 kHz mono 16-bit


def _client(base_url: str) -> httpx.Client:
    check_endpoint(base_url)
    headers = ({"Authorization": f"Bearer {settings.TOM_PROVIDER_API_KEY}"}
               if settings.TOM_PROVIDER_API_KEY else {})
    return httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers,
                        timeout=settings.TOM_PROVIDER_TIMEOUT_S)


def _provider_key(model: str) -> tuple[Any, ...]:
    return (settings.TOM_PROVIDER_BASE_URL, settings.TOM_PROVIDER_API_KEY,
            settings.TOM_PROVIDER_TIMEOUT_S, model)


def _provider_check() -> list[CheckMessage]:
    return endpoint_check(url=settings.TOM_PROVIDER_BASE_URL, setting="TOM_PROVIDER_BASE_URL")


class OpenAiLlm(LlmBackend):
    def __init__(self, base_url: str | None = None, model: str | None = None) -> None:
        self.client = _client(base_url or settings.TOM_PROVIDER_BASE_URL)
        self.model = model or settings.TOM_PROVIDER_LLM_MODEL

    @classmethod
    def settings_key(cls) -> tuple[Any, ...]:
        return _provider_key(settings.TOM_PROVIDER_LLM_MODEL)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return _provider_check()

    def stream(self, messages: list[Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "max_tokens": settings.TOM_LLM_MAX_TOKENS,
                                "temperature": settings.TOM_LLM_TEMPERATURE}
        if tools:
            body["tools"] = tools
        calls: dict[int, dict[str, str]] = {}
        with self.client.stream("POST", "chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if cancel.is_set():
                    return  # leaving the context closes the connection: the server stops
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or [{}]
                delta = choices[0].get("delta") or {}
                # Tool calls stream as fragments of a JSON string per call index: the
                # id and name come first, the arguments in pieces after.
                for fragment in delta.get("tool_calls") or []:
                    call = calls.setdefault(int(fragment.get("index", 0)),
                                            {"id": "", "name": "", "arguments": ""})
                    call["id"] = call["id"] or str(fragment.get("id") or "")
                    function = fragment.get("function") or {}
                    call["name"] += function.get("name") or ""
                    call["arguments"] += function.get("arguments") or ""
                if delta.get("content"):
                    yield TextDelta(str(delta["content"]))
        for _, call in sorted(calls.items()):
            yield tool_call_request(name=call["name"], arguments=call["arguments"],
                                    call_id=call["id"])


class OllamaLlm(LlmBackend):
    """Ollama's own ``/api/chat`` through the official client (production Ollama servers)."""

    def __init__(self, host: str | None = None, model: str | None = None) -> None:
        import ollama

        host = host or settings.OLLAMA_HOST
        check_endpoint(host)
        self.client = ollama.Client(host=host, timeout=settings.TOM_PROVIDER_TIMEOUT_S)
        self.model = model or settings.TOM_OLLAMA_MODEL

    @classmethod
    def settings_key(cls) -> tuple[Any, ...]:
        return (settings.OLLAMA_HOST, settings.TOM_PROVIDER_TIMEOUT_S, settings.TOM_OLLAMA_MODEL)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return endpoint_check(url=settings.OLLAMA_HOST, setting="OLLAMA_HOST")

    def stream(self, messages: list[Message], *, cancel: threading.Event,
               tools: list[dict[str, Any]] | None = None) -> Iterator[LlmDelta]:
        options = {"num_predict": settings.TOM_LLM_MAX_TOKENS,
                   "temperature": settings.TOM_LLM_TEMPERATURE}
        for chunk in self.client.chat(model=self.model, messages=messages, stream=True,
                                      options=options, tools=tools or None):
            if cancel.is_set():
                return
            content = chunk.message.content
            if content:
                yield TextDelta(str(content))
            # Ollama sends each call whole, its arguments already an object.
            for call in chunk.message.tool_calls or []:
                yield tool_call_request(name=call.function.name,
                                        arguments=dict(call.function.arguments or {}))


class OpenAiStt(SttBackend):
    def __init__(self, base_url: str | None = None, model: str | None = None) -> None:
        self.client = _client(base_url or settings.TOM_PROVIDER_BASE_URL)
        self.model = model or settings.TOM_PROVIDER_STT_MODEL

    @classmethod
    def settings_key(cls, *, model: str | None = None) -> tuple[Any, ...]:
        # ``model`` names a local Whisper model (a variant's choice): the server has its own.
        return _provider_key(settings.TOM_PROVIDER_STT_MODEL)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return _provider_check()

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        started = time.perf_counter()
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm)
        data: dict[str, Any] = {"model": self.model, "response_format": "json"}
        if language:
            data["language"] = language
        if hotwords or prompt:  # Whisper servers take biasing text as the prompt
            data["prompt"] = prompt or hotwords
        response = self.client.post("audio/transcriptions", data=data,
                                    files={"file": ("utterance.wav", buffer.getvalue(),
                                                    "audio/wav")})
        response.raise_for_status()
        return Transcription(text=str(response.json().get("text", "")).strip(),
                             language=language or "",
                             ms=round((time.perf_counter() - started) * 1000))


class OpenAiTts(TtsBackend):
    rate = PROVIDER_TTS_RATE

    def __init__(self, base_url: str | None = None, model: str | None = None,
                 voice: str | None = None) -> None:
        self.client = _client(base_url or settings.TOM_PROVIDER_BASE_URL)
        self.model = model or settings.TOM_PROVIDER_TTS_MODEL
        self.voice = voice or settings.TOM_PROVIDER_TTS_VOICE

    @classmethod
    def settings_key(cls, *, language: str, voice: str = "",
                     length_scale: float | None = None) -> tuple[Any, ...]:
        # A variant's Piper voice and length scale mean nothing to the server's voice.
        return (*_provider_key(settings.TOM_PROVIDER_TTS_MODEL), settings.TOM_PROVIDER_TTS_VOICE)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return _provider_check()

    def synthesize(self, text: str) -> bytes:
        response = self.client.post("audio/speech", json={
            "model": self.model, "voice": self.voice, "input": text, "response_format": "pcm"})
        response.raise_for_status()
        return response.content
