"""Writes to the call record. Views, consumers, admin and tasks call these; nothing else writes.

Raw phone numbers come in as arguments, are hashed at once and go no further: they
are never stored, logged or put in a query.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser, AnonymousUser, Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls import phone, pii, processes, selectors
from calls.models import Call, CallerNumber, CallTurn

logger = logging.getLogger(__name__)

SUPERVISORS_GROUP = "Supervisors"
_LONG_DIGITS = 7  # an integer with this many digits may be a phone number


@dataclass(frozen=True, slots=True)
class TurnTimings:
    """Per-turn latencies in milliseconds; ``None`` where a stage did not run."""

    stt_ms: int | None = None
    llm_first_token_ms: int | None = None
    tts_first_audio_ms: int | None = None
    e2e_ms: int | None = None
    tools_ms: int | None = None


def call_metadata_clean(*, metadata: dict[str, Any]) -> dict[str, Any]:
    """Return ``metadata`` without anything that names or looks like a phone number.

    Drops keys that name a party (``caller``, ``from``, ``sip_from_user``…) and any
    value, at any depth, that is written like a phone number.
    """
    cleaned: dict[str, Any] = {}
    for key, value in metadata.items():
        if pii.party_key(str(key)):  # matched by the key's words (calls.pii), not a list
            continue
        kept = _clean_value(value)
        if kept is not _DROP:
            cleaned[str(key)] = kept
    return cleaned


_DROP = object()


def _clean_value(value: Any) -> Any:
    if isinstance(value, dict):
        return call_metadata_clean(metadata=value)
    if isinstance(value, list):
        return [v for v in (_clean_value(item) for item in value) if v is not _DROP]
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return _DROP if len(str(abs(value))) >= _LONG_DIGITS else value
    if isinstance(value, str):
        return _DROP if phone.contains_phone_number(value) else value
    return str(value)


def _redacted(value: Any) -> Any:
    """Tool calls keep their shape (keys such as ``part_number`` are not parties), but
    any phone number a caller spelled into an argument or a result is masked."""
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str):
        return phone.redact_phone_numbers(value)
    if isinstance(value, int) and not isinstance(value, bool) \
            and len(str(abs(value))) >= _LONG_DIGITS:
        return "[number]"
    return value


@transaction.atomic
def caller_number_touch(*, raw: str, seen_at: datetime | None = None) -> CallerNumber | None:
    """Record that ``raw`` called: find its row under any active key, or create it.

    A row found under a retired key is re-keyed to the newest one while the raw
    number is at hand, so callers migrate to a new key as they call back.
    Returns ``None`` for a withheld number.
    """
    candidates = phone.phone_hash_candidates(raw)
    if not candidates:
        return None
    seen_at = seen_at or timezone.now()
    newest = candidates[0]
    rows = {
        (row.key_id, row.digest): row
        for row in CallerNumber.objects.select_for_update().filter(
            digest__in=[c.digest for c in candidates]
        )
    }
    row = next((rows[(c.key_id, c.digest)] for c in candidates if (c.key_id, c.digest) in rows),
               None)
    if row is None:
        try:
            with transaction.atomic():
                row = CallerNumber.objects.create(
                    key_id=newest.key_id, digest=newest.digest, first_seen_at=seen_at,
                    last_seen_at=seen_at, call_count=1,
                )
        except IntegrityError:  # another call from the same number won the race
            row = CallerNumber.objects.select_for_update().get(
                key_id=newest.key_id, digest=newest.digest
            )
        else:
            return row
    fields = ["last_seen_at", "call_count"]
    if row.key_id != newest.key_id:
        row.key_id, row.digest = newest.key_id, newest.digest
        fields += ["key_id", "digest"]
        logger.info("caller_number.rekeyed", extra={"caller_number_id": row.pk})
    row.last_seen_at = max(row.last_seen_at, seen_at)
    row.call_count += 1
    row.save(update_fields=fields)
    return row


@transaction.atomic
def call_start(
    *,
    uuid: str,
    caller: str = "",
    callee: str = "",
    direction: str = Call.Direction.INBOUND,
    language: str = "",
    metadata: dict[str, Any] | None = None,
    synthetic: bool = False,
    started_at: datetime | None = None,
) -> Call:
    """Create the call for a new fork connection; a reconnect with the same uuid returns it.

    ``caller`` and ``callee`` are raw numbers: they are hashed here and dropped. The
    call records this process (host, PID, start) as the one carrying it.
    """
    me = processes.process_current()
    existing = Call.objects.filter(uuid=uuid).first()
    if existing is not None:
        logger.info("call.reconnected", extra={"call_id": existing.pk})
        if not existing.is_ended:  # this process carries it now
            existing.host, existing.pid, existing.process_start = me.host, me.pid, me.start
            existing.save(update_fields=["host", "pid", "process_start"])
        return existing
    started_at = started_at or timezone.now()
    caller_row = caller_number_touch(raw=caller, seen_at=started_at) if caller else None
    callee_hash = phone.phone_hash(callee) if callee else None
    call = Call.objects.create(
        uuid=uuid,
        direction=direction,
        started_at=started_at,
        caller=caller_row,
        caller_hash=caller_row.digest if caller_row else "",
        caller_hash_key=caller_row.key_id if caller_row else "",
        callee_hash=callee_hash.digest if callee_hash else "",
        callee_hash_key=callee_hash.key_id if callee_hash else "",
        language=language,
        metadata=call_metadata_clean(metadata=metadata or {}),
        synthetic=synthetic,
        host=me.host,
        pid=me.pid,
        process_start=me.start,
    )
    logger.info(
        "call.started",
        extra={"call_id": call.pk, "direction": direction, "synthetic": synthetic,
               "caller_known": bool(caller_row and caller_row.call_count > 1)},
    )
    return call


def call_answer(*, call: Call, answered_at: datetime | None = None) -> Call:
    """Mark the call active: the agent is listening."""
    if call.is_ended or call.status == Call.Status.ACTIVE:
        return call
    call.status = Call.Status.ACTIVE
    call.answered_at = answered_at or timezone.now()
    call.save(update_fields=["status", "answered_at"])
    logger.info("call.answered", extra={"call_id": call.pk})
    return call


def call_end(
    *,
    call: Call,
    reason: str,
    failed: bool = False,
    detail: str = "",
    ended_at: datetime | None = None,
) -> Call:
    """End the call once; later calls (a second hang-up, the reaper) change nothing."""
    if call.is_ended:
        return call
    call.ended_at = max(ended_at or timezone.now(), call.started_at)
    call.duration = call.ended_at - call.started_at
    call.status = Call.Status.FAILED if failed else Call.Status.COMPLETED
    call.end_reason = Call.EndReason(reason)
    call.status_detail = detail[:255]
    call.save(update_fields=["ended_at", "duration", "status", "end_reason", "status_detail"])
    if call.variant_id is not None and call.rewardable:  # the policy learns from its calls
        from calls.tasks import call_reward

        call_id = call.pk
        transaction.on_commit(lambda: call_reward.delay(call_id))
    logger.info(
        "call.ended",
        extra={"call_id": call.pk, "status": call.status, "reason": call.end_reason,
               "duration_s": round(call.duration.total_seconds(), 3)},
    )
    return call


def call_turn_record(
    *,
    call: Call,
    caller_text: str,
    agent_text: str,
    timings: TurnTimings | None = None,
    barge_in: bool = False,
    agent_audio_ms: int | None = None,
    agent_audio_heard_ms: int | None = None,
    started_at: datetime | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    caller_text_raw: str = "",
    waterfall: dict[str, int] | None = None,
) -> CallTurn:
    """Append the next turn to ``call``; phone numbers in the caller's words (unless
    ``TOM_REDACT_CALLER_NUMBERS`` is off) and in ``tool_calls`` are masked first."""
    timings = timings or TurnTimings()
    if settings.TOM_REDACT_CALLER_NUMBERS:
        digits = settings.TOM_REDACT_MIN_DIGITS
        caller_text = pii.numbers_redact(text=caller_text, min_digits=digits)
        caller_text_raw = pii.numbers_redact(text=caller_text_raw, min_digits=digits)
    with transaction.atomic():
        # Lock the call so two turns recorded at once cannot take the same index.
        Call.objects.select_for_update().filter(pk=call.pk).first()
        index = call.turns.count()
        turn = CallTurn.objects.create(
            call=call,
            index=index,
            started_at=started_at or timezone.now(),
            caller_text=caller_text,
            caller_text_raw=caller_text_raw,
            agent_text=agent_text,
            stt_ms=timings.stt_ms,
            llm_first_token_ms=timings.llm_first_token_ms,
            tts_first_audio_ms=timings.tts_first_audio_ms,
            e2e_ms=timings.e2e_ms,
            tools_ms=timings.tools_ms,
            barge_in=barge_in,
            agent_audio_ms=agent_audio_ms,
            agent_audio_heard_ms=agent_audio_heard_ms,
            tool_calls=_redacted(tool_calls or []),
            waterfall=waterfall or {},
        )
    logger.info("call.turn", extra={"call_id": call.pk, "turn": index, "e2e_ms": timings.e2e_ms})
    return turn


def calls_reap_stale(*, older_than: timedelta, now: datetime | None = None) -> int:
    """End calls still new/active long after they started: their hang-up was lost."""
    now = now or timezone.now()
    stale = Call.objects.filter(
        status__in=[Call.Status.NEW, Call.Status.ACTIVE], started_at__lt=now - older_than
    )
    reaped = 0
    for call in stale.iterator():
        call_end(call=call, reason=Call.EndReason.STALE, failed=True,
                 detail="no hang-up received; ended by the reaper", ended_at=now)
        reaped += 1
    if reaped:
        logger.warning("calls.reaped", extra={"count": reaped})
    return reaped


def calls_end_orphaned(*, host: str, now: datetime | None = None) -> int:
    """End the open calls of ``host`` whose web process no longer runs.

    Called when a web process starts: the calls a crashed process carried are ended
    at once, not hours later by the reaper, and are not charged to their variants.
    """
    now = now or timezone.now()
    open_calls = Call.objects.filter(status__in=[Call.Status.NEW, Call.Status.ACTIVE],
                                     host=host, pid__isnull=False)
    running: dict[tuple[int, str], bool] = {}
    ended = 0
    for call in open_calls.iterator():
        key = (call.pid or 0, call.process_start)
        if key not in running:
            running[key] = processes.process_is_running(pid=key[0], start=key[1])
        if running[key]:
            continue
        call_end(call=call, reason=Call.EndReason.PROCESS_DIED, failed=True, ended_at=now,
                 detail=f"web process {call.pid} on {host} died; ended when the next started")
        ended += 1
    if ended:
        logger.warning("calls.orphans_ended", extra={"count": ended, "host": host})
    return ended


class CallCloseRefused(ValueError):
    """A supervisor's close of a stale call was refused; the message says why."""


