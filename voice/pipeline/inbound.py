"""Inbound: the caller's decoded audio, resampled once to 16 kHz and cut into 20 ms frames.

VAD (webrtc and Silero) and Whisper all read 16 kHz. Resampling here, with one stateful
filter per call, gives them one shared stream: before, the VAD and STT each resampled
8 kHz lines on their own, with a fresh filter per call of theirs.
"""

from __future__ import annotations

from voice.dsp.framing import FrameBuffer, frame_bytes
from voice.dsp.resample import Resampler
from voice.pipeline.frames import AudioFrame, CallerAudio, Direction, Frame
from voice.pipeline.stage import Stage

RATE = 16000  # what every model on the inbound side reads


class InboundStage(Stage):
    name = "inbound"
    inline = True

    def __init__(self, *, rate: int) -> None:
        super().__init__()
        self.resampler = Resampler(rate, RATE) if rate != RATE else None
        self.framer = FrameBuffer(frame_bytes(RATE))

    async def process(self, frame: Frame, direction: Direction) -> None:
        if not isinstance(frame, CallerAudio):
            await self.push(frame, direction)
            return
        pcm = self.resampler.process(frame.pcm) if self.resampler is not None else frame.pcm
        for chunk in self.framer.push(pcm):
            await self.push(AudioFrame(pcm=chunk, at=frame.at))
