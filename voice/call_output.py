"""What a session says, on its way to the caller's line.

One reader of the session's two lanes per call: system events (the cut, the barge-in
decision, the hang-up) before any data frame, agent audio through the transport of the
connection's protocol adapter (voice.protocols.adapters), and each reply's turn record
once its playout is reported. The consumer owns the tasks (``spawn``) and the end of the
call (``hang_up``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from calls.models import Call
from voice import metrics
from voice.call_turns import TurnLedger
from voice.protocols.adapters import ForkProtocol, MarkAnswer
from voice.session.base import RealtimeSession
from voice.session.events import (
    AgentAudio,
    BargeInConfirmed,
    EndCall,
    Interruption,
    SpeechResumed,
    Transcript,
)

Spawn = Callable[[Coroutine[Any, Any, Any], str], None]


class CallOutput:
    """The call's transport to its module (from the connection's ``protocol``, chosen
    once at the handshake) and its turn ledger, fed from the session's events."""

    def __init__(self, *, call: Call, session: RealtimeSession, protocol: ForkProtocol,
                 send: Callable[..., Awaitable[Any]], spawn: Spawn,
                 hang_up: Callable[[str], Awaitable[None]],
                 now: Callable[[], float]) -> None:
        self.session, self.turns, self.protocol = session, TurnLedger(call=call), protocol
        self.out = protocol.transport(send=send, rate=session.call.sample_rate)
        self._send, self._spawn, self._hang_up, self._now = send, spawn, hang_up, now

    def start(self) -> None:
        if (pacing := self.out.run()) is not None:
            self._spawn(pacing, "pacer")
        self._spawn(self.run(), "events")

    def mark_answered(self, answer: MarkAnswer) -> None:
        """The module says a reply was heard out, or cleared (jambonz marks)."""
        self.out.mark_answered(name=answer.name, event=answer.event)

    async def close(self) -> None:
        """Hang-up: what was playing ends here; the replies still open are recorded."""
        self.out.close()
        await self.turns.flush(latest=self.session.speech, now=self._now())

    async def run(self) -> None:
        """Forward the session's events until it ends the call (or the task is cancelled)."""
        events, turns = self.session.events, self.turns
        while True:
            event = await events.get()
            try:
                if isinstance(event, AgentAudio):
                    await self._audio(event)
                elif isinstance(event, Transcript):
                    await self._send(text_data=self.protocol.transcription(
                        role=event.role, text=event.text, final=event.final, turn=event.turn))
                elif isinstance(event, Interruption):
                    await self._interrupt(event)
                elif isinstance(event, BargeInConfirmed):
                    self._spawn(turns.confirmed(event.speech, now=self._now()), "record")
                elif isinstance(event, SpeechResumed):
                    turns.resumed(event.speech, event.continuation)
                elif isinstance(event, EndCall):
                    await self._hang_up(event.reason)
                    return
            finally:
                events.task_done()  # heard_all joins on it

    async def finish_speaking(self, *, limit_s: float) -> None:
        """Graceful shutdown: the session finishes its turn (then it has said all), and
        the caller hears it out, the wait bounded by ``limit_s``."""
        await self.session.end_of_input(at=self._now())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.heard_all(), limit_s)

    async def heard_all(self) -> None:
        """Until every event is handled and the caller has heard the last reply out."""
        await self.session.events.join()
        speech = self.session.speech
        if speech is not None and speech.first_sent_at is not None:
            await speech.wait_for_playout()

    async def _audio(self, event: AgentAudio) -> None:
        speech = event.speech
        if self.turns.is_cut(speech):
            return  # data frames of an interrupted utterance are dropped
        if not event.pcm and not event.final:
            return
        if speech.first_sent_at is None and event.pcm:
            speech.first_sent_at = self._now()
            if speech.e2e_ms is not None:
                metrics.E2E_LATENCY.observe(speech.e2e_ms / 1000)
        await self.out.audio(speech, event.pcm, text=event.text or speech.text,
                             final=event.final)
        if event.final:
            self._spawn(self.turns.record_when_played(speech), "record")

    async def _interrupt(self, event: Interruption) -> None:
        now = self._now()
        self.turns.interrupted(event.speech, at=now)
        self.out.interrupt(event.speech)
        await self._send(text_data=self.protocol.kill_audio())
        metrics.BARGE_IN_LATENCY.observe(max(0.0, now - event.speech_onset_at))
