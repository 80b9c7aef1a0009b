"""Token buckets per key (a site, a client address), for the gateway's rate limits."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import LRUCache


class TokenBuckets:
    """One token bucket per key, in a bounded LRU map; `monotonic` is the clock."""

    def __init__(
        self,
        burst: int,
        refill_per_second: float,
        max_keys: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = refill_per_second
        self._now = monotonic
        # key -> [tokens, when they were counted]
        self._buckets: LRUCache[str, list[float]] = LRUCache(maxsize=max_keys)

    def has_token(self, key: str) -> bool:
        """Whether `key`'s bucket holds a token now (none is taken)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return True
        return bucket[0] + (self._now() - bucket[1]) * self._rate >= 1.0

    def take(self, key: str) -> bool:
        """Takes a token from `key`'s bucket; False when it is empty."""
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self._burst, now]
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True
