"""How agent audio reaches each fork module, and how its playout is reported back.

One ``Outbound`` per connection, the part of its protocol adapter that plays
(``ForkProtocol.transport``, voice.protocols.adapters). Each reports the playout of
every ``AgentSpeech`` it sends: ``playout_started`` when the caller's line begins
playing it, ``playout_finished`` when it ends (played to its end, or cut by
``killAudio`` or the hang-up), with the ms heard.
Nothing waits on a guess of another component's timing: what the module tells (a
``mark`` answered ``playout``) is the event, and where the module tells nothing (file
modes) a timer the transport owns fires when the files it sent end.

- File modes (drachtio ``playAudio``, mod_audio_stream ``streamAudio``): each clause is
  a file the channel plays in order, so playout ends when the last file ends: its send
  time (or the end of the file before it) plus its duration.
- Stream mode (jambonz): the module mixes whatever binary L16 arrives into the call after
  a 160 ms (then 80 ms) prebuffer, and its buffers grow without limit (SOURCES.md B2).
  Sending a whole sentence at once would leave seconds of audio in FreeSWITCH that a
  barge-in can only clear with ``killAudio``; so frames leave at real-time pace, never
  more than ``TOM_OUTBOUND_BUFFER_MS`` ahead of playout, and the rest waits here where
  ``clear()`` drops it at once. A ``mark`` after each utterance is answered ``playout``
  when the caller has heard all of it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from django.conf import settings

from voice import metrics
from voice.dsp.framing import OutboundBuffer, frame_bytes
from voice.dsp.pcm import pcm_ms
from voice.protocols import outbound
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

FRAME_S = 0.02
TICK_S = 0.01
MAX_QUEUED_S = 60.0
# A mark the module has not answered this long after its audio should have played
# (jambonz prebuffers 160 ms) is taken as played: a module that lost it must not hold
# the turn record or a graceful shutdown until the call's drain limit.
MARK_GRACE_S = 1.0

Send = Callable[..., Awaitable[Any]]


class Outbound(abc.ABC):
    """Agent audio out to one fork module, and playout reports back to each handle."""

    def __init__(self, *, send: Send) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()

    def run(self) -> Coroutine[Any, Any, None] | None:
        """A loop the connection runs as a task of its own, if the transport needs one."""
        return None

    @abc.abstractmethod
    async def audio(self, speech: AgentSpeech, pcm: bytes, *, text: str, final: bool) -> None:
        """Send a piece of ``speech``; ``final`` says no more of it follows."""

    @abc.abstractmethod
    def _cut(self, now: float) -> None:
        """Drop what is queued and report each utterance in playout as interrupted."""

    def mark_answered(self, *, name: str, event: str) -> None:  # noqa: B027  (file modes: none)
        """The module answered a mark (jambonz): ``playout`` or ``cleared``."""

    def interrupt(self, speech: AgentSpeech) -> None:
        """Barge-in: stop playing here; ``speech`` ends where the caller heard it. The
        protocol's kill message, which stops the module, is the caller's to send."""
        now = self._loop.time()
        self._cut(now)
        # Cut before any of it went out (its audio was still queued at the session).
        speech.playout_finished(played_ms=0.0, interrupted=True, at=now)

    def close(self) -> None:
        """Hang-up: whatever is playing ends here, with what was heard of it."""
        self._cut(self._loop.time())


class FileOutbound(Outbound):
    """drachtio ``playAudio`` or mod_audio_stream ``streamAudio``: one file per clause."""

    def __init__(self, *, send: Send, build: Callable[..., str]) -> None:
        super().__init__(send=send)
        self._build = build
        self._until = 0.0  # loop time the files sent so far end
        self._sent_ms: dict[AgentSpeech, float] = {}
        self._timers: dict[AgentSpeech, asyncio.TimerHandle] = {}

    async def audio(self, speech: AgentSpeech, pcm: bytes, *, text: str, final: bool) -> None:
        now = self._loop.time()
        if pcm:
            if speech.playout is not None:
                return
            start = max(now, self._until)
            if speech not in self._sent_ms:
                self._sent_ms[speech] = 0.0
                speech.playout_started(at=start)
            await self._send(text_data=self._build(pcm=pcm, rate=speech.rate, text=text))
            duration_ms = pcm_ms(len(pcm), speech.rate)
            self._until = start + duration_ms / 1000
            self._sent_ms[speech] += duration_ms
        if final and speech not in self._timers and speech.playout is None:
            # call_at with a time already past runs at the loop's next turn.
            self._timers[speech] = self._loop.call_at(
                self._until if speech in self._sent_ms else now, self._played, speech)

    def _played(self, speech: AgentSpeech) -> None:
        self._timers.pop(speech, None)
        speech.playout_finished(played_ms=self._sent_ms.pop(speech, 0.0), interrupted=False,
                                at=self._loop.time())

    def _cut(self, now: float) -> None:
        # killAudio sets the channel's break flag: every file queued stops with it.
        ahead_ms = max(0.0, self._until - now) * 1000
        for speech in reversed(list(self._sent_ms)):
            sent_ms = self._sent_ms.pop(speech)
            if (timer := self._timers.pop(speech, None)) is not None:
                timer.cancel()
            played_ms = max(0.0, sent_ms - ahead_ms)
            ahead_ms = max(0.0, ahead_ms - sent_ms)
            speech.playout_finished(played_ms=played_ms, interrupted=True, at=now)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._until = now


class StreamOutbound(Outbound):
    """jambonz bidirectional stream: paced binary frames, a ``mark`` after each reply."""

    def __init__(self, *, send: Send, rate: int) -> None:
        super().__init__(send=send)
        self.pacer = StreamPacer(send=send, rate=rate)

    def run(self) -> Coroutine[Any, Any, None]:
        return self.pacer.run()

    async def audio(self, speech: AgentSpeech, pcm: bytes, *, text: str, final: bool) -> None:
        if speech.playout is None:
            self.pacer.write(speech, pcm, final=final)

    def mark_answered(self, *, name: str, event: str) -> None:
        self.pacer.mark_event(name, event)

    def _cut(self, now: float) -> None:
        self.pacer.clear()


class StreamPacer:
    def __init__(self, *, send: Send, rate: int) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self.buffer = OutboundBuffer(frame_bytes(rate), max_frames=int(MAX_QUEUED_S / FRAME_S))
        self._frame_ms = pcm_ms(frame_bytes(rate), rate)
        self._lead_s = settings.TOM_OUTBOUND_BUFFER_MS / 1000
        self._playout_until = 0.0
        self._speech: AgentSpeech | None = None
        self._sent_ms = 0.0  # of the current speech's own audio (not underrun silence)
        # Marks sent and not yet answered: the speech, its ms sent, the fallback timer.
        self._marked: dict[str, tuple[AgentSpeech, float, asyncio.TimerHandle]] = {}
        self._wake = asyncio.Event()
        self._seen = (0, 0)

    def write(self, speech: AgentSpeech, pcm: bytes, *, final: bool) -> None:
        if speech is not self._speech:
            self._speech, self._sent_ms = speech, 0.0
        self.buffer.write(pcm, final=final)
        self._wake.set()

    def clear(self) -> None:
        """Barge-in: drop every frame not yet sent, and end what is playing there."""
        now = self._loop.time()
        self.buffer.clear()
        # killAudio empties the module's playout buffer: what is ahead of now is unheard.
        ahead_ms = max(0.0, self._playout_until - now) * 1000
        self._playout_until = now
        cut = [(speech, sent_ms) for speech, sent_ms, _ in self._marked.values()]
        for _, _, timer in self._marked.values():
            timer.cancel()
        self._marked.clear()
        if self._speech is not None:
            cut.append((self._speech, self._sent_ms))
            self._speech = None
        for speech, sent_ms in reversed(cut):
            speech.playout_finished(played_ms=max(0.0, sent_ms - ahead_ms), interrupted=True,
                                    at=now)
            ahead_ms = max(0.0, ahead_ms - sent_ms)

    def mark_event(self, name: str, event: str) -> None:
        """The module answered a mark: ``playout`` (heard to its end) or ``cleared``."""
        marked = self._marked.pop(name, None)
        if marked is None:
            return
        speech, sent_ms, timer = marked
        timer.cancel()
        # ``cleared`` answers a mark after killAudio: clear() has already reported it.
        speech.playout_finished(played_ms=sent_ms, interrupted=event != "playout",
                                at=self._loop.time())

    def _unanswered(self, name: str) -> None:
        marked = self._marked.pop(name, None)
        if marked is not None:
            logger.warning("transport.mark_unanswered", extra={"mark": name})
            marked[0].playout_finished(played_ms=marked[1], interrupted=False,
                                       at=self._loop.time())

    async def run(self) -> None:
        loop = self._loop
        while True:
            if self.buffer.idle and self._speech is None:
                self._wake.clear()
                await self._wake.wait()
            now = loop.time()
            while self._playout_until - now < self._lead_s:
                played = self.buffer.stats.frames_played
                frame = self.buffer.read()
                if frame is None:
                    break
                start = max(self._playout_until, now)
                await self._send(bytes_data=outbound.stream_safe(frame))
                self._playout_until = start + FRAME_S
                if self._speech is not None and self.buffer.stats.frames_played > played:
                    if not self._speech.playout_began:
                        self._speech.playout_started(at=start)
                    self._sent_ms += self._frame_ms
            if self.buffer.idle and self._speech is not None:
                await self._mark(self._speech)
            self._export_stats()
            await asyncio.sleep(TICK_S)

    async def _mark(self, speech: AgentSpeech) -> None:
        self._speech = None
        if not self._sent_ms:  # nothing of it went out: nothing to wait for
            speech.playout_finished(played_ms=0.0, interrupted=False, at=self._loop.time())
            return
        name = f"turn-{speech.turn}"
        while name in self._marked:  # a resumed reply's continuation has the same turn
            name += "+"
        timer = self._loop.call_at(self._playout_until + MARK_GRACE_S, self._unanswered, name)
        self._marked[name] = (speech, self._sent_ms, timer)
        await self._send(text_data=outbound.mark(name))

    def _export_stats(self) -> None:
        stats = self.buffer.stats
        under, over = self._seen
        if stats.underruns > under:
            metrics.OUTBOUND_UNDERRUNS.inc(stats.underruns - under)
        if stats.overruns > over:
            metrics.OUTBOUND_OVERRUNS.inc(stats.overruns - over)
        self._seen = (stats.underruns, stats.overruns)
