"""Outbound pacing for jambonz's bidirectional stream (``?mode=stream``).

The module mixes whatever binary L16 arrives into the call after a 160 ms (then 80 ms)
prebuffer, and its buffers grow without limit (SOURCES.md B2). Sending a whole
sentence at once would leave seconds of audio in FreeSWITCH that a barge-in can only
clear with ``killAudio``; so frames leave at real-time pace, never more than
``TOM_OUTBOUND_BUFFER_MS`` ahead of playout, and the rest waits here where ``clear()``
drops it at once. A ``mark`` after each utterance is answered ``playout`` when the
caller has heard all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from voice import metrics
from voice.dsp.framing import OutboundBuffer, frame_bytes
from voice.protocols import outbound
from voice.session.events import AgentSpeech

FRAME_S = 0.02
TICK_S = 0.01
MAX_QUEUED_S = 60.0


class StreamPacer:
    def __init__(self, *, send: Callable[..., Awaitable[Any]], rate: int) -> None:
        self._send = send
        self.buffer = OutboundBuffer(frame_bytes(rate), max_frames=int(MAX_QUEUED_S / FRAME_S))
        self._lead_s = settings.TOM_OUTBOUND_BUFFER_MS / 1000
        self._playout_until = 0.0
        self._speech: AgentSpeech | None = None
        self._marked: dict[str, AgentSpeech] = {}
        self._wake = asyncio.Event()
        self._seen = (0, 0)

    def write(self, speech: AgentSpeech, pcm: bytes, *, final: bool) -> None:
        self._speech = speech
        self.buffer.write(pcm, final=final)
        self._wake.set()

    def clear(self) -> None:
        """Barge-in: drop every frame not yet sent."""
        self.buffer.clear()
        self._speech = None

    def mark_event(self, name: str, event: str, now: float) -> None:
        speech = self._marked.pop(name, None)
        if speech is not None and event == "playout":
            speech.played_ms = speech.audio_ms

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.buffer.idle and self._speech is None:
                self._wake.clear()
                await self._wake.wait()
            now = loop.time()
            while self._playout_until - now < self._lead_s:
                frame = self.buffer.read()
                if frame is None:
                    break
                await self._send(bytes_data=outbound.stream_safe(frame))
                self._playout_until = max(self._playout_until, now) + FRAME_S
            if self.buffer.idle and self._speech is not None:
                name = f"turn-{self._speech.turn}"
                self._marked[name] = self._speech
                self._speech = None
                await self._send(text_data=outbound.mark(name))
            self._export_stats()
            await asyncio.sleep(TICK_S)

    def _export_stats(self) -> None:
        stats = self.buffer.stats
        under, over = self._seen
        if stats.underruns > under:
            metrics.OUTBOUND_UNDERRUNS.inc(stats.underruns - under)
        if stats.overruns > over:
            metrics.OUTBOUND_OVERRUNS.inc(stats.overruns - over)
        self._seen = (stats.underruns, stats.overruns)
