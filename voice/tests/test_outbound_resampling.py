"""A reply's clauses reach the call's rate through one filter, so they join without a seam."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from voice.dsp.resample import resample
from voice.protocols.metadata import CallStart
from voice.session.events import AgentAudio, Transcript
from voice.session.local import LocalSession
from voice.signals import voiced
from voice.stt import SttBackend, Transcription
from voice.tts import TtsBackend

RATE = 8000
REPLY = "Sure, the brake pads fit your car. They cost fifty euros. Anything else?"


class ScriptedStt(SttBackend):
    def transcribe(self, pcm: bytes, *, rate: int, language: str | None) -> Transcription:
        return Transcription(text="Do you have brake pads?", language="en", ms=5)


class ScriptedLlm:
    def stream(self, messages: list[dict[str, Any]], *, cancel: threading.Event) -> Iterator[str]:
        for word in REPLY.split(" "):
            yield word + " "


class ToneTts(TtsBackend):
    """Piper's rate, and one unbroken 440 Hz tone across clauses: any step at a clause
    boundary in the call's audio is the resampler's doing."""

    rate = 22050

    def __init__(self) -> None:
        self.spoken = bytearray()
        self._n = 0

    def synthesize(self, text: str) -> bytes:
        n = self._n + np.arange(len(text.split()) * self.rate // 5)  # 200 ms a word
        self._n = int(n[-1]) + 1
        pcm = (12000 * np.sin(2 * np.pi * 440 * n / self.rate)).astype("<i2").tobytes()
        self.spoken += pcm
        return pcm


async def test_clauses_of_one_reply_join_as_if_resampled_whole() -> None:
    engine = ToneTts()
    call = CallStart(uuid="t", sample_rate=RATE, channels=1, mix_type="mono", encoding="l16",
                     language="en")
    session = LocalSession(call=call, stt_backend=ScriptedStt(),
                           llm_backend=ScriptedLlm(),  # type: ignore[arg-type]
                           tts_backend=engine)
    at = 0.0
    caller = voiced(RATE, 0.6) + bytes(RATE * 2)
    for i in range(0, len(caller) - 319, 320):
        await session.push_audio(caller[i:i + 320], at=at)
        at += 0.02
    clauses: list[bytes] = []
    async with asyncio.timeout(10):
        while not isinstance(event := await session.events.get(), Transcript) \
                or event.role != "agent":
            if isinstance(event, AgentAudio) and event.pcm:
                clauses.append(event.pcm)
    await session.aclose()
    assert len(clauses) == 3  # the reply's three clauses, each resampled as it came
    streamed = np.frombuffer(b"".join(clauses), dtype="<i2").astype(int)
    whole = np.frombuffer(resample(bytes(engine.spoken), engine.rate, RATE),
                          dtype="<i2").astype(int)
    assert len(streamed) == len(whole)
    # A fresh filter per clause dropped each clause's last 4 ms and restarted the next
    # from silence: a step of thousands at every boundary.
    assert np.max(np.abs(streamed - whole)) <= 1  # rounding only
    seams = np.cumsum([len(c) // 2 for c in clauses])[:-1]
    steps = np.abs(np.diff(streamed))
    assert steps[seams - 1].max() <= steps[RATE // 100:].max()
