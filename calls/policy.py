"""Policy variants that learn: choosing a variant per call, rewarding each ended call,
and retiring variants the evidence says hurt callers.

Rewards are computed from what the call record holds (turns, tool calls, barge-ins,
how and when it ended, the caller's keyed-in rating), so they can be recomputed and a
supervisor can read each component on the ``CallReward``.
"""

from __future__ import annotations

import logging
import random
from difflib import SequenceMatcher
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from calls import bandit
from calls import metrics as rl_metrics
from calls.models import Call, CallReward, PolicyVariant

logger = logging.getLogger(__name__)

APOLOGIES = ("sorry, i need a moment", "entschuldigung, einen moment")
DEFAULT_WEIGHTS = {"answered_from_tool": 0.4, "early_hangup": -0.5, "barge_in": -0.1,
                   "apology_or_failure": -0.4, "repetition": -0.2, "over_budget": -0.2,
                   "rating": 0.5}
RECENT_CALLS = 200  # the window of tom_rl_exploration_ratio


def weights() -> dict[str, float]:
    return {**DEFAULT_WEIGHTS, **settings.TOM_RL_WEIGHTS}


def _similar(a: str, b: str) -> bool:
    return bool(a and b) and SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.8


def reward_components(*, call: Call) -> dict[str, float]:
    """Each signal's contribution to the call's reward (weights from ``TOM_RL_WEIGHTS``)."""
    w = weights()
    turns = list(call.turns.order_by("index"))
    seconds = call.duration.total_seconds() if call.duration else 0.0
    parts: dict[str, float] = {}
    if any(t.agent_text and any(c.get("ok") for c in t.tool_calls) for t in turns):
        parts["answered_from_tool"] = w["answered_from_tool"]
    if call.end_reason == Call.EndReason.CALLER_HANGUP and seconds < settings.TOM_RL_EARLY_HANGUP_S:
        parts["early_hangup"] = w["early_hangup"]
    barge_ins = sum(t.barge_in for t in turns)
    if barge_ins:
        parts["barge_in"] = max(w["barge_in"] * barge_ins, 3 * w["barge_in"])
    apologised = any(t.agent_text.lower().startswith(APOLOGIES) for t in turns)
    if apologised or call.status == Call.Status.FAILED:
        parts["apology_or_failure"] = w["apology_or_failure"]
    repeats = sum(_similar(a.caller_text, b.caller_text) for a, b in pairwise(turns))
    if repeats:
        parts["repetition"] = max(w["repetition"] * repeats, 2 * w["repetition"])
    if seconds > settings.TOM_RL_DURATION_BUDGET_S:
        parts["over_budget"] = w["over_budget"]
    rating = next((int(d) for d in reversed(call.dtmf) if d in "12345"), None)
    if rating is not None:  # 1..5 keyed in after the call's question: 3 is neutral
        parts["rating"] = round(w["rating"] * (rating - 3) / 2, 4)
    return parts


def call_reward_compute(*, call: Call) -> CallReward:
    """Compute (or recompute) the ended call's reward; idempotent, metrics counted once.

    Raises ``ValueError`` for a call whose ending says nothing about its variant (see
    ``Call.rewardable``): a crash, an attack or TOM's own test call.
    """
    if not call.rewardable:
        raise ValueError(f"call {call.pk} is not rewarded: "
                         f"{'synthetic' if call.synthetic else call.end_reason}")
    components = reward_components(call=call)
    reward = max(-1.0, min(1.0, sum(components.values())))
    with transaction.atomic():
        existing = CallReward.objects.select_for_update().filter(call=call).first()
        row, _ = CallReward.objects.update_or_create(call=call, defaults={
            "variant": call.variant, "reward": reward, "components": components,
            "computed_at": timezone.now()})
    if existing is None:
        label = call.variant.name if call.variant else "none"
        rl_metrics.RL_REWARD.labels(variant=label).observe(reward)
    logger.info("rl.call_rewarded", extra={"call_id": call.pk, "reward": round(reward, 3),
                                           "variant_id": call.variant_id})
    return row


def rewards_counted() -> QuerySet[CallReward]:
    """The rewards the policy learns from: rows written for calls that are not rewarded
    now (before this rule existed, a crash or an attack was charged) are left out."""
    return CallReward.objects.filter(call__synthetic=False).exclude(
        call__end_reason__in=Call.UNREWARDED_REASONS)


def arms(variants: list[PolicyVariant]) -> list[bandit.Arm]:
    rewards: dict[int, list[float]] = {v.pk: [] for v in variants}
    for variant_id, reward in rewards_counted().filter(
            variant__in=variants).values_list("variant_id", "reward"):
        rewards[variant_id].append(reward)
    return [bandit.posterior(rewards[v.pk], key=v.name) for v in variants]


def live_variants() -> list[PolicyVariant]:
    return list(PolicyVariant.objects.filter(Q(enabled=True, blacklisted=False)
                                             | Q(is_default=True)).order_by("name"))


