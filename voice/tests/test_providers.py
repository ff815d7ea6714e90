"""HTTP model backends: the egress policy, llama.cpp's real OpenAI-compatible server, and
Ollama's documented /api/chat stream (no Ollama can run here: contract-tested only)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from voice import llm, models, stt, tts
from voice.egress import EgressRefused, check_endpoint, endpoint_is_local
from voice.llm_deltas import TextDelta, ToolCallInvalid, ToolCallRequest
from voice.protocols.metadata import CallStart
from voice.providers import OllamaLlm, OpenAiLlm, OpenAiStt, OpenAiTts
from voice.session.factory import BackendUnavailable, create_session


def test_egress_policy() -> None:
    for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434", "http://10.0.0.5/v1",
                "http://192.168.1.20:8000", "http://[::1]:8080"):
        assert endpoint_is_local(url), url
        check_endpoint(url)
    for url in ("https://93.184.216.34/v1", "https://8.8.8.8:443/v1"):  # no DNS look-up
        with pytest.raises(EgressRefused, match="ALLOW_EGRESS"):
            check_endpoint(url)
    with override_settings(ALLOW_EGRESS=True):
        check_endpoint("https://93.184.216.34/v1")


async def test_a_session_on_a_public_endpoint_is_refused_before_the_call_is_answered(
        ) -> None:
    call = CallStart(uuid="p", sample_rate=8000, channels=1, mix_type="mono", encoding="l16")
    with override_settings(TOM_PROVIDER_BASE_URL="https://93.184.216.34/v1",
                           TOM_FEATURE_TOOLS=False, TOM_STT_BACKEND="openai",
                           TOM_LLM_BACKEND="openai", TOM_TTS_BACKEND="openai"):
        session = create_session(call=call)
        # The consumer ends the call with this text (BackendUnavailable), not an
        # "internal error" from an EgressRefused it does not expect.
        with pytest.raises(BackendUnavailable, match="outside the local network"):
            await session.prepare()
        for get in (stt.get_stt, llm.get_llm, partial(tts.get_tts, "en")):
            with pytest.raises(BackendUnavailable, match="outside the local network"):
                get()


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in HTTP peer: answers from ``routes`` and remembers each request."""

    routes: dict[str, Any] = {}
    requests: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append((self.path, dict(self.headers), body))
        status, content_type, payload = type(self).routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        for piece in payload if isinstance(payload, list) else [payload]:
            self.wfile.write(piece)
            self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_peer() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Peer", (_Recorder,), {"routes": {}, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_ollama_backend_reads_the_documented_api_chat_stream(
        http_peer: tuple[str, type[_Recorder]]) -> None:
    base, peer = http_peer
    # Ollama's documented streaming reply: one JSON object per line, the last with done=true.
    lines = [{"model": "qwen2.5:0.5b-instruct", "created_at": "2026-11-25T10:00:00Z",
              "message": {"role": "assistant", "content": piece}, "done": False}
             for piece in ("Yes", ", we", " open at nine.")]
    lines.append({"model": "qwen2.5:0.5b-instruct", "created_at": "2026-11-25T10:00:01Z",
                  "message": {"role": "assistant", "content": ""}, "done": True,
                  "done_reason": "stop", "total_duration": 123, "eval_count": 5})
    peer.routes["/api/chat"] = (200, "application/x-ndjson",
                                [json.dumps(line).encode() + b"\n" for line in lines])
    llm = OllamaLlm(host=base, model="qwen2.5:0.5b-instruct")
    out = list(llm.stream([{"role": "user", "content": "When do you open?"}],
                          cancel=threading.Event()))
    assert out == [TextDelta("Yes"), TextDelta(", we"), TextDelta(" open at nine.")]
    sent = json.loads(peer.requests[0][2])
    assert sent["model"] == "qwen2.5:0.5b-instruct" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "When do you open?"}]
    assert sent["options"]["num_predict"] > 0


