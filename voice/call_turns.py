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

from channels.db import database_sync_to_async

from calls import services as call_services
from calls.models import Call
from voice.session.events import AgentSpeech

logger = logging.getLogger(__name__)

PLAYOUT_POLL_S = 0.05


class TurnLedger:
    """What the transport knows about the call's agent replies, and their turn records.

    Keyed by the ``AgentSpeech`` handles themselves (compared by identity), not by
    ``id()``, so a handle freed and reallocated can never stand for another.
    """

    def __init__(self, *, call: Call) -> None:
        self.call = call
        # killAudio sent (at loop time): its data frames are dropped from then on.
        self._cut: dict[AgentSpeech, float] = {}
        self._undecided: list[AgentSpeech] = []  # cut, the session has not said why yet
        self._origin: dict[AgentSpeech, AgentSpeech] = {}  # continuation -> what it resumes
        self._recorded: set[AgentSpeech] = set()

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

    async def record_when_played(self, speech: AgentSpeech, *,
                                 clock: Callable[[], float]) -> None:
        """Record ``speech`` once the caller has heard all of it, unless it is cut first
        (then its barge-in decision records it, or its continuation does)."""
        # Playout is known from elapsed time (or a mark reply); nothing signals it yet.
        while speech.playing(clock()):  # noqa: ASYNC110
            await asyncio.sleep(PLAYOUT_POLL_S)
        # The session stamps the cut as it queues the Interruption: this loop can see it
        # before the transport has read that event.
        if speech in self._cut or speech.interrupted_at is not None:
            return
        await self._record(speech, now=clock())

    async def flush(self, *, latest: AgentSpeech | None, now: float) -> None:
        """At hang-up: replies cut with no decision yet count as barge-ins, and the reply
        in progress is recorded with what was heard of it."""
        for speech in [*self._undecided, latest]:
            if speech is not None and speech not in self._origin.values():
                await self._record(speech, now=now)
        self._undecided.clear()

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
        await database_sync_to_async(call_services.call_turn_record)(
            call=self.call, caller_text=reply.caller_text, agent_text=reply.text,
            caller_text_raw=reply.caller_text_raw,
            timings=call_services.TurnTimings(e2e_ms=reply.e2e_ms, **reply.timings),
            barge_in=speech in self._cut, agent_audio_ms=round(reply.audio_ms),
            agent_audio_heard_ms=round(min(heard_ms, reply.audio_ms)),
            tool_calls=reply.tool_calls,
        )
