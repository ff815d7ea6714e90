"""``TOM_STT_BACKEND`` / ``TOM_TTS_BACKEND=speech-server``: the OpenAI-compatible speech
backends, pointed at the host's speech server (voice.speech) instead of
``TOM_PROVIDER_BASE_URL``.

The server is shared per host like llama-server (voice.inference.host with the speech
``ServerSpec``): the host's first web process supervises it as its child, the others
use it, ``TOM_SPEECH_SERVER_URL`` names one run elsewhere. A request that fails because
the server died tells the host view, so the next turn waits for the restarted server.
A failed synthesis raises ``TtsError``: the turn then apologises in espeak-ng's voice,
in this process, instead of asking the dead server again.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.checks import CheckMessage

from tomsite.runner import http_ok
from voice import models, tts
from voice.backends import endpoint_check
from voice.egress import check_endpoint
from voice.inference.host import HostServer
from voice.inference.server import InferenceUnavailable
from voice.inference.spec import ServerSpec
from voice.providers import OpenAiStt, OpenAiTts
from voice.stt import SttBackend, Transcription, WhisperStt
from voice.tts import PiperTts, TtsBackend, TtsError, piper_speaks

REPO = Path(__file__).resolve().parents[2]
# A turn's STT waits for a restarting server (within the provider timeout); by the time
# its TTS runs the server answered it. A clause that finds it gone anyway fails at once
# and the apology is spoken by espeak-ng here, not after a restart.
TTS_READY_WAIT_S = 0.5


def speech_argv(port: int) -> list[str]:
    """This interpreter running the speech server; the child inherits the environment
    (DJANGO_SETTINGS_MODULE, TOM_DATA_DIR, TOM_STT_MODEL …) and so the same settings."""
    return [sys.executable, "-m", "voice.speech", "serve", "--port", str(port)]


def health_ok(url: str) -> bool:
    return http_ok(f"{url}/health")  # 503 until its models are loaded and warm


SPEECH_SPEC = ServerSpec(name="speech-server", component="stt",
                         lock_name="speech-server.lock", state_name="speech-server.json",
                         argv=speech_argv, health=health_ok, warm_up=None, cwd=REPO)

_hosts: dict[tuple[Any, ...], HostServer] = {}
_hosts_guard = threading.Lock()


def speech_host() -> HostServer:
    """This process's view of the host's speech server for the current settings."""
    data_dir = Path(settings.TOM_DATA_DIR)
    key = (str(data_dir), settings.TOM_SPEECH_SERVER_URL, settings.TOM_SPEECH_SERVER_PORT,
           settings.TOM_SPEECH_SERVER_START_TIMEOUT_S)
    with _hosts_guard:
        if key not in _hosts:
            _hosts[key] = HostServer(
                run_dir=data_dir / "run", log_path=data_dir / "log" / "speech-server.log",
                port=settings.TOM_SPEECH_SERVER_PORT,
                start_timeout_s=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S,
                external_url=settings.TOM_SPEECH_SERVER_URL, spec=SPEECH_SPEC)
        return _hosts[key]


def _host_key() -> tuple[Any, ...]:
    return (str(settings.TOM_DATA_DIR), settings.TOM_SPEECH_SERVER_URL,
            settings.TOM_SPEECH_SERVER_PORT, settings.TOM_PROVIDER_TIMEOUT_S)


def _check(local: list[CheckMessage]) -> list[CheckMessage]:
    if settings.TOM_SPEECH_SERVER_URL:  # someone else runs it: only its address matters
        return endpoint_check(url=settings.TOM_SPEECH_SERVER_URL, setting="TOM_SPEECH_SERVER_URL")
    return local  # the child loads this host's models: what the in-process backend needs


def _require(path: Path, *, what: str) -> None:
    """Fail at once, as the in-process backend does, rather than after the child's start
    timeout: a child without its model restarts and never becomes healthy."""
    if not path.exists():
        raise models.ModelError(f"no {what} at {path}: run manage.py tom_models")


class _ServerClient:
    """An httpx client that follows the host's speech server across restarts."""

    def __init__(self, host: HostServer) -> None:
        self.host = host
        self._base = ""
        self._guard = threading.Lock()
        self.client: httpx.Client | None = None

    def post(self, path: str, *, wait_s: float, **kwargs: Any) -> httpx.Response:
        base = self.host.endpoint(timeout=wait_s)
        with self._guard:
            if base != self._base:
                if self.host.external_url:
                    check_endpoint(base)  # the egress policy, as for any provider
                self.client = httpx.Client(base_url=f"{base}/v1/",
                                           timeout=settings.TOM_PROVIDER_TIMEOUT_S)
                self._base = base
            client = self.client
        if client is None:  # not reached: set above whenever the base changed from ""
            raise InferenceUnavailable("no speech server client")
        try:
            response = client.post(path, **kwargs)
        except httpx.TransportError:
            self.host.unreachable()  # the next request asks whether it is back
            raise
        if response.status_code >= 400:
            error = response.json().get("error", "") if response.content else ""
            raise InferenceUnavailable(
                f"the speech server answered {response.status_code} to {path}: {error}")
        return response