STALE_REASON_MAX = 200


def stale_reason_clean(*, reason: str) -> str:
    """A supervisor's reason for closing a stale call, trimmed; refused if empty or long."""
    reason = " ".join(reason.split())
    if not reason:
        raise CallCloseRefused("Say why the call is closed: a reason is required.")
    if len(reason) > STALE_REASON_MAX:
        raise CallCloseRefused(f"The reason is too long ({len(reason)} characters; "
                               f"at most {STALE_REASON_MAX}).")
    return reason


@transaction.atomic
def call_close_stale(*, call: Call, reason: str, by: AbstractBaseUser | AnonymousUser) -> Call:
    """End a stale call (``calls.selectors.call_is_stale``) for a supervisor, with why.

    The call ends as failed with ``EndReason.STALE`` and the detail "closed by <user>:
    <reason>". A call that is not stale (ended, or still carried by a live process) is
    never closed here: a live call is hung up from the console, which tells its process.
    """
    reason = stale_reason_clean(reason=reason)
    # Lock and re-read: the call may have ended, or its process answered, since the page.
    locked = Call.objects.select_for_update().get(pk=call.pk)
    now = timezone.now()
    if locked.is_ended:
        raise CallCloseRefused("This call has already ended.")
    if not selectors.call_is_stale(call=locked, now=now):
        raise CallCloseRefused("This call is not stale: a web process still carries it. "
                               "Hang it up from the live console instead.")
    # The reason is free text: a number a supervisor typed into it is masked like any.
    detail = f"closed by {by.get_username()}: {phone.redact_phone_numbers(reason)}"
    call_end(call=locked, reason=Call.EndReason.STALE, failed=True, detail=detail, ended_at=now)
    logger.warning("call.stale_closed", extra={"call_id": locked.pk, "by_user_id": by.pk})
    return locked


def caller_number_block(*, caller_number: CallerNumber, blocked: bool, reason: str = "") -> None:
    """Block or unblock a caller."""
    caller_number.blocked = blocked
    caller_number.blocked_reason = reason[:200] if blocked else ""
    caller_number.save(update_fields=["blocked", "blocked_reason"])
    logger.info("caller_number.blocked" if blocked else "caller_number.unblocked",
                extra={"caller_number_id": caller_number.pk})


def supervisor_ensure(*, username: str, password: str | None = None) -> tuple[AbstractUser, str]:
    """Create or reset a staff user in the Supervisors group; return it and its password."""
    password = password or secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_active = True
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
    return user, password


DTMF_KEEP = 4  # a rating needs one digit; a keyed-in phone number must not be kept


def call_dtmf_record(*, call: Call, digits: str) -> Call:
    """Append keyed-in digits (FreeSWITCH ``send_text``), keeping only the last few."""
    cleaned = "".join(d for d in digits if d in "0123456789*#")
    if not cleaned:
        raise ValueError("no DTMF digits")
    Call.objects.filter(pk=call.pk).update(dtmf=(call.dtmf + cleaned)[-DTMF_KEEP:])
    call.refresh_from_db(fields=["dtmf"])
    return call
