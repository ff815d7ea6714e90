"""Policy variants: seeded selection, the exploration floor, rewards from a call's
signals (a DTMF rating included), and blacklisting that needs evidence."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from calls import bandit, policy, services
from calls.models import Call, CallReward, PolicyVariant
from calls.tests.factories import call_create

pytestmark = pytest.mark.django_db


def _variants(*names: str, default: str = "") -> list[PolicyVariant]:
    return [PolicyVariant.objects.create(name=n, is_default=n == default) for n in names]


def test_selection_is_deterministic_with_a_seed() -> None:
    _variants("calm", "brisk", "formal")
    first = [policy.policy_variant_choose(rng=random.Random(42)).name for _ in range(1)]  # type: ignore[union-attr]
    rng_a, rng_b = random.Random(7), random.Random(7)
    a = [policy.policy_variant_choose(rng=rng_a).name for _ in range(50)]  # type: ignore[union-attr]
    b = [policy.policy_variant_choose(rng=rng_b).name for _ in range(50)]  # type: ignore[union-attr]
    assert a == b and len(set(a)) == 3 and first


def test_the_exploration_floor_holds_over_10000_selections() -> None:
    arms = [bandit.posterior([0.9] * 300, key="best"), bandit.posterior([-0.5] * 300, key="b"),
            bandit.posterior([-0.6] * 300, key="c")]
    rng = random.Random(1)
    picks = Counter(bandit.choose(arms, rng=rng, floor=0.05).key for _ in range(10_000))
    others = picks["b"] + picks["c"]
    # Thompson alone would almost never pick them; the floor gives them ~5 % together.
    assert 0.04 <= others / 10_000 <= 0.07, picks
    assert picks["b"] >= 150 and picks["c"] >= 150


def test_the_default_takes_calls_only_when_no_other_variant_may() -> None:
    calm, brisk, base = _variants("calm", "brisk", "base", default="base")
    chosen = {policy.policy_variant_choose(rng=random.Random(s)).name for s in range(40)}  # type: ignore[union-attr]
    assert chosen == {"calm", "brisk"}
    for variant in (calm, brisk):
        policy.policy_variant_blacklist(variant=variant, reason="test")
    assert policy.policy_variant_choose(rng=random.Random(0)) == base
    with pytest.raises(ValueError, match="never blacklisted"):
        policy.policy_variant_blacklist(variant=base, reason="test")


def _ended_call(variant: PolicyVariant, *, seconds: float, reason: str = "caller_hangup",
                turns: list[tuple[str, str, bool, bool]] = ()) -> Call:
    call = call_create(caller="")
    call.variant = variant
    call.save(update_fields=["variant"])
    for caller_text, agent_text, tool_ok, barge_in in turns:
        services.call_turn_record(call=call, caller_text=caller_text, agent_text=agent_text,
                                  barge_in=barge_in, tool_calls=[
                                      {"tool": "parts_lookup", "ok": tool_ok}])
    return services.call_end(call=call, reason=reason,
                             ended_at=call.started_at + timedelta(seconds=seconds))


def test_reward_components_come_from_the_recorded_call() -> None:
    (variant,) = _variants("calm")
    call = _ended_call(variant, seconds=40, turns=[
        ("brake pads for a golf 7", "Part number TP-10098, 46.38 EUR.", True, True),
        ("brake pads for a golf seven", "Yes, TP-10098.", True, False)])
    reward = policy.call_reward_compute(call=call)
    assert reward.components == {"answered_from_tool": 0.4, "barge_in": -0.1,
                                 "repetition": -0.2}
    assert reward.reward == pytest.approx(0.1) and reward.variant == variant
    again = policy.call_reward_compute(call=call)  # idempotent
    assert again.pk == reward.pk and CallReward.objects.count() == 1


def test_an_early_hangup_and_an_apology_cost_reward() -> None:
    (variant,) = _variants("calm")
    call = _ended_call(variant, seconds=3, turns=[
        ("hello", "Sorry, I need a moment. Please say that again.", False, False)])
    reward = policy.call_reward_compute(call=call)
    assert reward.components == {"early_hangup": -0.5, "apology_or_failure": -0.4}
    assert reward.reward == pytest.approx(-0.9)


def test_a_dtmf_rating_reaches_the_reward() -> None:
    (variant,) = _variants("calm")
    call = _ended_call(variant, seconds=30)
    services.call_dtmf_record(call=call, digits="5")
    assert policy.call_reward_compute(call=call).components == {"rating": 0.5}
    services.call_dtmf_record(call=call, digits="1")  # the last rating counts
    assert policy.call_reward_compute(call=call).components == {"rating": -0.5}
    services.call_dtmf_record(call=call, digits="0301234567")  # a keyed-in number
    call.refresh_from_db()
    assert call.dtmf == "4567"  # only the last four digits are kept
    with pytest.raises(ValueError, match="no DTMF"):
        services.call_dtmf_record(call=call, digits="x")


def _rewards(variant: PolicyVariant, values: list[float]) -> None:
    for value in values:
        call = call_create(caller="")
        call.variant, call.status = variant, Call.Status.COMPLETED
        call.ended_at = timezone.now()
        call.save()
        CallReward.objects.create(call=call, variant=variant, reward=value)


def test_blacklisting_needs_enough_evidence_and_spares_the_default(settings: object) -> None:
    bad, doubtful, base, good = _variants("bad", "doubtful", "base", "good", default="base")
    _rewards(bad, [-0.8] * 29)
    _rewards(doubtful, [-0.3, 0.1] * 20)  # mean -0.1: not below -0.2 with 95 % confidence
    _rewards(base, [-0.9] * 60)
    _rewards(good, [0.6] * 40)
    assert policy.variants_blacklist_check() == []  # 29 calls: not enough yet
    _rewards(bad, [-0.8])
    assert policy.variants_blacklist_check() == [bad]
    bad.refresh_from_db()
    assert bad.blacklisted and "mean reward -0.75" in bad.blacklisted_reason
    for variant in (doubtful, base, good):
        variant.refresh_from_db()
        assert not variant.blacklisted, variant


# Endings that say nothing about the variant: the machine failed or was full (busy), or
# the peer attacked.
NOT_REWARDED = [Call.EndReason.STALE, Call.EndReason.SERVER_ERROR,
                Call.EndReason.PROCESS_DIED, Call.EndReason.OVERLOADED, Call.EndReason.BUSY,
                Call.EndReason.PROTOCOL_ERROR, Call.EndReason.FRAME_TOO_LARGE,
                Call.EndReason.RATE_LIMITED]


@pytest.mark.parametrize("reason", NOT_REWARDED)
def test_a_call_ended_by_a_failure_or_an_attack_is_not_rewarded(
        reason: str, django_capture_on_commit_callbacks: Any) -> None:
    from calls.tasks import call_reward

    (variant,) = _variants("calm")
    before = policy.arms([variant])[0]
    call = call_create(caller="")
    call.variant = variant
    call.save(update_fields=["variant"])
    with django_capture_on_commit_callbacks() as callbacks:
        services.call_end(call=call, reason=reason, failed=True, detail="test")
    assert callbacks == []  # no reward task is queued
    assert call_reward(call.pk) is None  # nor does a queued one (an old message) reward it
    with pytest.raises(ValueError, match=f"not rewarded: {reason}"):
        policy.call_reward_compute(call=call)
    assert CallReward.objects.count() == 0
    assert policy.arms([variant])[0] == before


def test_synthetic_calls_are_not_rewarded_but_a_callers_call_is(
        django_capture_on_commit_callbacks: Any) -> None:
    from calls.tasks import call_reward

    (variant,) = _variants("calm")
    synthetic, real = call_create(caller="", synthetic=True), call_create(caller="")
    for call in (synthetic, real):
        call.variant = variant
        call.save(update_fields=["variant"])
    with django_capture_on_commit_callbacks() as callbacks:
        services.call_end(call=synthetic, reason=Call.EndReason.CALLER_HANGUP)
    assert callbacks == []
    assert call_reward(synthetic.pk) is None
    with django_capture_on_commit_callbacks() as callbacks:
        services.call_end(call=real, reason=Call.EndReason.CALLER_HANGUP,
                          ended_at=real.started_at + timedelta(seconds=30))
    assert len(callbacks) == 1  # the reward task, queued once the end is committed
    assert call_reward(real.pk) == 0.0
    assert list(CallReward.objects.values_list("call_id", flat=True)) == [real.pk]
    arm = policy.arms([variant])[0]
    assert arm.calls == 1


def test_the_stale_reaper_charges_no_variant(django_capture_on_commit_callbacks: Any,
                                             settings: Any) -> None:
    from calls.tasks import call_reward, calls_reap_stale

    (variant,) = _variants("calm")
    call = call_create(caller="", started_at=timezone.now() - timedelta(
        minutes=settings.TOM_STALE_CALL_MINUTES + 5))
    call.variant = variant
    call.save(update_fields=["variant"])
    with django_capture_on_commit_callbacks() as callbacks:
        assert calls_reap_stale() == 1
    call.refresh_from_db()
    assert (call.status, call.end_reason) == (Call.Status.FAILED, Call.EndReason.STALE)
    assert callbacks == [] and call_reward(call.pk) is None
    assert CallReward.objects.count() == 0


def test_rewards_written_before_the_rule_no_longer_move_the_arms() -> None:
    """Rows an older TOM wrote for crashed, attacked and synthetic calls are ignored."""
    (variant,) = _variants("calm")
    _rewards(variant, [0.5, 0.5])
    counted = policy.arms([variant])[0]
    for reason, synthetic in ((Call.EndReason.STALE, False), (Call.EndReason.SERVER_ERROR, False),
                              (Call.EndReason.CALLER_HANGUP, True)):
        call = call_create(caller="", synthetic=synthetic)
        call.variant, call.status, call.end_reason = variant, Call.Status.FAILED, reason
        call.ended_at = timezone.now()
        call.save()
        CallReward.objects.create(call=call, variant=variant, reward=-1.0)
    assert policy.arms([variant])[0] == counted and counted.calls == 2
