"""Call recordings (voice.recording): the stereo timeline and its WAV file, read back with
the ``wave`` module while the call is still going, and whole calls through a real daphne
server with the echo session and the project's fork client."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async

from calls.models import Call, PolicyVariant
from tomsite.metrics import ERRORS
from voice import live
from voice.client import ForkClient, Segment
from voice.recording import CallRecorder, StereoTimeline, WavAppender, call_recorder_open
from voice.tests.conftest import LiveServer, fork_communicator, voiced

RATE = 8000
CHUNK = RATE // 50  # 20 ms


def _tone(value: int, seconds: float, rate: int = RATE) -> bytes:
    return np.full(round(seconds * rate), value, dtype="<i2").tobytes()


def _read(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    """The file's parameters and its frames as ``[frame, channel]``."""
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = np.frombuffer(wav.readframes(params.nframes), dtype="<i2")
    return params, frames.reshape(-1, params.nchannels)


def _feed(recorder: CallRecorder, pcm: bytes, *, at: float = 0.0) -> float:
    """Caller audio in 20 ms frames, each received as it ends; returns the last one's time."""
    for offset in range(0, len(pcm), CHUNK * 2):
        at += 0.02
        recorder.caller(pcm[offset:offset + CHUNK * 2], at=at)
    return at


def _recorder(path: Path, **kwargs: Any) -> CallRecorder:
    return CallRecorder(wav=WavAppender.create(path, rate=RATE), rate=RATE, call_id=1,
                        **kwargs)


def test_caller_is_left_and_agent_right_where_the_caller_heard_it(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "call.wav")
    at = _feed(recorder, _tone(1000, 0.5))
    recorder.agent(_tone(2000, 0.3), rate=RATE)  # starts playing at 0.5 s of the call
    recorder.agent(_tone(3000, 0.2), rate=RATE)  # queued behind it: 0.8 s
    _feed(recorder, _tone(1000, 1.5), at=at)
    recorder.finish(at=at + 1.5)
    params, frames = _read(tmp_path / "call.wav")
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, RATE)
    assert params.nframes == 2 * RATE
    assert (frames[:, 0] == 1000).all()
    right = frames[:, 1]
    assert (right[:4000] == 0).all()
    assert (right[4000:6400] == 2000).all() and (right[6400:8000] == 3000).all()
    assert (right[8000:] == 0).all()


def test_a_cut_drops_the_agent_audio_the_caller_never_heard(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "call.wav")
    at = _feed(recorder, _tone(1000, 0.5))
    recorder.agent(_tone(2000, 2.0), rate=RATE)  # a long reply, sent at once (file mode)
    at = _feed(recorder, _tone(1000, 0.5), at=at)
    recorder.cut()  # the caller barged in at 1.0 s: killAudio
    at = _feed(recorder, _tone(1000, 0.5), at=at)
    recorder.agent(_tone(3000, 0.25), rate=RATE)  # the next reply, at 1.5 s
    at = _feed(recorder, _tone(1000, 1.0), at=at)
    recorder.finish(at=at)
    _, frames = _read(tmp_path / "call.wav")
    right = frames[:, 1]
    assert (right[4000:8000] == 2000).all()
    assert (right[8000:12000] == 0).all()  # cut: nothing of the first reply after 1.0 s
    assert (right[12000:14000] == 3000).all() and (right[14000:] == 0).all()
    assert len(frames) == round(2.5 * RATE)


