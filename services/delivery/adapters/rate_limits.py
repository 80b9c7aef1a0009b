"""Send rates per push service (origin): a token bucket each, from aiolimiter.

The hook the adaptive rate (slowing down on 429s, per push service) will drive; today
it applies one configured ceiling to every origin, or none.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter
from cachetools import LRUCache

# Push services a process keeps a bucket for; the least recently used is dropped.
MAX_ORIGINS = 1024


class OriginRateLimits:
    def __init__(self, per_second: float, burst_seconds: float = 1.0) -> None:
        """`per_second` 0 means no limit. A bucket holds `burst_seconds` of sends."""
        self._per_second = per_second
        self._burst_seconds = burst_seconds
        self._buckets: LRUCache[str, AsyncLimiter] = LRUCache(MAX_ORIGINS)

    @property
    def limited(self) -> bool:
        return self._per_second > 0

    async def acquire(self, origin: str) -> None:
        """Waits until `origin` may take one more request."""
        if not self.limited:
            return
        bucket = self._buckets.get(origin)
        if bucket is None:
            bucket = AsyncLimiter(
                max(1.0, self._per_second * self._burst_seconds), self._burst_seconds
            )
            self._buckets[origin] = bucket
        await bucket.acquire()
