"""A fork call's life, for the consumer to call: started from its metadata, given its
policy variant and session, its DTMF kept, and ended once with a reason and its metrics.

The consumer parses frames and replies; what a call is and how it is recorded lives here
(HackSoft's thin-consumer rule; Zulip's ``do_*`` actions). Async because every caller is
the consumer's event loop; the ORM work runs through ``database_sync_to_async``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from channels.db import database_sync_to_async
from django.conf import settings

from calls import policy, variants
from calls import services as call_services
from calls.models import Call
from voice import metrics
from voice.call_output import CallOutput
from voice.protocols.adapters import ForkProtocol
from voice.protocols.metadata import CallStart
from voice.ratelimit import DtmfLimit
from voice.session.base import RealtimeSession

logger = logging.getLogger(__name__)

SessionFactory = Callable[..., RealtimeSession]


async def call_lifecycle_start(*, start: CallStart, protocol: ForkProtocol) -> Call:
    """The Call row for the fork's metadata (an existing row for a known uuid), with the
    connection's protocol recorded as its ``flavour`` (route) and ``mode``."""
    call = await database_sync_to_async(call_services.call_start)(
        uuid=start.uuid, caller=start.caller, callee=start.callee, direction=start.direction,
        language=start.language or settings.TOM_LANGUAGE,
        # Set by TOM's own test calls (greenlights, the nightly synthetic call): the
        # fork is authenticated, so its metadata is the dialplan's or ours.
        synthetic=start.extra.get("tomSynthetic") is True,
        metadata={**start.extra, "mixType": start.mix_type, "sampleRate": start.sample_rate,
                  "encoding": start.encoding, "mode": protocol.mode, "flavour": protocol.flavour},
    )
    metrics.CALLS.inc()
    return call


async def call_lifecycle_session(*, call: Call, start: CallStart,
                                 create: SessionFactory) -> RealtimeSession:
    """The call's session with its policy variant's parameters, its models loaded.

    Raises what ``create`` and ``prepare`` raise (a backend unavailable, a model error).
    """
    params = await call_lifecycle_variant(call=call)
    session = create(call=start, call_id=call.pk, params=params)
    await session.prepare()
    return session


async def call_lifecycle_variant(*, call: Call) -> variants.VariantParameters | None:
    """The call's policy variant (chosen and recorded on the row with ``TOM_FEATURE_RL``),
    as parameters; None: the settings' defaults. A busy call gets one too: its variant may
    set what the caller hears (``busy_message``), and the call is never rewarded.

    TOM's own test call may name its variant (metadata ``tomVariant``: the console's
    test call, voice.browser_call), whether or not the bandit runs; raises
    ``VariantUnavailable`` when that one is not live. A real call's is never forced."""
    forced = call.metadata.get("tomVariant") if call.synthetic else None
    if isinstance(forced, str) and forced:
        variant = await database_sync_to_async(policy.call_policy_force)(call=call, name=forced)
        return variants.parameters_clean(variant.parameters)
    if not settings.TOM_FEATURE_RL:
        return None
    variant = await database_sync_to_async(policy.call_policy_assign)(call=call)
    return variants.parameters_clean(variant.parameters) if variant else None


async def call_lifecycle_answer(*, call: Call) -> None:
    await database_sync_to_async(call_services.call_answer)(call=call)


async def call_lifecycle_dtmf(*, call: Call, digits: str, limit: DtmfLimit,
                              now: float) -> Call:
    """Keep keyed-in digits (a rating, for the policy's reward); nothing valid is ignored.

    FreeSWITCH relays them with ``uuid_audio_fork <uuid> send_text
    {"type":"dtmf","data":{"digit":"5"}}``; beyond ``limit`` they are ignored, with a log.
    """
    if (refusal := limit.refusal(now)) is not None:
        metrics.DTMF_IGNORED.labels(reason=refusal).inc()  # a flood costs no writes
        logger.info("fork.dtmf_ignored", extra={"call_id": call.pk, "reason": refusal})
        return call
    try:
        return await database_sync_to_async(call_services.call_dtmf_record)(
            call=call, digits=digits[:32])
    except ValueError:
        logger.info("fork.dtmf_ignored", extra={"call_id": call.pk})
        return call


async def call_lifecycle_stop(*, session: RealtimeSession | None,
                              output: CallOutput | None) -> None:
    """Stop the session and record the replies still open, with what was heard of them."""
    if session is None:
        return
    await session.aclose()
    if output is not None:
        await output.close()


async def call_lifecycle_end(*, call: Call | None, reason: str, failed: bool, detail: str,
                             counted: bool) -> None:
    """End the call once: count it in the metrics (``counted``: it held a slot, now
    released) and close its row with the reason."""
    if counted:
        metrics.CALLS_ENDED.labels(reason=reason).inc()
        if failed:
            metrics.CALLS_FAILED.labels(reason=reason).inc()
    if call is not None and not call.is_ended:
        ended = await database_sync_to_async(call_services.call_end)(
            call=call, reason=reason, failed=failed, detail=detail)
        if ended.duration is not None:
            metrics.CALL_DURATION.observe(ended.duration.total_seconds())
    logger.info("fork.closed", extra={"call_id": getattr(call, "pk", None),
                                      "reason": reason, "failed": failed})