def test_ollama_tool_calls_arrive_as_requests_not_text(
        http_peer: tuple[str, type[_Recorder]]) -> None:
    base, peer = http_peer
    # Ollama's documented tool-calling reply: the call whole, its arguments an object.
    call = {"function": {"name": "parts_lookup", "arguments": {"query": "brake pads"}}}
    lines = [
        {"model": "qwen2.5", "message": {"role": "assistant", "content": "Moment."},
         "done": False},
        {"model": "qwen2.5", "message": {"role": "assistant", "content": "",
                                         "tool_calls": [call]}, "done": False},
        {"model": "qwen2.5", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop"},
    ]
    peer.routes["/api/chat"] = (200, "application/x-ndjson",
                                [json.dumps(line).encode() + b"\n" for line in lines])
    tools = [{"type": "function", "function": {"name": "parts_lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}}}}]
    out = list(OllamaLlm(host=base, model="qwen2.5").stream(
        [{"role": "user", "content": "Brake pads?"}], cancel=threading.Event(), tools=tools))
    assert out == [TextDelta("Moment."),
                   ToolCallRequest(name="parts_lookup", arguments={"query": "brake pads"})]
    assert json.loads(peer.requests[0][2])["tools"] == tools


def _sse(*deltas: dict[str, Any], finish: str = "stop") -> list[bytes]:
    """An OpenAI chat-completions stream of ``deltas``, as servers send it."""
    chunks = [{"id": "c1", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
              for delta in deltas]
    chunks.append({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [
        b"data: [DONE]\n\n"]


def _fragment(index: int, *, arguments: str, call_id: str = "",
              name: str = "") -> dict[str, Any]:
    function = {"arguments": arguments, **({"name": name} if name else {})}
    head = {"id": call_id, "type": "function"} if call_id else {}
    return {"tool_calls": [{"index": index, **head, "function": function}]}


def test_openai_tool_calls_stream_by_index_and_arrive_as_requests(
        http_peer: tuple[str, type[_Recorder]]) -> None:
    base, peer = http_peer
    # Two calls whose argument fragments interleave, and one whose arguments are broken.
    peer.routes["/v1/chat/completions"] = (200, "text/event-stream", _sse(
        {"role": "assistant", "content": "Let me check."},
        _fragment(0, call_id="call_a", name="parts_lookup", arguments=""),
        _fragment(1, call_id="call_b", name="kb_search", arguments='{"q": '),
        _fragment(0, arguments='{"query": "brake'),
        _fragment(1, arguments='"hours"}'),
        _fragment(0, arguments=' pads"}'),
        _fragment(2, call_id="call_c", name="parts_lookup", arguments='{"query": '),
        finish="tool_calls"))
    out = list(OpenAiLlm(base_url=f"{base}/v1", model="m").stream(
        [{"role": "user", "content": "Brake pads?"}], cancel=threading.Event(),
        tools=[{"type": "function", "function": {"name": "parts_lookup"}}]))
    assert out[:3] == [
        TextDelta("Let me check."),
        ToolCallRequest(name="parts_lookup", arguments={"query": "brake pads"}, id="call_a"),
        ToolCallRequest(name="kb_search", arguments={"q": "hours"}, id="call_b")]
    assert len(out) == 4 and isinstance(out[3], ToolCallInvalid)
    assert not any(isinstance(d, TextDelta) and "tool_call" in d.text for d in out)
    sent = json.loads(peer.requests[0][2])
    assert sent["stream"] is True and sent["tools"][0]["function"]["name"] == "parts_lookup"


def test_openai_stt_and_tts_speak_the_audio_endpoints(
        http_peer: tuple[str, type[_Recorder]]) -> None:
    base, peer = http_peer
    peer.routes["/v1/audio/transcriptions"] = (200, "application/json",
                                               b'{"text": " hello there "}')
    peer.routes["/v1/audio/speech"] = (200, "audio/pcm", b"\x01\x00" * 2400)
    text = OpenAiStt(base_url=f"{base}/v1", model="whisper-1").transcribe(
        b"\x00\x00" * 8000, rate=8000, language="de")
    assert text.text == "hello there"
    _, headers, body = peer.requests[0]
    assert headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="language"' in body and b"RIFF" in body and b'name="model"' in body
    pcm = OpenAiTts(base_url=f"{base}/v1", model="tts-1", voice="alloy").synthesize("Hallo")
    assert len(pcm) == 4800 and OpenAiTts.rate == 24000
    assert json.loads(peer.requests[1][2])["response_format"] == "pcm"


@pytest.mark.models
@pytest.mark.slow
def test_openai_llm_streams_from_a_real_llama_cpp_server(python: str) -> None:
    gguf = models.assemble("qwen2.5-0.5b")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "llama_cpp.server exited"
                time.sleep(0.5)
        llm = OpenAiLlm(base_url=f"http://127.0.0.1:{port}/v1", model=str(gguf))
        pieces = list(llm.stream([{"role": "user", "content": "Say hello in three words."}],
                                 cancel=threading.Event()))
        assert all(isinstance(piece, TextDelta) for piece in pieces)
        text = "".join(piece.text for piece in pieces if isinstance(piece, TextDelta))
        assert len(pieces) > 1 and text.strip()  # streamed, not one blob
        cancel = threading.Event()
        stream = llm.stream([{"role": "user", "content": "Count from one to fifty."}],
                            cancel=cancel)
        next(stream)
        cancel.set()
        assert list(stream) == []  # cancellation stops the stream at once
    finally:
        server.terminate()
        server.wait(10)