def test_the_file_is_a_valid_wav_after_every_flush_and_a_crash_loses_at_most_a_second(
        tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = _recorder(path)
    assert _read(path)[0].nframes == 0  # the header is there before any audio
    caller = voiced(RATE, 3.5)
    reads = 0
    for offset in range(0, len(caller), CHUNK * 2):
        size = path.stat().st_size
        recorder.caller(caller[offset:offset + CHUNK * 2], at=offset / 2 / RATE)
        if path.stat().st_size != size:  # a flush: read the file the call is still writing
            params, frames = _read(path)
            reads += 1
            assert params.nframes * 4 + 44 == path.stat().st_size
            received = (offset + CHUNK * 2) // 2
            assert received - params.nframes < RATE  # less than a second not yet on disk
            assert frames[:, 0].tobytes() == caller[:params.nframes * 2]
    assert reads == 3
    del recorder  # the process dies here: no finish()
    params, frames = _read(path)
    assert 3.5 - params.nframes / RATE <= 1.0
    assert params.nframes == 3 * RATE


def test_agent_audio_at_another_rate_is_resampled_to_the_call_rate(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "call.wav")
    recorder.agent(voiced(16000, 0.5), rate=16000)
    at = _feed(recorder, _tone(0, 1.0))
    recorder.finish(at=at)
    _, frames = _read(tmp_path / "call.wav")
    loud = np.flatnonzero(np.abs(frames[:, 1]) > 500)
    assert 0.45 * RATE < loud[-1] - loud[0] < 0.5 * RATE


def test_what_played_after_the_last_caller_audio_is_written_up_to_the_hang_up(
        tmp_path: Path) -> None:
    # Graceful shutdown: the module sends no more audio while the last answer plays.
    recorder = _recorder(tmp_path / "long.wav")
    at = _feed(recorder, _tone(1000, 1.0))
    recorder.agent(_tone(2000, 2.0), rate=RATE)
    recorder.finish(at=at + 5.0)  # it played out: all 2 s, and not a sample more
    assert len(_read(tmp_path / "long.wav")[1]) == 3 * RATE
    # The caller hung up 0.5 s into the answer: the rest was never heard.
    recorder = _recorder(tmp_path / "short.wav")
    at = _feed(recorder, _tone(1000, 1.0))
    recorder.agent(_tone(2000, 2.0), rate=RATE)
    recorder.finish(at=at + 0.5)
    _, frames = _read(tmp_path / "short.wav")
    assert len(frames) == 1.5 * RATE and (frames[RATE:, 1] == 2000).all()


def test_stop_keeps_what_was_said_before_it_and_holds_nothing_after(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = _recorder(path)
    at = _feed(recorder, _tone(1000, 1.3))  # 0.3 s of it not yet written when stopped
    recorder.agent(_tone(2000, 1.0), rate=RATE)
    recorder.stop()
    size = path.stat().st_size
    at = _feed(recorder, _tone(1000, 2.0), at=at)  # the caller keeps talking
    recorder.agent(_tone(2000, 1.0), rate=RATE)
    recorder.finish(at=at)
    assert not recorder.active and recorder.timeline.caller_pos == 0  # nothing held
    assert path.stat().st_size == size
    _, frames = _read(path)
    assert len(frames) == round(1.3 * RATE) and (frames[:, 0] == 1000).all()


class _DiskFull(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def write(self, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_full_disk_stops_the_recording_and_the_call_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    file = _DiskFull()
    recorder = CallRecorder(wav=WavAppender(file, rate=RATE), rate=RATE, call_id=7)
    told: list[bool] = []
    recorder.on_failed = lambda: told.append(True)  # the console's "rec" badge goes
    errors = ERRORS.labels(component="recording")._value.get()
    file.full = True
    with caplog.at_level(logging.ERROR, logger="voice.recording"):
        _feed(recorder, _tone(1000, 1.5))  # the flush at 1 s fails; no exception
    assert not recorder.active and file.closed and told == [True]
    assert ERRORS.labels(component="recording")._value.get() == errors + 1
    failed = [r for r in caplog.records if r.getMessage() == "recording.failed"]
    assert len(failed) == 1 and failed[0].call_id == 7  # type: ignore[attr-defined]
    recorder.agent(_tone(2000, 1.0), rate=RATE)
    recorder.cut()
    recorder.finish(at=2.0)  # all of it a no-op now


def test_the_timeline_refuses_odd_pcm() -> None:
    timeline = StereoTimeline(rate=RATE)
    with pytest.raises(ValueError, match="even number of bytes"):
        timeline.caller(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="positive"):
        StereoTimeline(rate=0)


@pytest.mark.django_db(transaction=True)
async def test_a_recorded_call_gets_its_file_and_name_an_unrecorded_one_neither(
        settings: Any, tmp_path: Path) -> None:
    settings.TOM_RECORDING_DIR = tmp_path
    settings.TOM_RECORD_CALLS = True
    call = await Call.objects.acreate(uuid="rec-1")
    recorder = await call_recorder_open(call=call, rate=RATE, now=0.0)
    assert recorder is not None
    await database_sync_to_async(call.refresh_from_db)()
    assert call.recording.name.endswith("/rec-1.wav")
    assert _read(tmp_path / call.recording.name)[0].nchannels == 2
    # A variant that says no wins over the setting.
    variant = await PolicyVariant.objects.acreate(name="quiet",
                                                  parameters={"record_calls": False})
    quiet = await Call.objects.acreate(uuid="rec-2", variant=variant)
    assert await call_recorder_open(call=quiet, rate=RATE, now=0.0) is None
    await database_sync_to_async(quiet.refresh_from_db)()
    assert quiet.recording.name == ""


@pytest.mark.django_db(transaction=True)
async def test_a_supervisor_stops_the_recording_mid_call(settings: Any, tmp_path: Path) -> None:
    # In process, so the console's control reaches this call's consumer through the hub.
    settings.TOM_SESSION_BACKEND = "echo"
    settings.TOM_RECORD_CALLS = True
    settings.TOM_RECORDING_DIR = tmp_path
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps(_metadata(call_uuid)))

    async def talk(value: int, seconds: float) -> None:
        frame = _tone(value, 0.02)
        for _ in range(round(seconds / 0.02)):
            await fork.send_to(bytes_data=frame)
            await asyncio.sleep(0.02)

    await talk(1000, 1.5)
    call = await Call.objects.aget(uuid=call_uuid)
    path = tmp_path / call.recording.name
    assert _read(path)[0].nframes == RATE  # the first second is on disk
    await live.live_control_send(kind="recording_stop", uuid=call_uuid, by="sue")
    for _ in range(100):  # until the consumer has done it: the rest of 1.5 s written
        if _read(path)[0].nframes > RATE:
            break
        await asyncio.sleep(0.02)
    await talk(3000, 1.5)  # the caller goes on: none of it may reach the file
    await fork.disconnect()
    await _ended_call(call_uuid)
    _, frames = _read(path)
    assert RATE < len(frames) <= 1.5 * RATE
    assert (frames[:, 0] == 1000).all()


# --- through a real server ----------------------------------------------------------------
def _metadata(call_uuid: str) -> dict[str, object]:
    return {"uuid": call_uuid, "caller": "+49 30 98765432", "callee": "+49 40 5550100",
            "sampleRate": RATE, "mixType": "mono", "direction": "inbound", "language": "en"}


async def _ended_call(call_uuid: str) -> Call:
    """The call row once the server has finished with it (it closes after the client)."""
    get = database_sync_to_async(Call.objects.filter(uuid=call_uuid).first)
    for _ in range(100):
        call = await get()
        if call is not None and call.is_ended:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError("the call did not end")


async def _recorded_call(live_server_factory: Any, tmp_path: Path, segments: list[Segment],
                         mode: str = "file") -> tuple[Call, np.ndarray]:
    server: LiveServer = live_server_factory(TOM_RECORD_CALLS="true",
                                             TOM_RECORDING_DIR=str(tmp_path))
    call_uuid = str(uuid.uuid4())
    client = ForkClient(url=server.fork_url(call_uuid=call_uuid, mode=mode),
                        metadata=_metadata(call_uuid), rate=RATE, segments=segments)
    report = await client.run()
    assert report.errors == []
    call = await _ended_call(call_uuid)
    assert call.recording.name, "the call names no recording"
    params, frames = _read(tmp_path / call.recording.name)
    assert (params.nchannels, params.framerate) == (2, RATE)
    assert call.duration is not None
    assert abs(params.nframes / RATE - call.duration.total_seconds()) < 1.0
    return call, frames


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file", "stream"])  # playAudio files; paced binary frames
async def test_a_recorded_echo_call_has_the_caller_left_and_the_echo_right(
        live_server_factory: Any, tmp_path: Path, mode: str) -> None:
    said = voiced(RATE, 0.8)
    _, frames = await _recorded_call(live_server_factory, tmp_path,
                                     [Segment(said, pause_s=1.2)], mode=mode)
    assert frames[:len(said) // 2, 0].tobytes() == said  # the caller's audio, as sent
    assert (frames[len(said) // 2:, 0] == 0).all()  # then the client's silence
    echoed = np.flatnonzero(np.abs(frames[:, 1]) > 100)
    assert len(echoed), "no agent audio on the right channel"
    # The echo plays back after the caller stopped and the VAD heard the end.
    assert echoed[0] > len(said) // 2
    assert 0.6 * RATE <= echoed[-1] - echoed[0] <= 1.0 * RATE


@pytest.mark.slow
async def test_a_recording_keeps_only_the_part_of_the_echo_heard_before_the_barge_in(
        live_server_factory: Any, tmp_path: Path) -> None:
    segments = [Segment(voiced(RATE, 2.0), pause_s=1.0),
                Segment(voiced(RATE, 0.6, freq=180), pause_s=1.5)]
    call, frames = await _recorded_call(live_server_factory, tmp_path, segments)
    turns = await database_sync_to_async(list)(call.turns.order_by("index"))
    assert turns[0].barge_in is True
    # Left: the two utterances. Right: the first echo, cut where the caller came in.
    second = round(3.0 * RATE)
    first_echo = np.flatnonzero(np.abs(frames[:second + round(0.6 * RATE), 1]) > 100)
    assert len(first_echo)
    assert first_echo[0] > 2.0 * RATE  # the echo began once the caller had finished
    # Uncut, the 2 s echo would run past 3.6 s; it ends within the barge-in's latency.
    assert first_echo[-1] < second + round(0.5 * RATE)
