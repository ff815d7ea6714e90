"""Turn detection: utterances out of the 16 kHz stream, barge-in, preemptive STT.

Barge-in comes in two steps, as LiveKit's false-interruption handling does:

1. ``KILL_AFTER_MS`` of loud caller speech over the agent: the agent goes quiet at once
   (``BargeIn``; killAudio leaves within a frame or two of the VAD's onset).
2. The variant's ``barge_in_min_speech_ms`` of it: a real interruption, the turn is
   cancelled and the reply ends where the caller cut it (``BargeInConfirmed``). If the
   caller stops before that ("hm", "ja", a cough) the reply resumes from where it was
   cut (``Resumed``), and stays one reply.

What the caller hears now is told by the output, upstream (``AgentStarted``): this
stage never looks at the transport.

A caller who goes on before any of the reply was heard ("Do you have brake pads for a ...
Golf seven?") was not done: the turn is cancelled and its audio goes in front of the new
utterance, so one transcript, one lookup and one answer cover the whole question (and the
context forgets the half one). Pipecat's user aggregator and LiveKit's turn handling
likewise keep a turn open while the caller keeps talking.

A turn that leaves the caller in silence for ``overdue_s`` after they stopped (models
swamped by other calls, a model server that hangs) is given up: it is cancelled and the
caller hears the apology in espeak-ng's voice, which needs no model and no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from voice.dsp.vad import VadEvent, VadState
from voice.pipeline.frames import (
    AgentStarted,
    AudioFrame,
    BargeIn,
    BargeInConfirmed,
    CancelTurn,
    Direction,
    EarlyUtterance,
    Frame,
    InputEnded,
    Resumed,
    SpeechContinued,
    TurnFailed,
    Utterance,
)
from voice.pipeline.inbound import RATE
from voice.pipeline.stage import Stage
from voice.session.events import AgentSpeech
from voice.session.hearing import echo_floor
from voice.session.segmenter import UtteranceSegmenter

logger = logging.getLogger(__name__)

# Loud caller speech over the agent for this long silences it at once.
KILL_AFTER_MS = 40
# Between the halves of a question joined again: a pause, as the caller made one.
JOIN_GAP_S = 0.3
# Speech this soon after a turn began goes on with its question; later, with no reply
# yet, it is a remark of its own ("hello?"), and the reply being made for it is kept.
JOIN_WITHIN_S = 2.0


class TurnStage(Stage):
    name = "turns"
    inline = True

    def __init__(self, *, stop_ms: int | None, barge_in_ms: int | None, mixed: bool,
                 preempt_ms: int, overdue_s: float = 0.0) -> None:
        super().__init__()
        self.segmenter = UtteranceSegmenter(rate=RATE, stop_ms=stop_ms,
                                            barge_in_ms=barge_in_ms)
        self.mixed, self.preempt_ms, self.overdue_s = mixed, preempt_ms, overdue_s
        self._overdue: asyncio.Task[None] | None = None  # the current turn's watchdog
        self.turn = 0
        self.speech: AgentSpeech | None = None  # what the caller hears (from the output)
        self._held: AgentSpeech | None = None  # silenced by the caller, not yet decided
        self._held_confirmed = False
        self._early: bytes | None = None  # the audio an early transcription reads
        self._unanswered: bytes | None = None  # the turn's audio until its reply is heard
        self._unanswered_at = 0.0  # when that turn began (frame time)

    async def process(self, frame: Frame, direction: Direction) -> None:
        if isinstance(frame, AgentStarted):
            self.speech = frame.speech
            if frame.speech.turn >= self.turn:  # the caller hears the turn: not overdue
                self._watch_stop()
                self._unanswered = None
            return  # the output's news ends here
        if isinstance(frame, AudioFrame):
            await self._audio(frame.pcm, frame.at)
        elif isinstance(frame, InputEnded):
            pcm = self.segmenter.take()
            if pcm:
                await self._start_turn(pcm, speech_end_at=frame.at, now_at=frame.at)
            await self.push(frame, direction)
        else:
            await self.push(frame, direction)

    async def _audio(self, pcm: bytes, at: float) -> None:
        speech, segmenter = self.speech, self.segmenter
        event, utterance = segmenter.push(pcm, loud_dbfs=echo_floor(
            speech=speech, now=at, mixed=self.mixed))
        if event is VadEvent.SPEECH_START and self._unanswered is not None \
                and at - self._unanswered_at <= JOIN_WITHIN_S \
                and self._held is None and not (speech is not None and speech.playing(at)):
            await self._join_unanswered()
        if utterance is None:
            await self._transcribe_early()
        if self._held is None and speech is not None and speech.playing(at) \
                and segmenter.in_speech and segmenter.loud_ms >= KILL_AFTER_MS:
            speech.interrupted_at = at
            self._held, self._held_confirmed = speech, False
            await self.push(BargeIn(speech=speech,
                                    speech_onset_at=at - segmenter.speech_onset_ago_s))
        if self._held is not None and not self._held_confirmed and segmenter.in_speech \
                and segmenter.barge_in_ready():
            await self._confirm_barge_in(self._held)
        if utterance is None:
            return
        if self._held is not None and not self._held_confirmed:
            await self._drop_early()
            await self._resume()  # a backchannel: carry on speaking
            return
        self._held, self._held_confirmed = None, False
        await self._start_turn(utterance, speech_end_at=at - segmenter.params.stop_s, now_at=at)

    async def _confirm_barge_in(self, speech: AgentSpeech) -> None:
        self._held_confirmed = True
        heard = speech.heard_text(speech.interrupted_at or 0.0).removeprefix(
            speech.filler).strip()
        await self.push(CancelTurn(upto=self.turn, reason="barge_in"))
        await self.push(BargeInConfirmed(speech=speech, heard=heard))

    async def _resume(self) -> None:
        """Speak the rest of a reply that a backchannel cut off."""
        speech, self._held = self._held, None
        if speech is None or speech.interrupted_at is None:
            return
        heard_ms = speech.heard_ms(speech.interrupted_at)
        offset = int(heard_ms * speech.rate / 1000) * 2
        rest = AgentSpeech(turn=speech.turn, text=speech.unheard_text(heard_ms),
                           rate=speech.rate, caller_text=speech.caller_text,
                           timings=dict(speech.timings), inherited_e2e_ms=speech.e2e_ms,
                           tool_calls=speech.tool_calls, caller_text_raw=speech.caller_text_raw)
        speech.resumed_by = rest
        rest.audio += speech.audio[offset:]
        rest.audio_bytes, rest.complete = len(rest.audio), speech.complete
        self.speech = rest
        await self.push(Resumed(speech=speech, continuation=rest))

    async def _transcribe_early(self) -> None:
        """Preemptive STT, as LiveKit's preemptive generation: once the caller has been
        quiet for ``preempt_ms``, the STT stage transcribes what they said while the VAD
        still waits out the end-of-turn silence. If they go on, the guess is dropped."""
        segmenter = self.segmenter
        if self._early is not None and segmenter.vad.state is VadState.SPEAKING:
            await self._drop_early()  # the caller went on: that transcript is stale
        if not self.preempt_ms or self._early is not None \
                or segmenter.trailing_silence_ms < self.preempt_ms:
            return
        pcm = segmenter.peek()
        if pcm:
            self._early = pcm
            await self.push(EarlyUtterance(pcm=pcm, next_turn=self.turn + 1))

    async def _join_unanswered(self) -> None:
        """The caller goes on before hearing any reply: that turn was half a question."""
        pcm, self._unanswered = self._unanswered, None
        self._watch_stop()
        await self.push(CancelTurn(upto=self.turn, reason="caller_went_on"))
        self.segmenter.prepend((pcm or b"") + bytes(2 * round(RATE * JOIN_GAP_S)))
        logger.info("pipeline.turn_joined", extra={"turn": self.turn})

    async def _drop_early(self) -> None:
        if self._early is not None:
            self._early = None
            await self.push(SpeechContinued())

    async def _start_turn(self, pcm: bytes, *, speech_end_at: float, now_at: float) -> None:
        if self.turn:  # a caller still talking supersedes a turn not yet spoken
            await self.push(CancelTurn(upto=self.turn, reason="superseded"))
        self.turn += 1
        self._early = None  # the STT stage takes it if it read exactly ``pcm``
        self._unanswered, self._unanswered_at = pcm, now_at
        self._watch_stop()
        if self.overdue_s > 0:
            # Frame times, not this stage's clock: the caller stopped (now_at - speech_end_at)
            # ago, and the audio's time base need not be the clock's.
            delay = self.overdue_s - (now_at - speech_end_at)
            self._overdue = asyncio.create_task(
                self._give_up_after(self.turn, speech_end_at, delay),
                name=f"turn-{self.turn}-overdue")
        await self.push(Utterance(pcm=pcm, turn=self.turn, speech_end_at=speech_end_at))

    async def _give_up_after(self, turn: int, speech_end_at: float, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
        if turn != self.turn or self.segmenter.in_speech:
            return  # a newer turn, or the caller talks again: theirs is the next word
        self._overdue = None  # from here on this task must not cancel itself
        logger.warning("pipeline.turn_overdue", extra={"turn": turn,
                                                       "overdue_s": self.overdue_s})
        await self.push(CancelTurn(upto=turn, reason="overdue"))
        # engine_failed: the call's voice is as swamped as the rest; espeak-ng is not.
        await self.push(TurnFailed(turn=turn, speech=None, speech_end_at=speech_end_at,
                                   engine_failed=True, overload=True))

    def _watch_stop(self) -> None:
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None

    async def aclose(self) -> None:
        task, self._overdue = self._overdue, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