class SpeechServerStt(OpenAiStt):
    """Whisper in the host's speech server, batched with other calls' utterances."""

    def __init__(self, host: HostServer, *, model: str) -> None:
        # Not OpenAiStt.__init__: no provider URL or API key; the client follows the server.
        self.host, self.model = host, model
        self.server = _ServerClient(host)

    @classmethod
    def from_settings(cls, *, model: str | None = None) -> SttBackend:
        host = speech_host()
        if not host.external_url:  # a missing model is the same error as in process, at once
            _require(models.stt_model_dir(model) / "model.bin", what="Whisper model")
        # Built once per process, by the warm-up or the first call: the server starts here.
        host.endpoint(timeout=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S)
        return cls(host, model=model or settings.TOM_STT_MODEL)

    @classmethod
    def settings_key(cls, *, model: str | None = None) -> tuple[Any, ...]:
        return (*_host_key(), model or settings.TOM_STT_MODEL)

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return _check(WhisperStt.check())

    def transcribe(self, pcm: bytes, *, rate: int, language: str | None,
                   hotwords: str = "", prompt: str = "") -> Transcription:
        started = time.perf_counter()
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm)
        # Hotwords stay hotwords (TOM_STT_BIAS), not folded into the prompt.
        data = {"model": self.model, "response_format": "json", "language": language or "",
                "prompt": prompt, "hotwords": hotwords}
        response = self.server.post(
            "audio/transcriptions", wait_s=settings.TOM_PROVIDER_TIMEOUT_S, data=data,
            files={"file": ("utterance.wav", buffer.getvalue(), "audio/wav")})
        body = response.json()
        return Transcription(text=str(body.get("text", "")).strip(),
                             language=str(body.get("language") or language or ""),
                             ms=round((time.perf_counter() - started) * 1000))


class SpeechServerTts(OpenAiTts):
    """Piper (espeak-ng where no Piper voice speaks the language) in the host's speech
    server; a reply's clauses are queued by their index, so every call's first comes first."""

    def __init__(self, host: HostServer, *, language: str, voice: str,
                 length_scale: float | None) -> None:
        self.host, self.server = host, _ServerClient(host)
        self.options = {"language": language, "voice": voice, "length_scale": length_scale}
        # The pipeline needs the rate before the first clause: the server loads the voice
        # now and says it.
        try:
            answer = self.server.post("audio/voice", wait_s=settings.TOM_PROVIDER_TIMEOUT_S,
                                      json=self.options).json()
        except (httpx.HTTPError, InferenceUnavailable) as exc:  # as PiperTts without its voice
            raise TtsError(f"the speech server has no voice for {self.options}: {exc}") from exc
        self.rate = int(answer["rate"])

    @classmethod
    def from_settings(cls, *, language: str, voice: str = "",
                      length_scale: float | None = None) -> TtsBackend:
        host = speech_host()
        if not host.external_url and piper_speaks(language=language, voice=voice):
            _require(Path(voice) if voice else models.piper_voice_path(), what="Piper voice")
        host.endpoint(timeout=settings.TOM_SPEECH_SERVER_START_TIMEOUT_S)
        return cls(host, language=language, voice=voice,
                   length_scale=length_scale)

    @classmethod
    def settings_key(cls, *, language: str, voice: str = "",
                     length_scale: float | None = None) -> tuple[Any, ...]:
        return (*_host_key(), PiperTts.settings_key(language=language, voice=voice,
                                                    length_scale=length_scale))

    @classmethod
    def check(cls) -> list[CheckMessage]:
        return _check(PiperTts.check())

    def synthesize(self, text: str) -> bytes:
        try:
            response = self.server.post(
                "audio/speech", wait_s=TTS_READY_WAIT_S,
                json={**self.options, "input": text, "response_format": "pcm",
                      "clause": tts.clause_index.get()})
        except (httpx.HTTPError, InferenceUnavailable) as exc:
            raise TtsError(f"the speech server did not speak: {exc}") from exc
        self.rate = int(response.headers.get("X-Sample-Rate") or self.rate)
        return response.content
