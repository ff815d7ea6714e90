"""Where call recordings live: ``TOM_RECORDING_DIR``, outside the general media folder."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage


def recording_storage() -> Storage:
    # A callable, so migrations do not freeze one machine's path into the schema.
    return FileSystemStorage(location=settings.TOM_RECORDING_DIR, directory_permissions_mode=0o750,
                             file_permissions_mode=0o640)
