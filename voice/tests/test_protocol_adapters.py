"""The fork protocol adapters (voice.protocols.adapters): each one's decoding, control
messages, outbound messages and playout transport, tested on the adapter itself (no
server), and the choice made once per connection through the consumer."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from calls.models import Call
from voice import consumers
from voice.auth import fork_token_mint
from voice.protocols import adapters
from voice.protocols.adapters import (
    AudioStreamProtocol,
    DrachtioFileProtocol,
    Dtmf,
    ForkProtocol,
    JambonzStreamProtocol,
    MarkAnswer,
    fork_protocol_for,
)
from voice.protocols.metadata import CallStart, MetadataError
from voice.session.base import RealtimeSession
from voice.session.events import AgentSpeech
from voice.transport import FileOutbound, StreamOutbound

RATE = 8000
ALL = (DrachtioFileProtocol, JambonzStreamProtocol, AudioStreamProtocol)


class Wire:
    """What a transport sends, and an event per text message of a kind."""

    def __init__(self) -> None:
        self.texts: list[dict[str, Any]] = []
        self.binary: list[bytes] = []
        self.marked = asyncio.Event()

    async def send(self, *, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            self.binary.append(bytes_data)
        if text_data is not None:
            self.texts.append(json.loads(text_data))
            if self.texts[-1]["type"] == "mark":
                self.marked.set()


def _start(protocol: ForkProtocol, **metadata: Any) -> CallStart:
    return protocol.parse_start({"uuid": "u1", "sampleRate": RATE, **metadata},
                                default_rate=RATE, token_uuid="u1")


def _speech(pcm: bytes) -> AgentSpeech:
    speech = AgentSpeech(turn=1, text="a reply", rate=RATE, caller_text="hello")
    speech.audio_bytes, speech.complete = len(pcm), True
    return speech


# --- chosen once, from the route and the URL ----------------------------------------
@pytest.mark.parametrize(("route", "query", "expected"), [
    ("fork", "mode=stream", JambonzStreamProtocol),
    ("fork", b"token=x&mode=stream", JambonzStreamProtocol),
    ("fork", "mode=file", DrachtioFileProtocol),
    ("fork", "mode=rtp", DrachtioFileProtocol),  # unknown: file, which every module plays
    ("audio_stream", "", AudioStreamProtocol),
    ("audio_stream", "mode=stream", AudioStreamProtocol),  # it ignores binary from TOM
])
def test_the_route_and_mode_pick_the_protocol(route: str, query: str | bytes,
                                              expected: type[ForkProtocol]) -> None:
    assert type(fork_protocol_for(route_flavour=route, query=query)) is expected


def test_without_a_mode_the_fork_route_uses_the_setting(settings: Any) -> None:
    settings.TOM_FORK_MODE = "stream"
    assert isinstance(fork_protocol_for(route_flavour="fork", query="token=x"),
                      JambonzStreamProtocol)
    assert isinstance(fork_protocol_for(route_flavour="fork", query="", default_mode="file"),
                      DrachtioFileProtocol)


def test_each_adapter_names_what_the_call_records() -> None:
    assert [(p.flavour, p.mode) for p in ALL] == [
        ("fork", "file"), ("fork", "stream"), ("audio_stream", "file")]
    assert len({p.name for p in ALL}) == 3


def test_a_route_without_a_protocol_is_a_routing_mistake() -> None:
    with pytest.raises(ValueError, match="no fork protocol"):
        fork_protocol_for(route_flavour="sip", query="")


# --- inbound: the start, the audio --------------------------------------------------
@pytest.mark.parametrize("route", ["fork", "audio_stream"])
def test_the_urls_encoding_wins_over_the_metadatas(route: str) -> None:
    protocol = fork_protocol_for(route_flavour=route, query="encoding=pcmu")
    assert _start(protocol, encoding="l16").encoding == "pcmu"
    assert _start(fork_protocol_for(route_flavour=route, query=""),
                  encoding="pcma").encoding == "pcma"
    with pytest.raises(MetadataError, match="uuid differs"):
        protocol.parse_start({"uuid": "other"}, default_rate=RATE, token_uuid="u1")


@pytest.mark.parametrize("protocol_class", ALL)
def test_g711_is_decoded_to_l16(protocol_class: type[ForkProtocol]) -> None:
    # G.711 (ITU-T Table 2a/2b): mu-law 0xFF and 0x7F are 0, 0x80 is +32124, 0x00 is
    # -32124; A-law 0xD5 is +8, 0x55 is -8, 0xAA is +32256, 0x2A is -32256.
    ulaw = protocol_class(encoding="pcmu")
    pcm = ulaw.decode(bytes([0xFF, 0x7F, 0x80, 0x00]), start=_start(ulaw))
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 0, 32124, -32124]
    alaw = protocol_class(encoding="pcma")
    pcm = alaw.decode(bytes([0xD5, 0x55, 0xAA, 0x2A]), start=_start(alaw))
    assert np.frombuffer(pcm, "<i2").tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("protocol_class", ALL)
def test_stereo_keeps_the_callers_channel_and_mono_passes_through(
        protocol_class: type[ForkProtocol]) -> None:
    protocol = protocol_class()
    left, right = np.arange(1, 11, dtype="<i2"), -np.arange(1, 11, dtype="<i2")
    interleaved = np.column_stack([left, right]).astype("<i2").tobytes()
    stereo = _start(protocol, mixType="stereo")
    assert protocol.decode(interleaved, start=stereo) == left.tobytes()
    # A half sample frame at the end (a module's odd write) is not the caller's audio.
    assert protocol.decode(interleaved + b"\x01\x00", start=stereo) == left.tobytes()
    mixed = _start(protocol, mixType="mixed")  # both directions already in one channel
    assert protocol.decode(interleaved, start=mixed) == interleaved


# --- inbound: control messages ------------------------------------------------------
DRACHTIO_DTMF = {"type": "dtmf", "data": {"digit": "5"}}
JAMBONZ_DTMF = {"event": "dtmf", "dtmf": "7", "duration": 250}
MARK = {"type": "mark", "data": {"name": "turn-1", "event": "playout"}}


@pytest.mark.parametrize("protocol_class", ALL)
def test_relayed_dtmf_is_read_by_every_adapter(protocol_class: type[ForkProtocol]) -> None:
    protocol = protocol_class()
    assert protocol.control(DRACHTIO_DTMF) == Dtmf(digits="5")
    assert protocol.control({"type": "dtmf", "data": {"digits": "12#"}}) == Dtmf(digits="12#")
    # Nothing usable is still a key press: the limit counts it, the call keeps no digit.
    assert protocol.control({"type": "dtmf", "data": "5"}) == Dtmf(digits="")
    for ignored in ([DRACHTIO_DTMF], "dtmf", 5, None, {"type": "playDone", "data": {"id": 1}}):
        assert protocol.control(ignored) is None


def test_only_jambonz_answers_marks_and_relays_its_listen_dtmf() -> None:
    jambonz = JambonzStreamProtocol()
    assert jambonz.control(MARK) == MarkAnswer(name="turn-1", event="playout")
    cleared = {"type": "mark", "data": {"name": "turn-2", "event": "cleared"}}
    assert jambonz.control(cleared) == MarkAnswer(name="turn-2", event="cleared")
    assert jambonz.control(JAMBONZ_DTMF) == Dtmf(digits="7")
    for protocol in (DrachtioFileProtocol(), AudioStreamProtocol()):
        assert protocol.control(MARK) is None  # file modes send no marks
        assert protocol.control(JAMBONZ_DTMF) is None


# --- outbound: messages and transports ----------------------------------------------
@pytest.mark.parametrize("protocol_class", ALL)
def test_outbound_messages(protocol_class: type[ForkProtocol]) -> None:
    protocol = protocol_class()
    assert json.loads(protocol.kill_audio()) == {"type": "killAudio"}
    assert json.loads(protocol.disconnect("idle")) == {
        "type": "disconnect", "data": {"reason": "idle"}}
    assert json.loads(protocol.error("frame too large")) == {
        "type": "error", "data": {"message": "frame too large"}}
    assert json.loads(protocol.transcription(role="agent", text="Hallo", final=True, turn=3)) == {
        "type": "transcription",
        "data": {"role": "agent", "text": "Hallo", "final": True, "turn": 3}}


@pytest.mark.parametrize(("protocol_class", "kind", "content"), [
    (DrachtioFileProtocol, "playAudio", "audioContent"),
    (AudioStreamProtocol, "streamAudio", "audioData"),
])
async def test_file_adapters_send_each_clause_as_the_modules_file(
        protocol_class: type[ForkProtocol], kind: str, content: str) -> None:
    wire = Wire()
    out = protocol_class().transport(send=wire.send, rate=RATE)
    assert isinstance(out, FileOutbound) and out.run() is None
    pcm = b"\x10\x00" * (RATE // 10)  # 100 ms
    speech = _speech(pcm)
    await out.audio(speech, pcm, text="a reply", final=True)
    (message,) = wire.texts
    assert message["type"] == kind and message["data"]["sampleRate"] == RATE
    assert base64.b64decode(message["data"][content]) == pcm
    assert wire.binary == []  # drachtio discards binary; mod_audio_stream ignores it
    # The file ends 100 ms after it was sent: the transport's own timer says so.
    playout = await asyncio.wait_for(speech.wait_for_playout(), 2)
    assert (playout.played_ms, playout.interrupted) == (100, False)


async def test_jambonz_streams_paced_binary_and_its_mark_answer_ends_the_playout() -> None:
    protocol, wire = JambonzStreamProtocol(), Wire()
    out = protocol.transport(send=wire.send, rate=RATE)
    assert isinstance(out, StreamOutbound)
    pacing = asyncio.create_task(out.run())
    try:
        # 100 ms holding -1, the module's mark sentinel, which must never go out.
        pcm = np.full(RATE // 10, -1, dtype="<i2").tobytes()
        speech = _speech(pcm)
        await out.audio(speech, pcm, text="a reply", final=True)
        await asyncio.wait_for(wire.marked.wait(), 2)
        assert wire.texts == [{"type": "mark", "data": {"name": "turn-1"}}]
        sent = b"".join(wire.binary)
        assert len(sent) == len(pcm) and -1 not in np.frombuffer(sent, "<i2")
        assert speech.playout is None  # sent is not heard: the module's answer says that
        answer = protocol.control({"type": "mark", "data": {"name": "turn-1",
                                                            "event": "playout"}})
        assert isinstance(answer, MarkAnswer)
        out.mark_answered(name=answer.name, event=answer.event)
        playout = await asyncio.wait_for(speech.wait_for_playout(), 1)
        assert (playout.played_ms, playout.interrupted) == (100, False)
    finally:
        pacing.cancel()


# --- through the consumer: chosen once, then only asked ------------------------------
class FrameSession(RealtimeSession):
    """Keeps the caller's frames, setting ``received`` at each; says nothing."""

    def __init__(self, *, call: CallStart, received: asyncio.Event) -> None:
        super().__init__(call=call)
        self.frames: list[bytes] = []
        self.received = received

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        self.frames.append(frame)
        self.received.set()

    async def end_of_input(self, *, at: float) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("path", "query", "recorded"), [
    ("/ws/fork/", "&mode=stream&encoding=pcmu", ("fork", "stream", "jambonz_stream")),
    ("/ws/audio-stream/", "&mode=stream&encoding=pcmu",
     ("audio_stream", "file", "audio_stream")),
])
async def test_the_consumer_picks_its_protocol_once_and_hands_it_every_frame(
        settings: Any, monkeypatch: pytest.MonkeyPatch, path: str, query: str,
        recorded: tuple[str, str, str]) -> None:
    settings.TOM_FEATURE_RL = False
    chosen: list[ForkProtocol] = []
    decoded: list[bytes] = []
    sessions: list[FrameSession] = []
    received = asyncio.Event()

    def pick(**kwargs: Any) -> ForkProtocol:
        protocol = adapters.fork_protocol_for(**kwargs)
        real_decode = protocol.decode

        def decode(data: bytes, *, start: CallStart) -> bytes:
            decoded.append(data)
            return real_decode(data, start=start)

        protocol.decode = decode  # type: ignore[method-assign]
        chosen.append(protocol)
        return protocol

    def create(*, call: CallStart, **kwargs: Any) -> RealtimeSession:
        sessions.append(FrameSession(call=call, received=received))
        return sessions[-1]

    monkeypatch.setattr(consumers, "fork_protocol_for", pick)
    monkeypatch.setattr(consumers, "create_session", create)
    call_uuid = str(uuid.uuid4())
    consumer = (consumers.AudioStreamConsumer if "audio" in path else consumers.ForkConsumer)
    fork = WebsocketCommunicator(
        consumer.as_asgi(), f"{path}?token={fork_token_mint(call_uuid=call_uuid)}{query}")
    assert (await fork.connect())[0]
    # The metadata glued with a relayed key (drachtio glues pending texts), then audio.
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": RATE})
                       + json.dumps(DRACHTIO_DTMF))
    await fork.send_to(bytes_data=b"\xff" * (RATE // 50))  # 20 ms of mu-law silence
    await fork.send_to(text_data=json.dumps({"type": "dtmf", "data": {"digit": "9"}}))
    await fork.send_to(bytes_data=b"\x80" * (RATE // 50))
    await asyncio.wait_for(_frames(sessions, received, 2), 5)
    await fork.disconnect()
    assert len(chosen) == 1, "the protocol is chosen once, at the handshake"
    assert (chosen[0].flavour, chosen[0].mode, chosen[0].name) == recorded
    assert decoded == [b"\xff" * (RATE // 50), b"\x80" * (RATE // 50)]
    assert sessions[0].frames == [bytes(RATE // 25), np.full(RATE // 50, 32124, "<i2").tobytes()]
    call = await database_sync_to_async(Call.objects.get)(uuid=call_uuid)
    assert (call.metadata["flavour"], call.metadata["mode"]) == recorded[:2]
    assert call.metadata["encoding"] == "pcmu" and call.dtmf == "59"


async def _frames(sessions: list[FrameSession], received: asyncio.Event, count: int) -> None:
    """Until the call's session has received ``count`` frames."""
    while sum(len(session.frames) for session in sessions) < count:
        received.clear()
        await received.wait()
