"""Reads of the call record.

Look-ups by phone number hash what was typed under every active key and query the
hashes; the raw number never reaches the database.
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from calls import phone
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
