"""Thompson sampling over policy variants, with an exploration floor. Pure and seeded.

A call's reward r is in [-1, 1]. Each variant keeps a Beta posterior over
p = (r + 1) / 2, updated with fractional successes (alpha += p, beta += 1 - p), which is
the standard way to run Beta-Bernoulli Thompson sampling on bounded rewards. The mean
reward is 2 E[p] - 1.

Selection draws p from each live variant's posterior and takes the largest; with
probability ``floor`` it instead takes a uniformly chosen variant other than the current
best, so no live variant starves while the evidence is thin or the world changes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRIOR = 1.0  # Beta(1, 1): no opinion before the first call


@dataclass(frozen=True, slots=True)
class Arm:
    key: str
    alpha: float = PRIOR
    beta: float = PRIOR
    calls: int = 0

    @property
    def mean_reward(self) -> float:
        return 2 * self.alpha / (self.alpha + self.beta) - 1

    def updated(self, reward: float) -> Arm:
        p = min(1.0, max(0.0, (reward + 1) / 2))
        return Arm(self.key, self.alpha + p, self.beta + 1 - p, self.calls + 1)


def posterior(rewards: Sequence[float], *, key: str = "") -> Arm:
    arm = Arm(key)
    for reward in rewards:
        arm = arm.updated(reward)
    return arm


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    explored: bool  # chosen by the floor, not because it sampled best
    best: str  # the variant with the highest posterior mean now


def choose(arms: Sequence[Arm], *, rng: random.Random, floor: float = 0.05) -> Choice:
    """Pick an arm: Thompson sampling, or with probability ``floor`` a non-best one."""
    if not arms:
        raise ValueError("no live variant to choose from")
    best = max(arms, key=lambda a: (a.mean_reward, a.key)).key
    others = [a for a in arms if a.key != best]
    if others and rng.random() < floor:
        return Choice(key=rng.choice(others).key, explored=True, best=best)
    draws = [(rng.betavariate(a.alpha, a.beta), a.key) for a in arms]
    return Choice(key=max(draws)[1], explored=False, best=best)


def probability_below(arm: Arm, threshold: float, *, samples: int = 20_000,
                      seed: int = 0) -> float:
    """P(mean reward < threshold) under the arm's posterior (seeded Monte Carlo)."""
    draws = np.random.default_rng(seed).beta(arm.alpha, arm.beta, samples)
    return float(np.mean(2 * draws - 1 < threshold))


def credible_interval(arm: Arm, *, level: float = 0.95, samples: int = 20_000,
                      seed: int = 0) -> tuple[float, float]:
    draws = 2 * np.random.default_rng(seed).beta(arm.alpha, arm.beta, samples) - 1
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def should_blacklist(arm: Arm, *, min_calls: int, below: float,
                     confidence: float = 0.95) -> bool:
    """Enough calls, and the posterior is ``confidence`` sure the mean is below ``below``."""
    return arm.calls >= min_calls and probability_below(arm, below) >= confidence
