"""A token bucket per connection: sustained messages per second, with a burst allowance."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, now

    def take(self, now: float) -> bool:
        """Spend one token; ``False`` when the bucket is empty (the sender floods)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
