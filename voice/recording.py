"""Call recordings: one stereo WAV per call, the caller left and the agent right, as heard.

The caller's audio is the clock: a sample position is "samples of caller audio received
so far". Agent audio is placed where the caller started hearing it, which is the
caller's position when the transport sent it, or the end of the agent audio before it
if that is still playing; a barge-in (``killAudio``) cuts what was scheduled after it.
Only audio up to the caller's position is written, since agent audio scheduled ahead of
it can still be cut.

The file is written as it goes (``WavAppender``): the header first, then about a second
of interleaved frames at a time, the header's sizes patched after each append, so the
file is a valid WAV whenever it is read and a crash loses at most the last second. A
second of 16 kHz stereo is 64 KB: a plain write on the event loop, no fsync there.

``StereoTimeline`` and ``WavAppender`` are pure and synchronous (bytes in, bytes out);
``CallRecorder`` joins them for one call, and ``call_recorder_open`` decides whether a
call is recorded (its policy variant, else ``TOM_RECORD_CALLS``) and where.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from channels.db import database_sync_to_async
from django.db import DatabaseError

from calls import recordings as call_recordings
from calls.models import Call
from tomsite.metrics import error_count
from voice.dsp.resample import Resampler

logger = logging.getLogger(__name__)

CHANNELS = 2  # caller left, agent right
SAMPLE_BYTES = 2
HEADER_BYTES = 44
FLUSH_S = 1.0  # what a crash may lose, at most


class StereoTimeline:
    """Caller (left) and agent (right) audio on the caller's clock, taken out in order.

    Positions are in samples at ``rate``. ``take`` hands out interleaved 16-bit stereo
    frames from where the last take ended; what it has handed out never changes again.
    """

    def __init__(self, *, rate: int) -> None:
        if rate <= 0:
            raise ValueError("the sample rate must be positive")
        self.rate = rate
        self.caller_pos = 0  # caller samples received
        self.written = 0  # samples handed out by take()
        self.agent_end = 0  # where the agent audio scheduled so far ends
        self._left = bytearray()  # caller samples from ``written`` on
        self._agent: list[tuple[int, np.ndarray]] = []  # (start, samples), in order

    def caller(self, pcm: bytes) -> None:
        """Caller audio (16-bit mono at ``rate``), as it arrives."""
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError("16-bit PCM must have an even number of bytes")
        self._left += pcm
        self.caller_pos += len(pcm) // SAMPLE_BYTES

    def agent(self, pcm: bytes) -> int:
        """Agent audio sent now: placed after the agent audio still playing, else at the
        caller's position. Returns where it starts."""
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError("16-bit PCM must have an even number of bytes")
        start = max(self.agent_end, self.caller_pos, self.written)
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(samples):
            self._agent.append((start, samples))
            self.agent_end = start + len(samples)
        return start

    def cut(self, at: int | None = None) -> None:
        """The agent was cut off at ``at`` (default: the caller's position now): agent
        audio scheduled from there on was never heard and is dropped."""
        at = max(self.caller_pos if at is None else at, self.written)
        kept = []
        for start, samples in self._agent:
            if start < at:
                kept.append((start, samples[: at - start]))
        self._agent = kept
        self.agent_end = min(self.agent_end, at)

    @property
    def pending(self) -> int:
        """Caller samples received and not yet taken."""
        return self.caller_pos - self.written

    def take(self, until: int | None = None) -> bytes:
        """Interleaved frames from the last take up to ``until`` (default: the caller's
        position). Beyond the caller's position the left channel is silence."""
        until = self.caller_pos if until is None else until
        count = until - self.written
        if count <= 0:
            return b""
        frames = np.zeros((count, CHANNELS), dtype="<i2")
        have = min(count, len(self._left) // SAMPLE_BYTES)
        frames[:have, 0] = np.frombuffer(self._left, dtype="<i2", count=have)
        del self._left[: have * SAMPLE_BYTES]
        kept = []
        for start, samples in self._agent:
            end = start + len(samples)
            first, last = max(start, self.written), min(end, until)
            if first < last:
                frames[first - self.written:last - self.written, 1] = \
                    samples[first - start:last - start]
            if end > until:
                kept.append((until, samples[until - start:]) if start < until
                            else (start, samples))
        self._agent = kept
        self.written = until
        return frames.tobytes()


def wav_header(*, rate: int, channels: int, data_bytes: int) -> bytes:
    """The 44-byte RIFF/WAVE header of 16-bit PCM with ``data_bytes`` of frames."""
    block = channels * SAMPLE_BYTES
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16,
                       1, channels, rate, rate * block, block, 8 * SAMPLE_BYTES, b"data",
                       data_bytes)


