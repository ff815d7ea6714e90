"""The echo session: each caller utterance, cut by the VAD, is played straight back.

The loopback diagnostic FreeSWITCH users know (``echo``), here through the whole bridge:
framing, VAD, agent audio out, barge-in and turn records, with no model involved.
"""

from __future__ import annotations

from voice.dsp.framing import FrameBuffer, frame_bytes
from voice.dsp.pcm import pcm_ms
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession
from voice.session.events import (
    AgentAudio,
    AgentSpeech,
    BargeInConfirmed,
    Interruption,
    Transcript,
)
from voice.session.segmenter import UtteranceSegmenter


class EchoSession(RealtimeSession):
    def __init__(self, *, call: CallStart) -> None:
        super().__init__(call=call)
        self.segmenter = UtteranceSegmenter(rate=call.sample_rate)
        self.framer = FrameBuffer(frame_bytes(call.sample_rate))
        self._turn = 0

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        for exact in self.framer.push(frame):
            await self._frame(exact, at=at)

    async def _frame(self, frame: bytes, *, at: float) -> None:
        _, utterance = self.segmenter.push(frame)
        speech = self.speech
        if speech is not None and speech.playing(at) and self.segmenter.in_speech \
                and self.segmenter.barge_in_ready():
            speech.interrupted_at = at
            await self.events.put(Interruption(
                speech=speech, speech_onset_at=at - self.segmenter.speech_onset_ago_s))
            # The echo waits for barge_in_ready() before it stops: decided at once, and
            # never resumed.
            await self.events.put(BargeInConfirmed(speech=speech))
        if utterance is not None:
            await self._answer(utterance, speech_end_at=at - self.segmenter.params.stop_s)

    async def _answer(self, pcm: bytes, *, speech_end_at: float) -> None:
        self._turn += 1
        heard = f"({pcm_ms(len(pcm), self.call.sample_rate):.0f} ms of speech)"
        speech = AgentSpeech(turn=self._turn, text="echo", rate=self.call.sample_rate,
                             caller_text=heard, caller_speech_end_at=speech_end_at)
        speech.audio_bytes = len(pcm)
        speech.complete = True
        self.speech = speech
        await self.events.put(Transcript(role="caller", text=heard, final=True, turn=self._turn))
        await self.events.put(AgentAudio(speech=speech, pcm=pcm, final=True))

    async def end_of_input(self, *, at: float) -> None:
        pcm = self.segmenter.take()
        if pcm:
            await self._answer(pcm, speech_end_at=at)

    async def aclose(self) -> None:
        self.segmenter.take()
