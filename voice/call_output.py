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
from functools import partial
from typing import Any

from calls.models import Call
from voice import live as live_calls
from voice import metrics, tts
from voice.call_turns import TurnLedger
from voice.protocols.adapters import ForkProtocol, MarkAnswer
from voice.recording import CallRecorder
from voice.session import apology
from voice.session.base import RealtimeSession
from voice.session.events import (
    AgentAudio,
    AgentSpeech,
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
                 now: Callable[[], float], live: live_calls.LiveCall | None = None,
                 recorder: CallRecorder | None = None) -> None:
        self.session, self.protocol, self.live = session, protocol, live
        self.recorder = recorder  # the call's recording, fed what the caller hears
        self.turns = TurnLedger(call=call, recorded=self._recorded)
        self.out = protocol.transport(send=send, rate=session.call.sample_rate)
        self._send, self._spawn, self._hang_up, self._now = send, spawn, hang_up, now
        session.progress = self._progressed

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
                    self._line(event)
                elif isinstance(event, Interruption):
                    await self._interrupt(event)
                    self._stage(live_calls.Stage.LISTENING)
                elif isinstance(event, BargeInConfirmed):
                    self._spawn(turns.confirmed(event.speech, now=self._now()), "record")
                elif isinstance(event, SpeechResumed):
                    turns.resumed(event.speech, event.continuation)
                elif isinstance(event, EndCall):
                    await self._hang_up(event.reason)
                    return
            finally:
                events.task_done()  # heard_all joins on it

    async def say_goodbye(self, *, language: str, limit_s: float) -> None:
        """A supervisor hangs up: the session stops, what is playing is cut, and the
        goodbye plays out (the wait bounded by ``limit_s``). The caller hears TOM end the
        call, never a line that goes dead mid-sentence."""
        await self.session.aclose()  # no answer in progress may follow the goodbye
        now = self._now()
        speech = self.session.speech
        if speech is not None and speech.playing(now):
            self.turns.interrupted(speech, at=now)
            self.out.interrupt(speech)
            if self.recorder is not None:
                self.recorder.cut()
            await self._send(text_data=self.protocol.kill_audio())
        rate = self.session.call.sample_rate
        text = apology.goodbye_text(language=language)
        pcm = await apology.apology_audio(
            text=text, rate=rate, language=language, turn=0,
            voice=partial(asyncio.to_thread, tts.get_tts, language))
        if not pcm:
            return
        goodbye = AgentSpeech(turn=(speech.turn + 1) if speech is not None else 1, text=text,
                              rate=rate)
        goodbye.clauses.append((text, 0.0))
        goodbye.audio_bytes, goodbye.complete = len(pcm), True
        self.session.speech = goodbye
        await self.session.events.put(AgentAudio(speech=goodbye, pcm=pcm, final=True,
                                                 text=text))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(goodbye.wait_for_playout(), limit_s)

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
            self._first_audio(speech)
        if self.recorder is not None and speech.playout is None:  # else the transport drops it
            self.recorder.agent(event.pcm, rate=speech.rate)
        await self.out.audio(speech, event.pcm, text=event.text or speech.text,
                             final=event.final)
        if event.final:
            self._spawn(self.turns.record_when_played(speech), "record")
            if self.live is not None:
                self._spawn(self._heard_out(speech), "heard")

    async def _interrupt(self, event: Interruption) -> None:
        now = self._now()
        self.turns.interrupted(event.speech, at=now)
        self.out.interrupt(event.speech)
        if self.recorder is not None:
            self.recorder.cut()
        await self._send(text_data=self.protocol.kill_audio())
        metrics.BARGE_IN_LATENCY.observe(max(0.0, now - event.speech_onset_at))

    # --- the console's view of the call (voice.live) -----------------------------------
    def _stage(self, stage: str) -> None:
        if self.live is not None:
            live_calls.hub.call_changed(self.live, stage=stage)

    def _progressed(self, mark: str) -> None:
        if (stage := live_calls.mark_stage(mark)) is not None:
            self._stage(stage)

    def _line(self, event: Transcript) -> None:
        if self.live is None or not event.final or not event.text:
            return
        live_calls.hub.call_line(self.live, role=event.role, text=event.text, turn=event.turn)
        if event.role == "caller":
            self._stage(live_calls.Stage.THINKING)

    def _first_audio(self, speech: AgentSpeech) -> None:
        if self.live is None:
            return
        latencies = self.live.latencies_ms
        if speech.e2e_ms is not None and speech.inherited_e2e_ms is None:
            latencies = [*latencies, speech.e2e_ms]
        live_calls.hub.call_changed(self.live, stage=live_calls.Stage.SPEAKING,
                                    latencies_ms=latencies)

    async def _heard_out(self, speech: AgentSpeech) -> None:
        await speech.wait_for_playout()
        if self.live is not None and self.live.stage == live_calls.Stage.SPEAKING \
                and not self.session.agent_speaking(self._now()):
            self._stage(live_calls.Stage.LISTENING)

    def _recorded(self, turn: int) -> None:
        if self.live is not None:
            live_calls.hub.call_turn_recorded(self.live, turn=turn)
