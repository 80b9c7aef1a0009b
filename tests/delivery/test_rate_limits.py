"""Per-push-service token buckets: each origin has its own, and none when unlimited."""

from __future__ import annotations

from services.delivery.adapters.rate_limits import MAX_ORIGINS, OriginRateLimits


class TestOriginRateLimits:
    async def test_an_origin_gets_its_rate_and_no_more_at_once(self) -> None:
        limits = OriginRateLimits(per_second=5)
        for _ in range(5):
            await limits.acquire("https://fcm.googleapis.com")
        bucket = limits._buckets["https://fcm.googleapis.com"]
        assert not bucket.has_capacity()  # a sixth request now would have to wait
        # Another push service has a bucket of its own.
        await limits.acquire("https://updates.push.services.mozilla.com")
        assert limits._buckets["https://updates.push.services.mozilla.com"].has_capacity()

    async def test_zero_means_unlimited_and_keeps_no_buckets(self) -> None:
        limits = OriginRateLimits(per_second=0)
        for _ in range(1000):
            await limits.acquire("https://fcm.googleapis.com")
        assert not limits.limited and len(limits._buckets) == 0

    async def test_buckets_are_bounded(self) -> None:
        limits = OriginRateLimits(per_second=100)
        for n in range(MAX_ORIGINS + 50):
            await limits.acquire(f"https://push{n}.example")
        assert len(limits._buckets) == MAX_ORIGINS
