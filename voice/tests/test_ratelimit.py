"""The per-connection token bucket, and the allowance for frames queued while models load."""

from __future__ import annotations

from voice.ratelimit import DtmfLimit, TokenBucket, audio_bucket, audio_byte_rate


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


def test_bytes_are_budgeted_at_one_and_a_half_times_real_time() -> None:
    assert audio_byte_rate(sample_rate=8000, channels=1, encoding="l16") == 16_000
    assert audio_byte_rate(sample_rate=8000, channels=1, encoding="pcmu") == 8_000
    assert audio_byte_rate(sample_rate=16000, channels=2, encoding="l16") == 64_000
    bucket = audio_bucket(sample_rate=8000, channels=1, encoding="l16", factor=1.5,
                          burst_s=2.0, now=0.0)
    # 2 s of audio in hand, then 24,000 bytes a second: 1.5x the 16,000 of real time.
    assert bucket.take(0.0, 32_000) and not bucket.take(0.0, 1)
    assert bucket.take(1.0, 24_000) and not bucket.take(1.0, 320)
    assert not bucket.take(1.0, 64_000)  # one 64 KB frame is four seconds of audio
    # A refused take spends nothing: the next real-time frame still fits.
    assert bucket.take(1.02, 320)


def test_dtmf_a_few_a_second_and_a_total_per_call() -> None:
    limit = DtmfLimit(per_s=5, burst=20, total=30, now=0.0)
    refusals = [limit.refusal(0.0) for _ in range(25)]
    assert refusals == [None] * 20 + ["rate"] * 5
    assert [limit.refusal(2.0) for _ in range(12)] == [None] * 10 + ["call_limit"] * 2
    assert limit.refusal(100.0) == "call_limit"  # the total does not refill
