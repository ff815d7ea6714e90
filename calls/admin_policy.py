"""Policy variants in the admin: their evidence (calls, mean reward and its 95 % credible
interval, the reward trend) and the actions blacklist, reinstate and make default."""

from __future__ import annotations

from typing import Any

import pydantic
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from calls import bandit, policy
from calls.models import CallReward, PolicyVariant
from calls.variants import parameters_clean, variant_problems


class PolicyVariantForm(forms.ModelForm):
    class Meta:
        model = PolicyVariant
        fields = ("name", "description", "enabled", "parameters")

    def clean_parameters(self) -> dict[str, Any]:
        try:
            params = parameters_clean(self.cleaned_data["parameters"])
        except pydantic.ValidationError as exc:
            raise forms.ValidationError([
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)]) from None
        # The checks the other apps registered (voice: are the models on this server?),
        # caught here rather than on the variant's first call, which would fail.
        problems = variant_problems(params=params)
        if problems:
            raise forms.ValidationError(problems)
        return params.model_dump()


def _trend(rewards: list[float], *, width: int = 100, height: int = 20) -> str:
    if len(rewards) < 2:
        return "-"
    step = width / (len(rewards) - 1)
    points = " ".join(f"{i * step:.1f},{(1 - (r + 1) / 2) * height:.1f}"
                      for i, r in enumerate(rewards))
    return format_html('<svg width="{}" height="{}"><polyline points="{}" fill="none" '
                       'stroke="#555"/></svg>', width, height, points)


@admin.register(PolicyVariant)
class PolicyVariantAdmin(admin.ModelAdmin):
    form = PolicyVariantForm
    list_display = ("name", "enabled", "is_default", "blacklisted", "calls", "mean_reward",
                    "interval", "trend", "blacklisted_reason")
    list_filter = ("enabled", "blacklisted", "is_default")
    readonly_fields = ("is_default", "blacklisted", "blacklisted_reason", "blacklisted_at")
    actions = ("blacklist", "reinstate", "make_default")

    def _arm(self, variant: PolicyVariant) -> bandit.Arm:
        # One posterior per row and page view (the columns below share it).
        cached = getattr(variant, "_arm", None)
        if cached is None:
            cached = policy.arms([variant])[0]
            variant._arm = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description="calls")
    def calls(self, variant: PolicyVariant) -> int:
        return self._arm(variant).calls

    @admin.display(description="mean reward")
    def mean_reward(self, variant: PolicyVariant) -> str:
        arm = self._arm(variant)
        return f"{arm.mean_reward:+.2f}" if arm.calls else "-"

    @admin.display(description="95 % interval")
    def interval(self, variant: PolicyVariant) -> str:
        arm = self._arm(variant)
        if not arm.calls:
            return "-"
        low, high = bandit.credible_interval(arm)
        return f"{low:+.2f} .. {high:+.2f}"

    @admin.display(description="reward trend")
    def trend(self, variant: PolicyVariant) -> str:
        rewards = list(CallReward.objects.filter(variant=variant).order_by("computed_at")
                       .values_list("reward", flat=True)[:200])
        return _trend(rewards)

    @admin.action(description="Blacklist", permissions=["change"])
    def blacklist(self, request: HttpRequest, queryset: QuerySet[PolicyVariant]) -> None:
        for variant in queryset:
            try:
                policy.policy_variant_blacklist(variant=variant, reason="by a supervisor")
            except ValueError as exc:
                self.message_user(request, f"{variant}: {exc}", messages.ERROR)
        policy.rl_metrics_update()

    @admin.action(description="Reinstate", permissions=["change"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[PolicyVariant]) -> None:
        for variant in queryset:
            policy.policy_variant_reinstate(variant=variant)
        policy.rl_metrics_update()

    @admin.action(description="Make default", permissions=["change"])
    def make_default(self, request: HttpRequest, queryset: QuerySet[PolicyVariant]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "choose exactly one variant", messages.ERROR)
            return
        policy.policy_variant_make_default(variant=queryset.get())


@admin.register(CallReward)
class CallRewardAdmin(admin.ModelAdmin):
    list_display = ("call", "variant", "reward", "components", "computed_at")
    list_filter = ("variant",)
    readonly_fields = ("call", "variant", "reward", "components", "computed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
