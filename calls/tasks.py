"""Celery tasks for the call record. Each parses its input and calls one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings


@shared_task(name="calls.tasks.calls_reap_stale", ignore_result=True, acks_late=True,
             soft_time_limit=60, time_limit=90)
def calls_reap_stale() -> int:
    """End calls whose hang-up never arrived (idempotent: ended calls are left alone)."""
    from calls.services import calls_reap_stale as reap

    return reap(older_than=timedelta(minutes=settings.TOM_STALE_CALL_MINUTES))


@shared_task(name="calls.tasks.call_reward", acks_late=True, soft_time_limit=60,
             time_limit=90)
def call_reward(call_id: int) -> float | None:
    """Reward an ended call and re-check the variants (idempotent: recomputes the same).

    A call ended by a crash, an attack or a test call is not rewarded (``None``).
    """
    from calls.models import Call
    from calls.policy import call_reward_compute, variants_blacklist_check

    call = Call.objects.select_related("variant").filter(pk=call_id).first()
    if call is None or not call.is_ended or not call.rewardable:
        return None
    reward = call_reward_compute(call=call).reward
    variants_blacklist_check()
    return reward


@shared_task(name="calls.tasks.recordings_delete_expired", ignore_result=True, acks_late=True,
             soft_time_limit=300, time_limit=330)
def recordings_delete_expired() -> int:
    """Delete recordings older than ``TOM_RECORDING_RETENTION_DAYS`` (idempotent: a second
    run finds nothing left). Zero or less keeps them for ever."""
    from django.utils import timezone

    from calls.recordings import recordings_delete_expired as delete_expired

    days = settings.TOM_RECORDING_RETENTION_DAYS
    if days < 1:
        return 0
    return delete_expired(now=timezone.now(), days=days)


@shared_task(name="calls.tasks.recordings_publish_spooled", ignore_result=True, acks_late=True,
             soft_time_limit=300, time_limit=330)
def recordings_publish_spooled() -> int:
    """Move spooled recordings into the configured storage when no call can still be
    writing them (longer untouched than ``TOM_CALL_MAX_DURATION_S`` + 2 minutes): those of
    a web process that died mid-call, or that the storage refused when their call ended."""
    import time

    from calls.recordings import recordings_publish_spooled as publish_spooled

    return publish_spooled(now=time.time(), idle_s=settings.TOM_CALL_MAX_DURATION_S + 120)
