"""A token bucket: ``rate`` events per second on average, bursts up to ``burst``."""

from __future__ import annotations


class TokenBucket:
    """Callers pass the current (monotonic) time, so the bucket is testable without sleeping."""

    __slots__ = ("_last", "_level", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` if available; False means the event is over the limit."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._level = min(self.burst, self._level + elapsed * self.rate)
        if self._level < cost:
            return False
        self._level -= cost
        return True


__all__ = ["TokenBucket"]
