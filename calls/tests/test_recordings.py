"""Call recordings on the record: who may listen (calls.console.recordings), byte ranges
for the browser's player, the per-variant switch, and deletion after the retention."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calls import tasks
from calls.console.recordings import byte_range
from calls.models import Call, PolicyVariant
from calls.recordings import recording_wanted, recordings_delete_expired

pytestmark = pytest.mark.django_db

MIGRATION = "calls.migrations.0011_call_listen_recording"
AUDIO = bytes(range(256)) * 40  # 10 240 bytes, each offset recognisable


@pytest.fixture
def recordings(settings: Any, tmp_path: Path) -> Path:
    settings.TOM_RECORDING_DIR = tmp_path
    return tmp_path


def _recorded_call(folder: Path, uuid: str = "rec-1", *, days_old: float = 0) -> Call:
    name = f"2026/01/02/{uuid}.wav"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(AUDIO)
    return Call.objects.create(uuid=uuid, recording=name,
                               started_at=timezone.now() - timedelta(days=days_old))


def _staff(*perms: str, name: str = "sue") -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="calls",
                                                         codename=perm))
    return user


def _body(response: Any) -> bytes:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)()


def _url(call: Call) -> str:
    return reverse("console:recording", args=[call.uuid])


def test_anonymous_users_are_sent_to_the_login_page(client: Client, recordings: Path) -> None:
    response = client.get(_url(_recorded_call(recordings)))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_viewing_calls_is_not_enough_to_listen(client: Client, recordings: Path) -> None:
    client.force_login(_staff("view_call", "change_call"))
    assert client.get(_url(_recorded_call(recordings))).status_code == 403


def test_a_supervisor_with_the_permission_gets_the_whole_file(client: Client,
                                                              recordings: Path) -> None:
    client.force_login(_staff("listen_recording"))
    response = client.get(_url(_recorded_call(recordings)))
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(AUDIO))
    assert "private" in response["Cache-Control"]
    assert _body(response) == AUDIO


def test_the_supervisors_group_may_listen(client: Client, recordings: Path) -> None:
    # What migration 0011 does (a transactional test elsewhere may have flushed it), with
    # the models as they stand at 0011: as the migration runs, and leaving the app
    # registry alone (its grant() marks the app it is given as having no models after).
    state = MigrationLoader(connection).project_state(("calls", MIGRATION.rsplit(".")[-1]))
    importlib.import_module(MIGRATION).grant(state.apps, None)
    group = Group.objects.get(name="Supervisors")
    assert group.permissions.filter(codename="listen_recording").exists()
    user = User.objects.create_user("sam", password="pw", is_staff=True)
    user.groups.add(group)
    client.force_login(user)
    assert client.get(_url(_recorded_call(recordings))).status_code == 200


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-", 0, len(AUDIO) - 1),  # what Chromium asks first
    ("bytes=100-199", 100, 199),
    ("bytes=10000-99999", 10000, len(AUDIO) - 1),  # clamped to the file
    ("bytes=-240", len(AUDIO) - 240, len(AUDIO) - 1),
])
def test_a_range_gets_206_with_those_bytes(client: Client, recordings: Path, header: str,
                                           first: int, last: int) -> None:
    client.force_login(_staff("listen_recording"))
    response = client.get(_url(_recorded_call(recordings)), headers={"Range": header})
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(AUDIO)}"
    assert response["Content-Length"] == str(last - first + 1)
    body = _body(response)
    assert body == AUDIO[first:last + 1]


def test_a_range_past_the_end_is_416(client: Client, recordings: Path) -> None:
    client.force_login(_staff("listen_recording"))
    response = client.get(_url(_recorded_call(recordings)),
                          headers={"Range": f"bytes={len(AUDIO)}-"})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(AUDIO)}"


def test_malformed_or_multiple_ranges_get_the_whole_file() -> None:
    for header in ("", "bytes=", "bytes=a-b", "items=0-5", "bytes=0-5,10-20"):
        assert byte_range(header, size=100) is None
    with pytest.raises(ValueError, match="outside"):
        byte_range("bytes=50-20", size=100)


def test_no_recording_is_404(client: Client, recordings: Path) -> None:
    client.force_login(_staff("listen_recording"))
    bare = Call.objects.create(uuid="bare-1")
    assert client.get(_url(bare)).status_code == 404
    gone = _recorded_call(recordings, "gone-1")
    (recordings / gone.recording.name).unlink()
    assert client.get(_url(gone)).status_code == 404
    assert client.get(reverse("console:recording", args=["nope"])).status_code == 404


def test_the_variant_overrides_the_setting(settings: Any) -> None:
    settings.TOM_RECORD_CALLS = False
    assert recording_wanted(call=Call.objects.create(uuid="a")) is False
    loud = PolicyVariant.objects.create(name="loud", parameters={"record_calls": True})
    assert recording_wanted(call=Call.objects.create(uuid="b", variant=loud)) is True
    settings.TOM_RECORD_CALLS = True
    quiet = PolicyVariant.objects.create(name="quiet", parameters={"record_calls": False})
    assert recording_wanted(call=Call.objects.create(uuid="c", variant=quiet)) is False
    either = PolicyVariant.objects.create(name="either", parameters={})
    assert recording_wanted(call=Call.objects.create(uuid="d", variant=either)) is True


def test_expired_recordings_are_deleted_and_young_ones_kept(recordings: Path) -> None:
    old = _recorded_call(recordings, "old-1", days_old=31)
    young = _recorded_call(recordings, "young-1", days_old=29)
    old_file, young_file = recordings / old.recording.name, recordings / young.recording.name
    assert recordings_delete_expired(now=timezone.now(), days=30) == 1
    old.refresh_from_db()
    young.refresh_from_db()
    assert not old_file.exists() and old.recording.name == ""
    assert young_file.exists() and young.recording.name.endswith("young-1.wav")
    # Again: nothing left to delete, and a file already gone is no error.
    young_file.unlink()
    assert recordings_delete_expired(now=timezone.now() + timedelta(days=2), days=30) == 1
    assert recordings_delete_expired(now=timezone.now() + timedelta(days=2), days=30) == 0
    with pytest.raises(ValueError, match="at least one day"):
        recordings_delete_expired(now=timezone.now(), days=0)


def test_the_beat_task_uses_the_retention_setting(settings: Any, recordings: Path) -> None:
    from tomsite.celery import app

    old = _recorded_call(recordings, "old-2", days_old=8)
    settings.TOM_RECORDING_RETENTION_DAYS = 0  # keep for ever
    assert tasks.recordings_delete_expired() == 0
    settings.TOM_RECORDING_RETENTION_DAYS = 7
    assert tasks.recordings_delete_expired() == 1
    assert not (recordings / old.recording.name).exists()
    entry = app.conf.beat_schedule["calls.recordings-expire"]
    assert entry["task"] == "calls.tasks.recordings_delete_expired"


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_file_is_streamed_in_blocks(async_client: Any,
                                                         recordings: Path) -> None:
    from asgiref.sync import sync_to_async

    from calls.console import recordings as view

    big = bytes(range(256)) * (3 * view.BLOCK // 256 + 10)
    call = await sync_to_async(_recorded_call)(recordings)
    (recordings / call.recording.name).write_bytes(big)
    await async_client.aforce_login(await sync_to_async(_staff)("listen_recording"))
    response = await async_client.get(_url(call), headers={"Range": "bytes=1000-"})
    assert response.status_code == 206 and response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == big[1000:]
    assert max(map(len, chunks)) == view.BLOCK  # in blocks, never the whole file at once
