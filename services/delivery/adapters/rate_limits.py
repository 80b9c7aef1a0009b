"""Send rates per push service (origin): a token bucket each, adapted to the answers (AIMD).

An origin is unlimited (or at the configured ceiling,
`CLARION_DELIVERY_ORIGIN_RATE_PER_SECOND`) until it answers 429. Then its rate is cut
(multiplicative decrease, from the rate we were sending it at, or the ceiling; at most
one cut per `DECREASE_INTERVAL_SECONDS`, as the requests already in flight answer 429
together; never below the floor) and grows back on its successes (additive increase: a
step per `INCREASE_INTERVAL_SECONDS` since the last change, counted when a success
comes) up to where it started. Other origins are untouched. Back at its start an
unlimited origin drops its bucket.

`delay` never waits: a sender asks it per request and holds back only that origin's
requests, so one slowed push service never slows the others sharing a chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from services.kit.metrics import set_push_origin_rate

# Push services a process keeps a bucket (and a send-rate estimate) for; the least
# recently used is dropped.
MAX_ORIGINS = 1024
# Multiplicative decrease on a 429, at most once per interval.
DECREASE_FACTOR = 0.5
DECREASE_INTERVAL_SECONDS = 1.0
# Additive increase, once per interval of successful sends without a 429: the ceiling
# is reached again from the floor in about RECOVERY_SECONDS.
INCREASE_INTERVAL_SECONDS = 1.0
RECOVERY_SECONDS = 30.0
# The lowest rate a 429 can bring an origin to (requests per second).
DEFAULT_FLOOR = 1.0


@dataclass
class _Bucket:
    rate: float
    ceiling: float
    step: float
    capacity: float
    tokens: float
    updated: float
    changed: float


@dataclass
class _Seen:
    """Requests started per second to an origin: the rate a first cut starts from."""

    second: int = 0
    count: int = 0
    previous: int = 0


class OriginRateLimits:
    def __init__(
        self,
        per_second: float = 0.0,
        burst_seconds: float = 1.0,
        *,
        floor: float = DEFAULT_FLOOR,
        timer: Callable[[], float] = time.monotonic,
        label: Callable[[str], str] | None = None,
    ) -> None:
        """`per_second` 0: no ceiling (unlimited until a 429). A bucket holds
        `burst_seconds` of sends. `label`: the metrics' push_service of an origin."""
        self._per_second = per_second
        self._burst_seconds = burst_seconds
        self._floor = floor
        self._timer = timer
        self._label = label
        self._buckets: LRUCache[str, _Bucket] = LRUCache(MAX_ORIGINS)
        self._seen: LRUCache[str, _Seen] = LRUCache(MAX_ORIGINS)

    @property
    def limited(self) -> bool:
        """A configured ceiling applies to every origin."""
        return self._per_second > 0

    def rate(self, origin: str) -> float | None:
        """The origin's current rate (requests per second); None: unlimited."""
        bucket = self._buckets.get(origin)
        return None if bucket is None else bucket.rate

    def delay(self, origin: str) -> float:
        """0.0 and one request's token taken if `origin` may take one now, else the
        seconds until it may (nothing taken)."""
        now = self._timer()
        bucket = self._buckets.get(origin)
        if bucket is None:
            if not self.limited:
                self._count(origin, now)
                return 0.0
            bucket = self._new_bucket(origin, self._per_second, self._per_second, now, full=True)
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            self._count(origin, now)
            return 0.0
        return (1.0 - bucket.tokens) / bucket.rate

    async def acquire(self, origin: str) -> None:
        """Waits until `origin` may take one more request, and takes it."""
        while (wait := self.delay(origin)) > 0:
            await asyncio.sleep(wait)

    def answered(self, origin: str, status: int | None) -> None:
        """Adapts the origin's rate to one answer: a 429 cuts it, a success (2xx) lets
        it grow back; anything else says nothing about its rate."""
        if status == 429:
            self._throttled(origin)
        elif status is not None and 200 <= status < 300:
            self._succeeded(origin)

    def _throttled(self, origin: str) -> None:
        now = self._timer()
        bucket = self._buckets.get(origin)
        if bucket is None:
            # From what we were sending it at (at least the floor), or the ceiling.
            start = (
                self._per_second if self.limited else max(self._floor, self._sent_rate(origin, now))
            )
            bucket = self._new_bucket(origin, start, start, now, full=False)
        elif now - bucket.changed < DECREASE_INTERVAL_SECONDS:
            return
        self._set_rate(origin, bucket, max(self._floor, bucket.rate * DECREASE_FACTOR), now)
        bucket.tokens = min(bucket.tokens, 0.0)

    def _succeeded(self, origin: str) -> None:
        bucket = self._buckets.get(origin)
        if bucket is None or bucket.rate >= bucket.ceiling:
            return
        now = self._timer()
        intervals = (now - bucket.changed) // INCREASE_INTERVAL_SECONDS
        if intervals < 1:
            return
        # One step per interval since the last change: an origin sent to rarely
        # recovers as fast as a busy one.
        rate = min(bucket.ceiling, bucket.rate + bucket.step * intervals)
        if rate >= bucket.ceiling and not self.limited:
            # Recovered: unlimited again until the next 429.
            del self._buckets[origin]
            self._report(origin, None)
            return
        self._set_rate(origin, bucket, rate, now)

    def _new_bucket(
        self, origin: str, rate: float, ceiling: float, now: float, *, full: bool
    ) -> _Bucket:
        capacity = max(1.0, rate * self._burst_seconds)
        bucket = _Bucket(
            rate=rate,
            ceiling=ceiling,
            step=max(self._floor, ceiling / RECOVERY_SECONDS),
            capacity=capacity,
            tokens=capacity if full else 0.0,
            updated=now,
            changed=float("-inf"),
        )
        self._buckets[origin] = bucket
        self._report(origin, rate)
        return bucket

    def _set_rate(self, origin: str, bucket: _Bucket, rate: float, now: float) -> None:
        bucket.rate = rate
        bucket.capacity = max(1.0, rate * self._burst_seconds)
        bucket.tokens = min(bucket.tokens, bucket.capacity)
        bucket.changed = now
        self._report(origin, rate)

    def _count(self, origin: str, now: float) -> None:
        seen = self._seen.get(origin)
        if seen is None:
            seen = self._seen[origin] = _Seen(int(now))
        second = int(now)
        if second != seen.second:
            seen.previous = seen.count if second == seen.second + 1 else 0
            seen.second, seen.count = second, 0
        seen.count += 1

    def _sent_rate(self, origin: str, now: float) -> float:
        seen = self._seen.get(origin)
        if seen is None:
            return 0.0
        second = int(now)
        if second == seen.second:
            return float(max(seen.previous, seen.count))
        return float(seen.count) if second == seen.second + 1 else 0.0

    def _report(self, origin: str, rate: float | None) -> None:
        if self._label is not None:
            set_push_origin_rate(self._label(origin), rate)
