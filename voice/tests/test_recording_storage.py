"""A recorded call with a remote recordings storage (``STORAGES["recordings"]``; Django's
InMemoryStorage stands in, as it has no files): the call records into the spool while it
runs, and when it ends its WAV is in the storage, whole, and the spool is empty."""

from __future__ import annotations

import asyncio
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

from calls.models import Call
from calls.storage import recording_storage
from voice.tests.conftest import fork_communicator

RATE = 8000
STORAGES = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            "recordings": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}


@pytest.mark.django_db(transaction=True)
async def test_a_call_recorded_for_a_remote_storage_lands_there_when_it_ends(
        settings: Any, tmp_path: Path) -> None:
    settings.TOM_SESSION_BACKEND = "echo"
    settings.TOM_RECORD_CALLS = True
    settings.TOM_RECORDING_DIR = tmp_path
    settings.STORAGES = STORAGES
    call_uuid = str(uuid.uuid4())
    fork = fork_communicator(call_uuid)
    assert (await fork.connect())[0]
    await fork.send_to(text_data=json.dumps({"uuid": call_uuid, "sampleRate": RATE,
                                             "mixType": "mono", "language": "en"}))
    frame = np.full(160, 1000, dtype="<i2").tobytes()
    for _ in range(75):  # 1.5 s of the caller
        await fork.send_to(bytes_data=frame)
        await asyncio.sleep(0.02)
    call = await Call.objects.aget(uuid=call_uuid)
    name = call.recording.name
    assert name and (tmp_path / "spool" / name).exists()  # appended to while it runs
    await fork.disconnect()
    storage = recording_storage()
    for _ in range(100):  # the consumer moves it after the call's end is on the record
        if await database_sync_to_async(storage.exists)(name):
            break
        await asyncio.sleep(0.05)
    with storage.open(name) as file, wave.open(io.BytesIO(file.read())) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, RATE)
        left = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")[0::2]
    assert 1.4 * RATE <= len(left) <= 1.6 * RATE and (left == 1000).all()
    assert not (tmp_path / "spool" / name).exists()


@pytest.mark.django_db(transaction=True)
async def test_a_storage_that_cannot_be_built_costs_the_recording_not_the_call(
        settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from voice.recording import call_recorder_open

    settings.TOM_RECORD_CALLS = True
    settings.TOM_RECORDING_DIR = tmp_path
    settings.STORAGES = {**STORAGES, "recordings": {"BACKEND": "storages.backends.nowhere.S3"}}
    call = await Call.objects.acreate(uuid="rec-broken")
    with caplog.at_level(logging.ERROR, logger="voice.recording"):
        assert await call_recorder_open(call=call, rate=RATE, now=0.0) is None
    assert [r.getMessage() for r in caplog.records] == ["recording.failed"]
    await database_sync_to_async(call.refresh_from_db)()
    assert call.recording.name == ""
