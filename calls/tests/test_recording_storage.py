"""Recordings in a configured storage without local files (S3 and the like): each call is
recorded into a spool file under TOM_RECORDING_DIR, moved into the storage when it ends,
served from there, and a spool file a storage refused (or a dead process left) is moved
by the beat task later. InMemoryStorage stands in for a remote storage: it has no paths."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission, User
from django.core.files.storage import InMemoryStorage
from django.test import Client
from django.urls import reverse

from calls import tasks
from calls.models import Call
from calls.recordings import (
    call_recording_set,
    call_recording_target,
    recording_publish,
    recordings_publish_spooled,
)
from calls.storage import recording_storage
from tomsite.metrics import ERRORS

pytestmark = pytest.mark.django_db

AUDIO = bytes(range(256)) * 40
DEFAULTS = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


class RefusingStorage(InMemoryStorage):
    """A storage whose far end is down."""

    def _save(self, name: str, content: Any) -> str:
        raise ConnectionError("the bucket cannot be reached")


def _use(settings: Any, backend: str) -> None:
    settings.STORAGES = {**DEFAULTS, "recordings": {"BACKEND": backend}}


@pytest.fixture
def spool(settings: Any, tmp_path: Path) -> Path:
    settings.TOM_RECORDING_DIR = tmp_path
    _use(settings, "django.core.files.storage.InMemoryStorage")
    return tmp_path / "spool"


def _spooled_call(uuid: str = "rec-s") -> tuple[Call, str, Path]:
    call = Call.objects.create(uuid=uuid)
    name, path = call_recording_target(call=call)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(AUDIO)  # what voice.recording appends while the call runs
    call_recording_set(call=call, name=name)
    return call, name, path


def _body(response: Any) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def test_a_call_is_recorded_into_the_spool_and_moved_into_the_storage(
        client: Client, spool: Path) -> None:
    call, name, path = _spooled_call()
    assert path == spool / name  # a local file to append to
    assert not recording_storage().exists(name)
    assert recording_publish(name=name) is True
    assert not path.exists() and recording_storage().exists(name)
    user = User.objects.create_user("sue", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="listen_recording"))
    client.force_login(user)
    url = reverse("console:recording", args=[call.uuid])
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Content-Type"] == "audio/wav"
    assert _body(whole) == AUDIO
    ranged = client.get(url, HTTP_RANGE="bytes=100-199")
    assert ranged.status_code == 206 and _body(ranged) == AUDIO[100:200]


def test_a_local_storage_is_written_in_place_and_publishing_is_a_no_op(
        settings: Any, tmp_path: Path) -> None:
    settings.TOM_RECORDING_DIR = tmp_path
    settings.STORAGES = DEFAULTS  # no "recordings": files under TOM_RECORDING_DIR
    _, name, path = _spooled_call()
    assert path == tmp_path / name
    assert recording_publish(name=name) is True and path.exists()


def test_a_storage_that_refuses_keeps_the_spool_and_the_beat_task_moves_it_later(
        settings: Any, spool: Path, caplog: pytest.LogCaptureFixture) -> None:
    _use(settings, f"{__name__}.RefusingStorage")
    _, name, path = _spooled_call()
    errors = ERRORS.labels(component="recording")._value.get()
    with caplog.at_level(logging.ERROR, logger="calls.recordings"):
        assert recording_publish(name=name) is False
    assert path.read_bytes() == AUDIO  # nothing lost
    assert ERRORS.labels(component="recording")._value.get() == errors + 1
    assert [r.getMessage() for r in caplog.records] == ["recording.publish_failed"]

    _use(settings, "django.core.files.storage.InMemoryStorage")  # the bucket is back
    # A file written to within the idle time may belong to a call still running.
    assert recordings_publish_spooled(now=time.time(), idle_s=60) == 0 and path.exists()
    assert recordings_publish_spooled(now=time.time() + 120, idle_s=60) == 1
    assert not path.exists()
    assert recording_storage().open(name).read() == AUDIO


def test_the_beat_task_waits_longer_than_a_call_can_last(settings: Any, spool: Path) -> None:
    settings.TOM_CALL_MAX_DURATION_S = 600
    _, _, path = _spooled_call()
    assert tasks.recordings_publish_spooled() == 0  # young: maybe a call in progress
    old = time.time() - 600 - 121
    os.utime(path, (old, old))
    assert tasks.recordings_publish_spooled() == 1 and not path.exists()
    from tomsite.celery import app

    entry = app.conf.beat_schedule["calls.recordings-publish-spooled"]
    assert entry["task"] == "calls.tasks.recordings_publish_spooled"
    assert entry["task"] in app.tasks


def test_expiry_deletes_a_spooled_copy_and_the_sweep_drops_what_no_call_names(
        spool: Path) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from calls.recordings import recordings_delete_expired

    call, _, path = _spooled_call("rec-old")
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(days=9))
    assert recordings_delete_expired(now=timezone.now(), days=7) == 1
    assert not path.exists()  # the storage never had it; the spool copy goes too
    _, _, young = _spooled_call("rec-young")
    Call.objects.filter(uuid="rec-young").delete()
    assert recordings_publish_spooled(now=time.time() + 120, idle_s=60) == 0
    assert not young.exists() and not recording_storage().listdir("")[1]
