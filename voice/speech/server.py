"""TOM's speech server: OpenAI-shaped HTTP in front of voice.speech.service.

The standard library's ``ThreadingHTTPServer`` (a thread per connection; the model work
itself is queued to the batcher and the TTS workers), no new dependency:

- ``GET /health``: 200 once every configured model is loaded and has run once, 503
  before; the JSON says how many batches of which size Whisper decoded, what the TTS
  workers do, and the default voice's rate.
- ``POST /v1/audio/transcriptions``: OpenAI's multipart form (``file`` a WAV, ``model``,
  ``language``, ``prompt``) plus TOM's ``hotwords``; ``model`` may be a TOM model name
  (base, small, tiny.en, a folder). Answers ``{"text", "language", "ms", "batch"}``.
- ``POST /v1/audio/speech``: JSON ``{"input", "language", "voice", "length_scale",
  "response_format": "pcm", "clause"}``; answers 16-bit mono PCM, its rate in
  ``X-Sample-Rate``. ``clause`` (0 = a reply's first) orders the TTS queue.
- ``POST /v1/audio/voice``: JSON ``{"language", "voice", "length_scale"}``; loads the
  voice and answers ``{"rate", "engine"}``: a client needs the rate before it speaks.

Errors are JSON ``{"error": ...}``: 400 for a request that names nothing servable, 500
when a model failed.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import logging
import threading
import wave
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from voice.speech.service import BadRequest, SpeechService
from voice.tts import TtsError

logger = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024  # 30 s of 48 kHz audio is 2.9 MB: far more is not a request


def form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body (stdlib ``email``, as cgi did)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("expected multipart/form-data")
    header = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = email.message_from_bytes(header + body, policy=email.policy.compat32)
    if not message.is_multipart():
        raise BadRequest("a multipart body without parts")
    fields: dict[str, bytes] = {}
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        if part.is_multipart() or not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


def wav_pcm(data: bytes) -> tuple[bytes, int]:
    """16-bit mono PCM and its rate from a WAV file."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise BadRequest("the WAV must be 16-bit mono")
            return wav.readframes(wav.getnframes()), wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise BadRequest(f"file is not a WAV: {exc}") from None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a web process's client reuses its connection
    server: SpeechHttpServer

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/health":
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no {self.path}"})
        health = self.server.service.health()
        ok = health["status"] == "ok"
        return self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, health)

    def do_POST(self) -> None:
        routes = {"/v1/audio/transcriptions": self._transcription,
                  "/v1/audio/speech": self._speech, "/v1/audio/voice": self._voice}
        route = routes.get(self.path.split("?")[0])
        try:
            body = self._body()
            if route is None:
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"no {self.path}"})
            if not self.server.service.warm.is_set():
                return self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "warming up"})
            route(body)
        except (BadRequest, ValueError) as exc:  # a field that is not what it should be
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except (TtsError, TimeoutError, RuntimeError, OSError) as exc:
            logger.warning("speech.request_failed", exc_info=True, extra={"path": self.path})
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"{type(exc).__name__}: {exc}"})

    def _transcription(self, body: bytes) -> None:
        fields = form_fields(self.headers.get("Content-Type", ""), body)
        if "file" not in fields:
            raise BadRequest("no file field")
        pcm, rate = wav_pcm(fields["file"])

        def text(name: str) -> str:
            return fields.get(name, b"").decode("utf-8", "replace").strip()

        result, batch = self.server.service.transcribe(
            pcm=pcm, rate=rate, model=text("model"), language=text("language") or None,
            prompt=text("prompt"), hotwords=text("hotwords"))
        self._json(HTTPStatus.OK, {"text": result.text, "language": result.language,
                                   "ms": result.ms, "batch": batch})

    def _speech(self, body: bytes) -> None:
        request = self._json_body(body)
        if str(request.get("response_format") or "pcm") != "pcm":
            raise BadRequest("only response_format pcm (16-bit mono) is served")
        pcm, rate = self.server.service.synthesize(
            text=str(request.get("input") or ""), clause=int(request.get("clause") or 0),
            **self._voice_options(request))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("X-Sample-Rate", str(rate))
        self.send_header("Content-Length", str(len(pcm)))
        self.end_headers()
        self.wfile.write(pcm)

    def _voice(self, body: bytes) -> None:
        engine = self.server.service.voice(**self._voice_options(self._json_body(body)))
        self._json(HTTPStatus.OK, {"rate": engine.rate, "engine": type(engine).__name__})

    @staticmethod
    def _voice_options(request: dict[str, Any]) -> dict[str, Any]:
        scale = request.get("length_scale")
        return {"language": str(request.get("language") or ""),
                "voice": str(request.get("voice") or ""),
                "length_scale": None if scale is None else float(scale)}

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(request, dict):
            raise BadRequest("the body is not a JSON object")
        return request

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(f"a body of {length} bytes is too large")
        return self.rfile.read(length) if length else b""

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("speech.http", extra={"request": format % args})


class SpeechHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in work does not hold the process's exit

    def __init__(self, address: tuple[str, int], service: SpeechService) -> None:
        super().__init__(address, Handler)
        self.service = service


def serve(*, host: str, port: int, max_batch: int, tts_workers: int) -> None:
    """Listen at once (``/health`` says 503 while the models load), warm up, serve."""
    service = SpeechService(max_batch=max_batch, tts_workers=tts_workers)
    httpd = SpeechHttpServer((host, port), service)
    logger.info("speech.listening", extra={"host": host, "port": httpd.server_address[1]})
    threading.Thread(target=httpd.serve_forever, name="speech-http", daemon=True).start()
    try:
        service.warm_up()
    except Exception:
        logger.exception("speech.warm_up_failed")
        raise SystemExit(1) from None
    try:
        threading.Event().wait()  # until SIGTERM (the supervisor, systemd) ends the process
    except KeyboardInterrupt:
        pass
    finally:
        httpd.shutdown()
