"""Call recordings on the record: whether a call is recorded, where its file goes, and
their deletion once ``TOM_RECORDING_RETENTION_DAYS`` have passed.

The audio itself is written by voice.recording while the call runs; this module only
names files in ``recording_storage()`` (``TOM_RECORDING_DIR``, or the configured
``STORAGES["recordings"]``), moves spooled ones there and keeps ``Call.recording`` in
step with them. The storage is made afresh each time rather than
taken from the field, whose storage was fixed when the model was imported.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pydantic
from django.conf import settings
from django.core.files import File

from calls.models import Call
from calls.storage import recording_spool_dir, recording_storage, storage_local_path
from calls.variants import parameters_clean
from tomsite.metrics import error_count

logger = logging.getLogger(__name__)


def recording_wanted(*, call: Call) -> bool:
    """Whether ``call`` is recorded: its policy variant's ``record_calls`` when the variant
    sets it, else ``TOM_RECORD_CALLS``. Reads the variant (a query if not loaded)."""
    if call.variant_id is not None and call.variant is not None:
        try:
            override = parameters_clean(call.variant.parameters).record_calls
        except pydantic.ValidationError:
            override = None  # the session refused such a variant already; the setting rules
        if override is not None:
            return override
    return bool(settings.TOM_RECORD_CALLS)


def call_recording_target(*, call: Call) -> tuple[str, Path]:
    """A free name for ``call``'s recording (``YYYY/MM/DD/<uuid>.wav``) and the local file
    to record it into: the storage's own, or a spool file when the storage has no local
    paths (``recording_publish`` moves it there when the call ends)."""
    storage = recording_storage()
    name = call.recording.field.generate_filename(call, f"{call.uuid}.wav")
    name = storage.get_available_name(name, max_length=255)
    return name, storage_local_path(storage, name) or recording_spool_dir() / name


def recording_publish(*, name: str) -> bool:
    """Move the spooled recording ``name`` into the recordings storage (a no-op for a
    storage with local paths, which was written in place). False when the storage refused
    it: the spool file is kept for ``recordings_publish_spooled`` to try again."""
    storage = recording_storage()
    spooled = recording_spool_dir() / name
    if storage_local_path(storage, name) is not None or not spooled.exists():
        return True
    try:
        with spooled.open("rb") as file:
            saved = storage.save(name, File(file, name=name), max_length=255)
    except Exception as exc:
        # Any storage backend's error (a network, a bucket policy): the file stays local.
        error_count(component="recording")
        logger.error("recording.publish_failed", extra={"error": type(exc).__name__})
        return False
    if saved != name:  # the storage chose another name: the call must follow it
        Call.objects.filter(recording=name).update(recording=saved)
    spooled.unlink(missing_ok=True)
    logger.info("recording.published", extra={"bytes": storage.size(saved)})
    return True


def recordings_publish_spooled(*, now: float, idle_s: float) -> int:
    """Move spool files nobody has written for ``idle_s`` (a process that died mid-call,
    a storage that was down) into the storage; returns how many went."""
    spool = recording_spool_dir()
    published = 0
    for path in sorted(spool.rglob("*.wav")) if spool.is_dir() else []:
        if now - path.stat().st_mtime < idle_s:
            continue
        name = path.relative_to(spool).as_posix()
        if not Call.objects.filter(recording=name).exists():
            # Its call was deleted or its retention ran out meanwhile: not to be kept.
            path.unlink(missing_ok=True)
            logger.info("recording.spool_dropped")
        elif recording_publish(name=name):
            published += 1
    return published


def call_recording_set(*, call: Call, name: str) -> Call:
    """Name ``call``'s recording once its file exists."""
    call.recording.name = name
    call.save(update_fields=["recording"])
    return call


def recordings_delete_expired(*, now: datetime, days: int) -> int:
    """Delete the recordings of calls that started more than ``days`` days before ``now``
    (the files and ``Call.recording``); returns how many. Idempotent: a file already gone
    is not an error, and a call without a recording is left alone."""
    if days < 1:
        raise ValueError(f"retention must be at least one day, not {days}")
    storage = recording_storage()
    expired = Call.objects.filter(started_at__lt=now - timedelta(days=days)).exclude(
        recording="").only("pk", "recording")
    deleted = 0
    for call in expired.iterator():
        if name := call.recording.name:
            storage.delete(name)  # FileSystemStorage: a file already gone is fine
            (recording_spool_dir() / name).unlink(missing_ok=True)  # never moved there
        call.recording.name = ""
        call.save(update_fields=["recording"])
        deleted += 1
    if deleted:
        logger.info("recordings.expired", extra={"count": deleted, "days": days})
    return deleted
