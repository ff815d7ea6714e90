"""Output: the pipeline's frames become the session's events, on their two lanes.

The transport (voice.call_output, voice.transport) reads them. This stage also tells the
turn detector, upstream, which utterance the caller is hearing now (``AgentStarted``).
"""

from __future__ import annotations

from voice.pipeline.frames import (
    AgentStarted,
    BargeIn,
    BargeInConfirmed,
    Direction,
    Frame,
    Resumed,
    SpeechAudio,
    TranscriptLine,
)
from voice.pipeline.stage import Stage
from voice.session import events
from voice.session.events import AgentSpeech


class OutputStage(Stage):
    name = "output"
    inline = True

    def __init__(self, *, lanes: events.SessionEvents) -> None:
        super().__init__()
        self.lanes = lanes
        self.speech: AgentSpeech | None = None  # the latest agent utterance

    async def process(self, frame: Frame, direction: Direction) -> None:
        if direction is Direction.UP:
            await self.push(frame, direction)
        elif isinstance(frame, SpeechAudio):
            await self._current(frame.speech)
            self.lanes.put_nowait(events.AgentAudio(speech=frame.speech, pcm=frame.pcm,
                                                    final=frame.final, text=frame.text))
        elif isinstance(frame, TranscriptLine):
            self.lanes.put_nowait(events.Transcript(role=frame.role, text=frame.text,
                                                    final=frame.final, turn=frame.line_turn))
        elif isinstance(frame, BargeIn):
            self.lanes.put_nowait(events.Interruption(speech=frame.speech,
                                                      speech_onset_at=frame.speech_onset_at))
        elif isinstance(frame, BargeInConfirmed):
            self.lanes.put_nowait(events.BargeInConfirmed(speech=frame.speech))
        elif isinstance(frame, Resumed):
            rest = frame.continuation
            self.speech = rest  # the turn detector made it: no need to tell it
            self.lanes.put_nowait(events.SpeechResumed(speech=frame.speech, continuation=rest))
            if rest.audio or rest.complete:
                self.lanes.put_nowait(events.AgentAudio(
                    speech=rest, pcm=bytes(rest.audio), final=rest.complete, text=rest.text))

    async def _current(self, speech: AgentSpeech) -> None:
        if speech is not self.speech:
            self.speech = speech
            await self.push(AgentStarted(speech=speech), Direction.UP)
