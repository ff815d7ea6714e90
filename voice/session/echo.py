"""The echo session: each caller utterance, cut by the VAD, is played straight back.

The loopback diagnostic FreeSWITCH users know (``echo``), here through the whole bridge:
framing, VAD, agent audio out, barge-in and turn records, with no model involved.
"""

from __future__ import annotations

from collections import deque

from django.conf import settings

from voice.dsp.pcm import pcm_ms
from voice.dsp.vad import VadEvent, VadMachine, VadParams, VadState, dbfs
from voice.protocols.metadata import CallStart
from voice.session.base import RealtimeSession
from voice.session.events import AgentAudio, AgentSpeech, Interruption, Transcript
from voice.vad import WebrtcClassifier

FRAME_S = 0.02


class EchoSession(RealtimeSession):
    def __init__(self, *, call: CallStart) -> None:
        super().__init__(call=call)
        self.params = VadParams(frame_s=FRAME_S, start_s=settings.TOM_VAD_START_MS / 1000,
                                stop_s=settings.TOM_VAD_STOP_MS / 1000)
        self._vad = VadMachine(self.params)
        self._classifier = WebrtcClassifier(rate=call.sample_rate,
                                            aggressiveness=settings.TOM_VAD_AGGRESSIVENESS)
        # Frames before the VAD confirms speech belong to the utterance too.
        self._preroll: deque[bytes] = deque(maxlen=self.params.start_frames + 2)
        self._utterance: list[bytes] = []
        self._loud_frames = 0
        self._turn = 0

    async def push_audio(self, frame: bytes, *, at: float) -> None:
        level = dbfs(frame)
        event = self._vad.update(self._classifier.is_speech(frame, level=level))
        if self._vad.state is VadState.QUIET and event is None:
            self._preroll.append(frame)
            self._loud_frames = 0
            return
        if not self._utterance:
            self._utterance.extend(self._preroll)
            self._preroll.clear()
        self._utterance.append(frame)
        if level >= settings.TOM_BARGE_IN_MIN_DBFS:
            self._loud_frames += 1
        await self._maybe_barge_in(at)
        if event is VadEvent.SPEECH_END:
            await self._answer(speech_end_at=at - self.params.stop_s)

    async def _maybe_barge_in(self, now: float) -> None:
        speech = self.speech
        if speech is None or not speech.playing(now):
            return
        # Backchannels and the agent's own echo are short or quiet: demand both length
        # and level before cutting the agent off.
        if self._loud_frames * FRAME_S * 1000 >= settings.TOM_BARGE_IN_MIN_SPEECH_MS:
            speech.interrupted_at = now
            onset = now - self._vad.speech_frames * FRAME_S
            await self.events.put(Interruption(speech=speech, speech_onset_at=onset))

    async def _answer(self, *, speech_end_at: float) -> None:
        # Drop the trailing silence that confirmed the end of the utterance.
        keep = max(1, len(self._utterance) - self.params.stop_frames)
        pcm = b"".join(self._utterance[:keep])
        self._utterance, self._loud_frames = [], 0
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
        if self._utterance:
            await self._answer(speech_end_at=at)
        self._vad.reset()

    async def aclose(self) -> None:
        self._utterance.clear()
