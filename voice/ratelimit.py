"""Token buckets per connection: sustained messages (or bytes) per second, with a burst."""

from __future__ import annotations

# Audio bytes per sample, per channel, by fork encoding (voice/dsp/pcm.py ENCODINGS).
BYTES_PER_SAMPLE = {"l16": 2, "pcmu": 1, "pcma": 1}


class TokenBucket:
    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, now

    def credit(self, tokens: float) -> None:
        """Allow ``tokens`` more once, above the burst (a backlog we caused)."""
        self._tokens += tokens

    def take(self, now: float, amount: float = 1) -> bool:
        """Spend ``amount`` tokens; ``False`` when the bucket lacks them (the sender floods).

        A refused take spends nothing, so one oversized request does not drain the bucket.
        """
        # Refill up to the burst; credit above it is kept until spent.
        self._tokens = min(max(self.burst, self._tokens),
                           self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True


def audio_byte_rate(*, sample_rate: int, channels: int, encoding: str) -> int:
    """Bytes per second of real-time fork audio in the negotiated form."""
    return sample_rate * channels * BYTES_PER_SAMPLE.get(encoding, 2)


def audio_bucket(*, sample_rate: int, channels: int, encoding: str, factor: float,
                 burst_s: float, now: float) -> TokenBucket:
    """A byte budget of ``factor`` times real time, with ``burst_s`` seconds of audio in hand.

    FreeSWITCH sends one frame per ptime, so a steady fork runs at real time; the burst covers
    a network stall followed by catch-up, the factor a jittery clock.
    """
    per_second = audio_byte_rate(sample_rate=sample_rate, channels=channels, encoding=encoding)
    return TokenBucket(rate=factor * per_second, burst=burst_s * per_second, now=now)


class DtmfLimit:
    """Per call: ``per_s`` DTMF messages a second (with a burst), and ``total`` in all.

    Each DTMF message is a database write, and a person keys a few digits a second.
    """

    def __init__(self, *, per_s: float, burst: float, total: int, now: float) -> None:
        self._bucket = TokenBucket(rate=per_s, burst=burst, now=now)
        self.total, self.allowed = total, 0

    def refusal(self, now: float) -> str | None:
        """``None`` when this message may be recorded, else why not (``call_limit``, ``rate``)."""
        if self.allowed >= self.total:
            return "call_limit"
        if not self._bucket.take(now):
            return "rate"
        self.allowed += 1
        return None
