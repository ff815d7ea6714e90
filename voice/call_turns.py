"""One turn record per agent reply, stored when the session says how the reply ended.

A reply is played out, cut (the session confirmed a barge-in), or carries on after a
backchannel in a continuation that is still the same reply. The session says which with
system events (``BargeInConfirmed``, ``SpeechResumed`` in voice/session/events.py); this
ledger only stores what they say. It used to sleep a guess of the session's barge-in
window from global settings, which a policy variant's longer VAD silence outlasted: one
reply became two turns, and the bandit was rewarded for a barge-in that never happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from calls import services as call_services
from calls.models import Call
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

class TurnLedger:
    """What the transport knows about the call's agent replies, and their turn records.

    Keyed by the ``AgentSpeech`` handles themselves (compared by identity), not by
    ``id()``, so a handle freed and reallocated can never stand for another.
    """

    def __init__(self, *, call: Call, recorded: Callable[[int], None] | None = None) -> None:
        self.call, self._on_recorded = call, recorded  # told each turn stored, by index
        # killAudio sent (at loop time): its data frames are dropped from then on.
        self._cut: dict[AgentSpeech, float] = {}
        self._undecided: list[AgentSpeech] = []  # cut, the session has not said why yet
        self._origin: dict[AgentSpeech, AgentSpeech] = {}  # continuation -> what it resumes
        self._recorded: set[AgentSpeech] = set()
        # Turn writes in flight: the hang-up cancels the task that awaits one (it often
        # ends the call in the same loop turn as the playout report), never the write.
        self._writes: set[asyncio.Future[Any]] = set()

    def is_cut(self, speech: AgentSpeech) -> bool:
        return speech in self._cut

    def interrupted(self, speech: AgentSpeech, *, at: float) -> None:
        """killAudio went out for ``speech`` at ``at``; a decision about it follows."""
        if speech not in self._cut:
            self._cut[speech] = at
            self._undecided.append(speech)

    def resumed(self, speech: AgentSpeech, continuation: AgentSpeech) -> None:
        """A backchannel: ``continuation`` carries on the same reply, and records it."""
        self._decided(speech)
        self._origin[continuation] = speech

    async def confirmed(self, speech: AgentSpeech, *, now: float) -> None:
        """The caller took the turn: the reply ends where it was cut."""
        self._decided(speech)
        await self._record(speech, now=now)

    async def record_when_played(self, speech: AgentSpeech) -> None:
        """Record ``speech`` as soon as the transport reports the caller heard all of it,
        unless it was cut (then its barge-in decision records it, or its continuation)."""
        playout = await speech.wait_for_playout()
        # The session stamps the cut as it queues the Interruption: playout can end
        # before the transport has read that event.
        if playout.interrupted or speech in self._cut or speech.interrupted_at is not None:
            return
        await self._record(speech, now=playout.at)

    async def flush(self, *, latest: AgentSpeech | None, now: float) -> None:
        """At hang-up: replies cut with no decision yet count as barge-ins, and the reply
        in progress is recorded with what was heard of it."""
        for speech in [*self._undecided, latest]:
            if speech is not None and speech not in self._origin.values():
                await self._record(speech, now=now)
        self._undecided.clear()
        if self._writes:
            await asyncio.wait(set(self._writes))

    def _written(self, write: asyncio.Future[Any]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            logger.error("turn.record_failed", exc_info=write.exception(),
                         extra={"call_id": getattr(self.call, "pk", None)})
        elif not write.cancelled() and self._on_recorded is not None:
            self._on_recorded(getattr(write.result(), "index", 0))

    @staticmethod
    def _wall(at: float | None) -> datetime | None:
        """Loop time ``at`` as a wall-clock time: the turn starts where the caller began
        speaking, so the call page seeks the recording there. None (now) for a time
        that is not of this loop's clock (scripted sessions)."""
        if at is None:
            return None
        ago = asyncio.get_running_loop().time() - at
        return timezone.now() - timedelta(seconds=ago) if 0.0 <= ago < 3600.0 else None

    def _decided(self, speech: AgentSpeech) -> None:
        if speech in self._undecided:
            self._undecided.remove(speech)

    async def _record(self, speech: AgentSpeech, *, now: float) -> None:
        if speech in self._recorded:
            return
        self._recorded.add(speech)
        # A resumed reply is one turn: its text, audio and timings from where it began
        # (the session adds every clause there too), heard as the sum of its parts.
        reply, heard_ms = speech, speech.heard_ms(self._cut.get(speech, now))
        while (origin := self._origin.get(reply)) is not None:
            reply = origin
            heard_ms += reply.heard_ms(self._cut.get(reply, now))
        write = asyncio.ensure_future(database_sync_to_async(call_services.call_turn_record)(
            call=self.call, caller_text=reply.caller_text, agent_text=reply.text,
            caller_text_raw=reply.caller_text_raw,
            timings=call_services.TurnTimings(e2e_ms=reply.e2e_ms, **reply.timings),
            barge_in=speech in self._cut, agent_audio_ms=round(reply.audio_ms),
            agent_audio_heard_ms=round(min(heard_ms, reply.audio_ms)),
            tool_calls=reply.tool_calls, waterfall=reply.waterfall_ms(),
            started_at=self._wall(reply.caller_speech_start_at),
        ))
        self._writes.add(write)
        write.add_done_callback(self._written)
        await asyncio.shield(write)
