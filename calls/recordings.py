"""Call recordings on the record: whether a call is recorded, where its file goes, and
their deletion once ``TOM_RECORDING_RETENTION_DAYS`` have passed.

The audio itself is written by voice.recording while the call runs; this module only
names files in ``recording_storage()`` (``TOM_RECORDING_DIR``) and keeps
``Call.recording`` in step with them. The storage is made afresh each time rather than
taken from the field, whose storage was fixed when the model was imported.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pydantic
from django.conf import settings

from calls.models import Call
from calls.storage import recording_storage
from calls.variants import parameters_clean

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
    """A free name for ``call``'s recording (``YYYY/MM/DD/<uuid>.wav``) and its local path.

    Raises ``NotImplementedError`` for a storage without local paths: a recording is
    appended to while the call runs, which needs a file.
    """
    storage = recording_storage()
    name = call.recording.field.generate_filename(call, f"{call.uuid}.wav")
    name = storage.get_available_name(name, max_length=255)
    return name, Path(storage.path(name))


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
        call.recording.name = ""
        call.save(update_fields=["recording"])
        deleted += 1
    if deleted:
        logger.info("recordings.expired", extra={"count": deleted, "days": days})
    return deleted
