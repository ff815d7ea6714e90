"""Reads of the call record.

Look-ups by phone number hash what was typed under every active key and query the
hashes; the raw number never reaches the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from calls import phone, processes
from calls.models import Call, CallerNumber

HASH_SEARCH_PREFIX = "hash:"


def phone_hash_query(*, raw: str, fields: tuple[str, ...]) -> Q | None:
    """A filter matching ``raw``'s hash (any active key) in any of ``fields``.

    ``fields`` name hash columns; each has a sibling ``<field>_key`` holding the key id,
    except ``digest`` whose sibling is ``key_id``. ``None`` when ``raw`` is no number.
    """
    candidates = phone.phone_hash_candidates(raw)
    if not candidates:
        return None
    query = Q()
    for field in fields:
        key_field = "key_id" if field == "digest" else f"{field}_key"
        for candidate in candidates:
            query |= Q(**{field: candidate.digest, key_field: candidate.key_id})
    return query


def hash_search_term(*, raw: str) -> str | None:
    """The admin search term that stands for ``raw``: its digests, never the number."""
    candidates = phone.phone_hash_candidates(raw)
    if not candidates:
        return None
    return HASH_SEARCH_PREFIX + ",".join(c.digest for c in candidates)


def hash_search_digests(term: str) -> list[str] | None:
    """The digests in a ``hash:`` search term; ``None`` if ``term`` is not one."""
    if not term.startswith(HASH_SEARCH_PREFIX):
        return None
    digests = [d.strip().lower() for d in term[len(HASH_SEARCH_PREFIX) :].split(",")]
    return [d for d in digests if len(d) == 64 and all(c in "0123456789abcdef" for c in d)]


def call_list_for_phone(*, raw: str) -> QuerySet[Call]:
    """Calls where ``raw`` was the caller or the callee."""
    query = phone_hash_query(raw=raw, fields=("caller_hash", "callee_hash"))
    return Call.objects.none() if query is None else Call.objects.filter(query)


def caller_number_get(*, raw: str) -> CallerNumber | None:
    """The caller row for ``raw`` under any active key."""
    query = phone_hash_query(raw=raw, fields=("digest",))
    return None if query is None else CallerNumber.objects.filter(query).first()


def call_list_with_turn_counts() -> QuerySet[Call]:
    """Calls with ``turn_count`` annotated and their caller joined, for lists."""
    return Call.objects.select_related("caller").annotate(turn_count=Count("turns"))


# How long past the longest call TOM allows (TOM_CALL_MAX_DURATION_S) an open call may
# still be in the record before it is stale: the hang-up after the limit, and its write.
STALE_GRACE_S = 120


def _stale_since(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.TOM_CALL_MAX_DURATION_S + STALE_GRACE_S)


def call_is_stale(*, call: Call, now: datetime,
                  running: dict[tuple[int, str], bool] | None = None) -> bool:
    """Whether ``call`` is open in the record although nothing carries it any more.

    Stale: open (new or active) and either older than the longest call TOM allows
    (plus a grace), or carried by a web process on this host that no longer runs
    (``calls.processes``; a reused PID is told apart by its start). A call of another
    host is judged by its age only: this process cannot see that host's processes.
    ``running`` caches liveness by (pid, start) across calls.
    """
    if call.status not in (Call.Status.NEW, Call.Status.ACTIVE):
        return False
    if call.started_at < _stale_since(now):
        return True
    if call.pid is None or call.host != processes.process_current().host:
        return False
    key = (call.pid, call.process_start)
    if running is None:
        running = {}
    if key not in running:
        running[key] = processes.process_is_running(pid=call.pid, start=call.process_start)
    return not running[key]


def calls_stale(*, now: datetime) -> list[Call]:
    """The stale open calls (see ``call_is_stale``), oldest first."""
    me = processes.process_current().host
    candidates = Call.objects.filter(status__in=[Call.Status.NEW, Call.Status.ACTIVE]).filter(
        Q(started_at__lt=_stale_since(now)) | Q(host=me, pid__isnull=False)
    ).order_by("started_at")
    running: dict[tuple[int, str], bool] = {}
    return [call for call in candidates if call_is_stale(call=call, now=now, running=running)]
