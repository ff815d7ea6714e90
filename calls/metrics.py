"""Metrics of the policy-variant bandit (fed by the RL issue; exported from the start so
dashboards and alerts have their series)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RL_REWARD = Histogram("tom_rl_reward", "Reward of each ended call, by policy variant.",
                      ["variant"], buckets=(-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 0.8, 1.0))
RL_BLACKLISTED = Gauge("tom_rl_blacklisted_variants", "Policy variants blacklisted now.")
RL_LIVE_VARIANTS = Gauge(
    "tom_rl_live_variants",
    "Variants other than the default that may take calls (0: all calls go to the default).")
RL_EXPLORATION = Gauge("tom_rl_exploration_ratio",
                       "Share of recent calls sent to a variant other than the current best.")
RL_VARIANT_CALLS = Counter("tom_rl_variant_calls", "Calls routed to each policy variant.",
                           ["variant"])