class WavAppender:
    """A stereo WAV file that is valid after every ``append``: the frames go at the end,
    then the RIFF and data sizes in the header are patched to count them."""

    def __init__(self, file: BinaryIO, *, rate: int, channels: int = CHANNELS) -> None:
        self.file, self.rate, self.channels = file, rate, channels
        self.data_bytes = 0
        file.write(wav_header(rate=rate, channels=channels, data_bytes=0))
        file.flush()

    @classmethod
    def create(cls, path: Path, *, rate: int) -> WavAppender:
        """A new file at ``path`` (its folders made); an existing file is never replaced."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        return cls(os.fdopen(fd, "wb"), rate=rate)

    def append(self, frames: bytes) -> None:
        if not frames:
            return
        file = self.file
        file.seek(HEADER_BYTES + self.data_bytes)
        file.write(frames)
        self.data_bytes += len(frames)
        file.seek(4)
        file.write(struct.pack("<I", 36 + self.data_bytes))
        file.seek(40)
        file.write(struct.pack("<I", self.data_bytes))
        file.flush()  # to the OS: a crash of this process loses nothing written here

    def close(self) -> None:
        self.file.close()


class CallRecorder:
    """One call's recording: fed the caller's audio, the agent's audio as it is sent, and
    each cut; writes about every ``flush_s`` of caller audio.

    ``stop`` (a supervisor's "stop recording") writes what was said before it and closes
    the file: nothing the caller says afterwards is held. A failed write (disk full) stops
    the recording the same way; the call goes on.
    """

    def __init__(self, *, wav: WavAppender, rate: int, call_id: int | None = None,
                 started_at: float = 0.0, flush_s: float = FLUSH_S) -> None:
        self.wav, self.rate, self.call_id = wav, rate, call_id
        self.timeline = StereoTimeline(rate=rate)
        self.flush_samples = max(1, round(flush_s * rate))
        self.active = True
        # Told once when a write fails, so the console stops showing the call as recorded.
        self.on_failed: Callable[[], None] | None = None
        self._last_caller_at = started_at
        self._resamplers: dict[int, Resampler] = {}

    def caller(self, pcm: bytes, *, at: float) -> None:
        """Caller audio (L16 mono at the call's rate) received at loop time ``at``."""
        if not self.active:
            return
        self.timeline.caller(pcm)
        self._last_caller_at = at
        if self.timeline.pending >= self.flush_samples:
            self._write(self.timeline.take())

    def agent(self, pcm: bytes, *, rate: int) -> None:
        """Agent audio (L16 mono at ``rate``) on its way to the caller's line now."""
        if not self.active or not pcm:
            return
        if rate != self.rate:
            resampler = self._resamplers.get(rate)
            if resampler is None:
                resampler = self._resamplers[rate] = Resampler(rate, self.rate)
            pcm = resampler.process(pcm)
        self.timeline.agent(pcm)

    def cut(self) -> None:
        """``killAudio`` went out now: the agent audio not yet heard never will be."""
        if self.active:
            self.timeline.cut()
            for resampler in self._resamplers.values():
                resampler.reset()

    def stop(self) -> None:
        """Stop recording for the rest of the call; what was recorded is kept."""
        if not self.active:
            return
        self._write(self.timeline.take())
        self._close()
        logger.info("recording.stopped", extra={"call_id": self.call_id})

    def finish(self, *, at: float) -> None:
        """The call ended at loop time ``at``: the agent audio that played after the last
        caller audio (a graceful shutdown sends none) is written up to then."""
        if not self.active:
            return
        timeline = self.timeline
        since = max(0, round((at - self._last_caller_at) * self.rate))
        until = max(timeline.caller_pos, min(timeline.agent_end, timeline.caller_pos + since))
        self._write(timeline.take(until))
        self._close()
        logger.info("recording.finished", extra={"call_id": self.call_id,
                                                 "seconds": round(until / self.rate, 1)})

    def _write(self, frames: bytes) -> None:
        if not self.active:
            return
        try:
            self.wav.append(frames)
        except OSError as exc:
            error_count(component="recording")
            logger.error("recording.failed", extra={"call_id": self.call_id,
                                                    "error": type(exc).__name__,
                                                    "errno": exc.errno})
            self._close()
            if self.on_failed is not None:
                self.on_failed()

    def _close(self) -> None:
        self.active = False
        self.timeline = StereoTimeline(rate=self.rate)  # nothing held once stopped
        try:
            self.wav.close()
        except OSError as exc:
            error_count(component="recording")
            logger.error("recording.failed", extra={"call_id": self.call_id,
                                                    "error": type(exc).__name__,
                                                    "errno": exc.errno})


async def call_recorder_open(*, call: Call, rate: int, now: float) -> CallRecorder | None:
    """The recorder of ``call`` if it is recorded (its policy variant's ``record_calls``,
    else ``TOM_RECORD_CALLS``), its file created and named on the call; None if not
    recorded or the file cannot be created (logged and counted: the call goes on)."""
    wav = await database_sync_to_async(_recording_create)(call=call, rate=rate)
    if wav is None:
        return None
    return CallRecorder(wav=wav, rate=rate, call_id=call.pk, started_at=now)


async def call_recording_publish(*, call: Call) -> None:
    """After the recorder closed: a spooled recording moves into the configured storage
    (calls.recordings), in a thread of its own: an upload may take a while, and must hold
    neither the loop nor the thread the call's other database work runs in."""
    if call.recording.name:
        await database_sync_to_async(call_recordings.recording_publish, thread_sensitive=False)(
            name=call.recording.name)


def _recording_create(*, call: Call, rate: int) -> WavAppender | None:
    if not call_recordings.recording_wanted(call=call):
        return None
    try:
        name, path = call_recordings.call_recording_target(call=call)
        wav = WavAppender.create(path, rate=rate)
    except Exception as exc:
        # A full disk, or a configured storage that cannot be built (a missing package, a
        # bad option): the call goes on unrecorded, and every call says so in the log.
        error_count(component="recording")
        logger.error("recording.failed", extra={"call_id": call.pk,
                                                "error": type(exc).__name__})
        return None
    try:
        call_recordings.call_recording_set(call=call, name=name)
    except DatabaseError as exc:
        # A file no call names would outlive the retention task: not kept.
        wav.close()
        path.unlink(missing_ok=True)
        error_count(component="recording")
        logger.error("recording.failed", extra={"call_id": call.pk,
                                                "error": type(exc).__name__})
        return None
    logger.info("recording.started", extra={"call_id": call.pk, "rate": rate})
    return wav
