"""The per-connection token bucket, and the allowance for frames queued while models load."""

from __future__ import annotations

from voice.ratelimit import TokenBucket


def test_a_burst_then_the_sustained_rate() -> None:
    bucket = TokenBucket(rate=50, burst=10, now=0.0)
    assert all(bucket.take(0.0) for _ in range(10))
    assert not bucket.take(0.0)  # flooding
    assert bucket.take(0.02)  # one frame's worth of refill later


def test_credit_for_a_backlog_is_spent_once() -> None:
    bucket = TokenBucket(rate=50, burst=10, now=0.0)
    # The models took 6 s to load: 300 frames queued meanwhile arrive at once.
    bucket.credit(6 * 50)
    assert all(bucket.take(6.0) for _ in range(300))
    assert all(bucket.take(6.0) for _ in range(10))  # and the normal burst after it
    assert not bucket.take(6.0)
    # Refill never goes above the burst again.
    assert sum(bucket.take(100.0) for _ in range(50)) == 10
