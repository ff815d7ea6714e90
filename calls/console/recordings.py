"""A call's recording, for supervisors allowed to listen (``calls.listen_recording``).

Served with HTTP Range support: Chromium's ``<audio>`` asks for ``bytes=0-`` first and
seeks with further ranges, and Django's ``FileResponse`` always sends the whole file
(and under ASGI reads all of it into memory first).
Only one range per request is served; a request for several gets the whole file (200),
which RFC 9110 allows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from calls.models import Call
from calls.storage import recording_storage

BLOCK = 64 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str, *, size: int) -> tuple[int, int] | None:
    """The first and last byte a ``Range`` header asks for, clamped to ``size``; None
    when the header is absent, malformed or asks for several ranges (the whole file is
    sent). Raises ``ValueError`` when the range lies outside the file (416)."""
    match = RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise ValueError("range outside the file")
    return start, end


async def _chunks(name: str, *, start: int, length: int) -> AsyncIterator[bytes]:
    # Async, so daphne streams it: Django reads a sync iterator into memory whole under
    # ASGI, and a long call's recording is tens of MB. Opened here, so a response that is
    # never sent leaves no file open.
    file = await asyncio.to_thread(recording_storage().open, name, "rb")
    try:
        await asyncio.to_thread(file.seek, start)
        while length > 0:
            data = await asyncio.to_thread(file.read, min(BLOCK, length))
            if not data:
                return
            length -= len(data)
            yield data
    finally:
        file.close()


def _size(name: str) -> int | None:
    storage = recording_storage()
    return storage.size(name) if storage.exists(name) else None


@staff_member_required
@permission_required("calls.listen_recording", raise_exception=True)
@require_GET
async def recording_audio(request: HttpRequest, uuid: str) -> HttpResponseBase:
    """The call's recording as ``audio/wav`` (404 without one)."""
    call = await Call.objects.only("pk", "uuid", "recording").filter(uuid=uuid).afirst()
    name = call.recording.name if call is not None else None
    size = await asyncio.to_thread(_size, name) if name else None
    if call is None or not name or size is None:
        raise Http404("this call has no recording")
    try:
        wanted = byte_range(request.headers.get("Range", ""), size=size)
    except ValueError:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    start, end = wanted or (0, size - 1)
    response = StreamingHttpResponse(_chunks(name, start=start, length=end - start + 1),
                                     status=200 if wanted is None else 206,
                                     content_type="audio/wav")
    if wanted is not None:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    if disposition := content_disposition_header(False, f"{call.uuid}.wav"):
        response["Content-Disposition"] = disposition
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"  # a caller's voice: never in a shared cache
    return response
