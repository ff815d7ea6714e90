"""Where call recordings live.

Without a configured storage, files under ``TOM_RECORDING_DIR``, outside the general
media folder. With ``STORAGES["recordings"]`` (``TOM_RECORDING_STORAGE``, e.g. S3), the
finished recordings go there. Either way a call is recorded into a local file it can append
to and patch (voice.recording): the storage's own file when it has local paths, else a
spool file under ``TOM_RECORDING_DIR/spool`` that calls.recordings moves into the storage.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

SPOOL = "spool"
STORAGE_ALIAS = "recordings"


def recording_storage() -> Storage:
    if STORAGE_ALIAS in settings.STORAGES:
        return storages[STORAGE_ALIAS]  # cached per alias; reset when STORAGES changes
    # Made afresh, so migrations do not freeze one machine's path into the schema and a
    # changed TOM_RECORDING_DIR (tests) is followed.
    return FileSystemStorage(location=settings.TOM_RECORDING_DIR, directory_permissions_mode=0o750,
                             file_permissions_mode=0o640)


def storage_local_path(storage: Storage, name: str) -> Path | None:
    """``name``'s path in ``storage``, or None for a storage without local files.

    Only a FileSystemStorage's path is a file one can append to: remote storages raise
    NotImplementedError, and InMemoryStorage answers a path that is not on disk.
    """
    if not isinstance(storage, FileSystemStorage):
        return None
    return Path(storage.path(name))


def recording_spool_dir() -> Path:
    return Path(settings.TOM_RECORDING_DIR) / SPOOL
