"""A FreeSWITCH mod_audio_fork stand-in: TOM's peer in tests, demos and synthetic calls.

It behaves as the module's source says (voice/protocols/SOURCES.md), not as its README:
offers the ``audio.drachtio.org`` subprotocol (or none for mod_audio_stream), sends
HTTP basic auth or a token as configured, sends the metadata verbatim as the first
text frame, then L16 in 20 ms frames without pause (FreeSWITCH's media bug delivers
audio every ptime, silence included). It plays ``playAudio``/``streamAudio`` files one
after another as the dialplan application would, stops playback at ``killAudio`` (the
channel's break flag), plays binary audio in stream mode and answers ``mark`` with
``playout`` once the audio before it has played. ``graceful-shutdown`` sends a
zero-length frame and waits for the server to close; ``stop`` closes with 1000.

A call that goes wrong is never silent: ``CallReport.problems()`` puts a dropped
connection, a close code other than 1000, an error message or an unanswered last
utterance into words, and a server that does not end the call within the wait after
the caller hangs up raises ``CallTimeout``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from voice.dsp import g711
from voice.dsp.framing import FrameBuffer, frame_bytes
from voice.dsp.resample import resample

FRAME_S = 0.02
REPLY_WAIT_S = 30.0  # the longest a caller waits for a reply to talk over
CLOSE_ABNORMAL = 1006
# RFC 6455 §7.4.1 and the IANA WebSocket close code registry, in the fork contract's words.
CLOSE_MEANINGS = {
    1000: "normal closure",
    1001: "going away: the server is shutting down or restarting",
    1002: "protocol error",
    1003: "unsupported data",
    CLOSE_ABNORMAL: "abnormal closure: the connection dropped without a close frame",
    1007: "invalid payload: TOM refused the metadata or the audio",
    1008: "policy violation: a limit was exceeded or the call was refused",
    1009: "message too big: a frame exceeded TOM_MAX_FRAME_BYTES",
    1011: "internal error in TOM",
    1012: "service restart",
    1013: "try again later: TOM is overloaded",
}


def close_code_text(code: int | None, reason: str = "") -> str:
    """``1011 (internal error in TOM: reason)``: a close code and its meaning in words."""
    if code is None:
        return "no close code (the connection never closed)"
    meaning = CLOSE_MEANINGS.get(code, "an application-defined code" if code >= 3000
                                 else "a code RFC 6455 does not define")
    return f"{code} ({meaning}{f': {reason}' if reason else ''})"


class CallTimeout(TimeoutError):
    """The server did not end the call within the wait; ``report`` holds what came so far."""

    def __init__(self, message: str, report: CallReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Segment:
    """Caller audio to send (at the call rate), then ``pause_s`` of silence.

    ``over_reply_s``: a caller who talks over the answer. Before this segment, the client
    sends silence until the reply to the previous segment has been playing for this long
    and is still playing (up to ``REPLY_WAIT_S``), so an interruption lands mid-reply
    however fast or slow the answer came; a fixed pause missed short, quick replies."""

    pcm: bytes
    pause_s: float = 1.5
    over_reply_s: float | None = None


@dataclass
class Playback:
    start: float  # call time the caller starts hearing it
    pcm: bytes
    rate: int
    end: float = 0.0

    def __post_init__(self) -> None:
        self.end = self.start + len(self.pcm) / 2 / self.rate


@dataclass
class CallReport:
    close_code: int | None = None
    close_reason: str = ""
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # call times killAudio arrived
    marks: list[str] = field(default_factory=list)
    playbacks: list[Playback] = field(default_factory=list)
    segment_ends: list[float] = field(default_factory=list)  # call time each segment ended
    segment_starts: list[float] = field(default_factory=list)
    frames_sent: int = 0
    closed_at: float | None = None  # call time the connection closed

    def first_audio_after(self, t: float) -> float | None:
        starts = [p.start for p in self.playbacks if p.start >= t]
        return min(starts) if starts else None

    def turn_latencies(self) -> list[float | None]:
        """Per segment: caller's end of speech to the first agent audio that followed."""
        return [(s - end) if (s := self.first_audio_after(end)) is not None else None
                for end in self.segment_ends]

    def answered(self) -> bool:
        """Whether agent audio followed the caller's last utterance (True with none sent)."""
        return not self.segment_ends or self.first_audio_after(self.segment_ends[-1]) is not None

    def problems(self, *, expect_answer: bool = True) -> list[str]:
        """What went wrong, in words; empty for a call that closed normally and was answered.

        ``expect_answer``: the last utterance should have got agent audio back.
        """
        found = []
        if self.close_code in (None, CLOSE_ABNORMAL):
            found.append("the connection to TOM dropped mid-call without a close frame "
                         f"({CLOSE_ABNORMAL}): the web process died or restarted, or the "
                         "network failed")
        elif self.close_code != 1000:
            found.append("TOM closed the call with "
                         + close_code_text(self.close_code, self.close_reason))
        found += [f"TOM sent an error: {error}" for error in self.errors]
        found += [f"TOM hung up: {reason or 'no reason given'}" for reason in self.disconnects]
        if expect_answer and not self.answered():
            waited = (self.closed_at or 0.0) - self.segment_ends[-1]
            found.append("no answer: TOM sent no agent audio in the "
                         f"{max(0.0, waited):.1f} s between the caller's last utterance and "
                         "the end of the call")
        return found

    def heard_pcm(self, rate: int) -> bytes:
        """What the caller heard, as one track at ``rate`` (silence where nothing played)."""
        if not self.playbacks:
            return b""
        total = max(p.end for p in self.playbacks)
        track = bytearray(int(total * rate) * 2 + 2)
        for p in self.playbacks:
            pcm = p.pcm if p.rate == rate else resample(p.pcm, p.rate, rate)
            offset = int(p.start * rate) * 2
            track[offset:offset + len(pcm)] = pcm[: max(0, len(track) - offset)]
        return bytes(track)

    def as_dict(self) -> dict[str, Any]:
        return {
            "close_code": self.close_code, "transcripts": self.transcripts,
            "errors": self.errors, "disconnects": self.disconnects,
            "kills": [round(k, 3) for k in self.kills], "marks": self.marks,
            "turn_latency_ms": [None if v is None else round(v * 1000)
                                for v in self.turn_latencies()],
            "agent_audio_s": round(sum(p.end - p.start for p in self.playbacks), 3),
            "frames_sent": self.frames_sent, "close_reason": self.close_reason,
            "answered": self.answered(),
        }


