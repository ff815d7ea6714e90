"""A token bucket per connection: sustained messages per second, with a burst allowance."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, now

    def credit(self, tokens: float) -> None:
        """Allow ``tokens`` more messages once, above the burst (a backlog we caused)."""
        self._tokens += tokens

    def take(self, now: float) -> bool:
        """Spend one token; ``False`` when the bucket is empty (the sender floods)."""
        # Refill up to the burst; credit above it is kept until spent.
        self._tokens = min(max(self.burst, self._tokens),
                           self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