def policy_variant_choose(*, rng: random.Random | None = None) -> PolicyVariant | None:
    """The variant for a new call (Thompson sampling with the exploration floor)."""
    variants = live_variants()
    if not variants:
        return None
    candidates = [v for v in variants if not v.is_default] or variants
    if len(candidates) == 1:
        return candidates[0]
    choice = bandit.choose(arms(candidates), rng=rng or random.Random(),  # noqa: S311
                           floor=settings.TOM_RL_MIN_EXPLORATION)
    chosen = next(v for v in candidates if v.name == choice.key)
    rl_metrics.RL_VARIANT_CALLS.labels(variant=chosen.name).inc()
    return chosen


def variants_blacklist_check() -> list[PolicyVariant]:
    """Blacklist the variants the evidence condemns; returns those it blacklisted now."""
    live = [v for v in live_variants() if not v.is_default]
    retired = []
    for variant, arm in zip(live, arms(live), strict=True):
        if bandit.should_blacklist(arm, min_calls=settings.TOM_RL_MIN_CALLS,
                                   below=settings.TOM_RL_BLACKLIST_BELOW):
            low, high = bandit.credible_interval(arm)
            policy_variant_blacklist(
                variant=variant, reason=f"automatic: mean reward {arm.mean_reward:+.2f} "
                f"(95 % interval {low:+.2f}..{high:+.2f}) over {arm.calls} calls")
            retired.append(variant)
    rl_metrics_update()
    return retired


def policy_variant_blacklist(*, variant: PolicyVariant, reason: str) -> PolicyVariant:
    if variant.is_default:
        raise ValueError("the default variant is never blacklisted")
    variant.blacklisted, variant.blacklisted_reason = True, reason[:300]
    variant.blacklisted_at = timezone.now()
    variant.save(update_fields=["blacklisted", "blacklisted_reason", "blacklisted_at"])
    logger.warning("rl.variant_blacklisted", extra={"variant_id": variant.pk,
                                                    "reason": reason[:200]})
    return variant


def policy_variant_reinstate(*, variant: PolicyVariant) -> PolicyVariant:
    variant.blacklisted, variant.blacklisted_reason, variant.blacklisted_at = False, "", None
    variant.save(update_fields=["blacklisted", "blacklisted_reason", "blacklisted_at"])
    return variant


@transaction.atomic
def policy_variant_make_default(*, variant: PolicyVariant) -> PolicyVariant:
    PolicyVariant.objects.filter(is_default=True).exclude(pk=variant.pk).update(
        is_default=False)
    variant.is_default, variant.enabled = True, True
    variant.blacklisted, variant.blacklisted_reason, variant.blacklisted_at = False, "", None
    variant.save()
    return variant


def rl_metrics_update() -> dict[str, Any]:
    """Set the gauges: blacklisted variants and the recent exploration ratio."""
    blacklisted = PolicyVariant.objects.filter(blacklisted=True).count()
    rl_metrics.RL_BLACKLISTED.set(blacklisted)
    live = [v for v in live_variants() if not v.is_default]
    rl_metrics.RL_LIVE_VARIANTS.set(len(live))
    recent = list(Call.objects.exclude(variant=None).order_by("-started_at")
                  .values_list("variant__name", flat=True)[:RECENT_CALLS])
    ratio = None
    if live and recent:
        best = max(arms(live), key=lambda a: (a.mean_reward, a.key)).key
        ratio = sum(name != best for name in recent) / len(recent)
        rl_metrics.RL_EXPLORATION.set(ratio)
    return {"blacklisted": blacklisted, "exploration_ratio": ratio, "recent_calls": len(recent)}


def call_policy_assign(*, call: Call, rng: random.Random | None = None
                       ) -> PolicyVariant | None:
    """Choose the call's variant and record it on the call."""
    variant = policy_variant_choose(rng=rng)
    if variant is not None:
        call.variant, call.policy_variant = variant, variant.name
        call.save(update_fields=["variant", "policy_variant"])
    return variant


class VariantUnavailable(ValueError):
    """The variant a test call asked for is not live (unknown, disabled or blacklisted)."""


def call_policy_force(*, call: Call, name: str) -> PolicyVariant:
    """Record the variant a supervisor chose for TOM's own test call, instead of the
    bandit's. Only synthetic calls: they are never rewarded, so a forced choice cannot
    teach the policy anything; a real caller always gets the bandit's choice.

    Raises:
        ValueError: for a call that is not synthetic.
        VariantUnavailable: when ``name`` is no live variant.
    """
    if not call.synthetic:
        raise ValueError("only TOM's own test calls choose their variant")
    variant = next((v for v in live_variants() if v.name == name), None)
    if variant is None:
        raise VariantUnavailable(f"variant {name!r} is not enabled")
    call.variant, call.policy_variant = variant, variant.name
    call.save(update_fields=["variant", "policy_variant"])
    logger.info("rl.variant_forced", extra={"call_id": call.pk, "variant_id": variant.pk})
    return variant