def read_wav(path: Path, *, rate: int, telephone: bool = False) -> bytes:
    """A mono 16-bit WAV at any rate, resampled to ``rate``; ``telephone`` adds a μ-law pass."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        channels, source_rate = wav.getnchannels(), wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    if channels > 1:
        pcm = b"".join(pcm[i:i + 2] for i in range(0, len(pcm), 2 * channels))
    pcm = resample(pcm, source_rate, rate)
    return g711.ulaw_decode(g711.ulaw_encode(pcm)) if telephone else pcm


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


class ForkClient:
    """One call, played from ``segments``; ``run()`` returns what happened."""

    def __init__(self, *, url: str, metadata: dict[str, Any] | str | None, rate: int,
                 segments: list[Segment], subprotocol: str | None = "audio.drachtio.org",
                 headers: dict[str, str] | None = None, fast: bool = False,
                 encoding: str = "l16", finish: str = "graceful", tail_s: float = 1.0,
                 open_timeout: float = 10.0, wait_s: float = 30.0) -> None:
        """``wait_s``: how long, after the caller hangs up, TOM may take to finish its last
        answer and close before ``run()`` raises ``CallTimeout``."""
        self.url, self.rate, self.segments = url, rate, segments
        self.metadata = metadata
        self.subprotocol, self.headers = subprotocol, headers or {}
        self.fast, self.encoding, self.finish, self.tail_s = fast, encoding, finish, tail_s
        self.open_timeout, self.wait_s = open_timeout, wait_s
        self.report = CallReport()
        self._frames = FrameBuffer(frame_bytes(rate))
        self._t0 = 0.0
        self._pending_marks: list[tuple[str, float]] = []

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    async def run(self) -> CallReport:
        async with websockets.connect(
            self.url, subprotocols=[self.subprotocol] if self.subprotocol else None,  # type: ignore[list-item]
            additional_headers=self.headers, open_timeout=self.open_timeout,
            # A server that stopped answering must not hold the caller for the default 10 s.
            max_size=None, compression=None, close_timeout=3,
        ) as ws:
            self._t0 = asyncio.get_running_loop().time()
            receiver = asyncio.create_task(self._receive(ws))
            try:
                try:
                    if self.metadata:
                        text = self.metadata if isinstance(self.metadata, str) else json.dumps(
                            self.metadata, separators=(",", ":"))
                        await ws.send(text)
                    await self._stream(ws)
                    await self._finish(ws, receiver)
                except websockets.ConnectionClosed:
                    # The server ended the call first (FreeSWITCH would stop forking), or
                    # the connection dropped: what it said and the close code are the report.
                    await asyncio.wait_for(asyncio.shield(receiver), timeout=5)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
                self.report.closed_at = self._now()
            self.report.close_code, self.report.close_reason = ws.close_code, ws.close_reason or ""
        return self.report

    async def _stream(self, ws: ClientConnection) -> None:
        silence = bytes(frame_bytes(self.rate))
        for segment in self.segments:
            if segment.over_reply_s is not None and self.report.segment_ends:
                deadline = self._now() + REPLY_WAIT_S
                while self._now() < deadline and not self._mid_reply(segment.over_reply_s):
                    await self._send_frame(ws, silence)
            self.report.segment_starts.append(self._now())
            frames = self._frames.push(segment.pcm)
            if (tail := self._frames.flush()) is not None:
                frames.append(tail)
            for frame in frames:
                await self._send_frame(ws, frame)
            self.report.segment_ends.append(self._now())
            for _ in range(round(segment.pause_s / FRAME_S)):
                await self._send_frame(ws, silence)
        for _ in range(round(self.tail_s / FRAME_S)):
            await self._send_frame(ws, silence)

    def _mid_reply(self, after_s: float) -> bool:
        """The reply to the last segment has played ``after_s`` and is playing now."""
        now, since = self._now(), self.report.segment_ends[-1]
        heard = [p for p in self.report.playbacks if p.end > p.start and p.start >= since]
        return bool(heard) and now >= heard[0].start + after_s and \
            any(p.start <= now < p.end for p in heard)

    async def _send_frame(self, ws: ClientConnection, frame: bytes) -> None:
        if ws.close_code is not None:
            raise websockets.ConnectionClosed(None, None)
        if self.encoding == "pcmu":
            frame = g711.ulaw_encode(frame)
        elif self.encoding == "pcma":
            frame = g711.alaw_encode(frame)
        await ws.send(frame)
        self.report.frames_sent += 1
        await self._answer_marks(ws)
        if self.fast:
            await asyncio.sleep(0)
            return
        # Real-time pacing against the call's start, so sleeps do not drift.
        delay = self.report.frames_sent * FRAME_S - self._now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _finish(self, ws: ClientConnection, receiver: asyncio.Task[None]) -> None:
        if self.finish == "graceful":
            # mod_audio_fork keeps sending empty frames and never closes (SOURCES.md A6).
            await ws.send(b"")
            try:
                await asyncio.wait_for(asyncio.shield(receiver), timeout=self.wait_s)
            except TimeoutError:
                self.report.closed_at = self._now()
                raise CallTimeout(
                    f"TOM did not end the call within {self.wait_s:g} s after the caller hung "
                    "up: the web process is hung or overloaded", self.report) from None
        else:
            await ws.close(code=1000)

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self._play(message, self.rate)
                else:
                    await self._on_text(ws, message)
                await self._answer_marks(ws)
        except websockets.ConnectionClosed:
            pass

    def _play(self, pcm: bytes, rate: int) -> None:
        previous_end = max((p.end for p in self.report.playbacks), default=0.0)
        self.report.playbacks.append(Playback(start=max(self._now(), previous_end), pcm=pcm,
                                              rate=rate))

    async def _on_text(self, ws: ClientConnection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.report.errors.append("non-JSON text from the server")
            return
        kind, data = message.get("type"), message.get("data") or {}
        if kind in ("playAudio", "streamAudio"):
            content = data.get("audioContent") or data.get("audioData") or ""
            self._play(base64.b64decode(content), int(data.get("sampleRate") or self.rate))
        elif kind == "killAudio":
            now = self._now()
            self.report.kills.append(now)
            for playback in self.report.playbacks:  # the break flag ends current playback
                if playback.end > now:
                    keep = max(0, int((now - playback.start) * playback.rate)) * 2
                    playback.pcm, playback.end = playback.pcm[:keep], max(now, playback.start)
            for index, (name, _) in enumerate(self._pending_marks):
                await ws.send(json.dumps({"type": "mark", "data": {"name": name,
                                                                   "event": "cleared"}}))
                self._pending_marks[index] = ("", 0.0)
            self._pending_marks = [m for m in self._pending_marks if m[0]]
        elif kind == "mark":
            end = max((p.end for p in self.report.playbacks), default=self._now())
            self._pending_marks.append((str(data.get("name", "")), end))
        elif kind == "transcription":
            self.report.transcripts.append(data)
        elif kind == "disconnect":
            self.report.disconnects.append(str(data.get("reason", "")))
        elif kind == "error":
            self.report.errors.append(str(data.get("message", "")))

    async def _answer_marks(self, ws: ClientConnection) -> None:
        now, left = self._now(), []
        for name, due in self._pending_marks:
            if due <= now:
                self.report.marks.append(name)
                await ws.send(json.dumps({"type": "mark", "data": {"name": name,
                                                                   "event": "playout"}}))
            else:
                left.append((name, due))
        self._pending_marks = left
