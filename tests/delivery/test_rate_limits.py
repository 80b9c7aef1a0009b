"""Per-push-service token buckets: each origin has its own, none while unlimited, and each
adapts to its own answers (AIMD: halved on a 429, grown back step by step on successes)."""

from __future__ import annotations

from services.delivery.adapters.rate_limits import (
    DECREASE_INTERVAL_SECONDS,
    MAX_ORIGINS,
    RECOVERY_SECONDS,
    OriginRateLimits,
)
from services.kit.metrics import PUSH_ORIGIN_RATE, push_service_label

FCM = "https://fcm.googleapis.com"
MOZILLA = "https://updates.push.services.mozilla.com"


class Timer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sends(limits: OriginRateLimits, origin: str, timer: Timer, seconds: float) -> int:
    """How many requests `origin` may start over `seconds`, asking every millisecond."""
    started = 0
    for _ in range(int(seconds * 1000)):
        while limits.delay(origin) == 0:
            started += 1
        timer.now += 0.001
    return started


class TestOriginRateLimits:
    def test_an_origin_gets_its_rate_and_no_more_at_once(self) -> None:
        timer = Timer()
        limits = OriginRateLimits(per_second=5, timer=timer)
        for _ in range(5):
            assert limits.delay(FCM) == 0
        assert 0.19 < limits.delay(FCM) <= 0.2  # a sixth request now would wait
        # Another push service has a bucket of its own.
        assert limits.delay(MOZILLA) == 0
        assert 45 <= sends(limits, FCM, timer, 10) <= 51

    def test_zero_means_unlimited_and_keeps_no_buckets(self) -> None:
        limits = OriginRateLimits(per_second=0)
        for _ in range(1000):
            assert limits.delay(FCM) == 0
        assert not limits.limited and len(limits._buckets) == 0
        assert limits.rate(FCM) is None

    def test_buckets_are_bounded(self) -> None:
        limits = OriginRateLimits(per_second=100)
        for n in range(MAX_ORIGINS + 50):
            limits.delay(f"https://push{n}.example")
        assert len(limits._buckets) == MAX_ORIGINS

    async def test_acquire_waits_for_a_token(self) -> None:
        limits = OriginRateLimits(per_second=1000)
        for _ in range(1005):
            await limits.acquire(FCM)


class TestAdaptiveRate:
    def test_a_429_halves_the_rate_it_was_sent_at_and_spares_the_others(self) -> None:
        timer = Timer()
        limits = OriginRateLimits(timer=timer)
        for origin in (FCM, MOZILLA):
            assert sends(limits, origin, timer, 0) == 0
        # 200 requests a second to each for two seconds, unlimited.
        for _ in range(2):
            for _ in range(200):
                assert limits.delay(FCM) == 0 and limits.delay(MOZILLA) == 0
            timer.now += 1.0
        limits.answered(FCM, 429)
        assert limits.rate(FCM) == 100.0
        # The answers already in flight say 429 too: one cut per interval, not one each.
        for _ in range(50):
            limits.answered(FCM, 429)
        assert limits.rate(FCM) == 100.0
        assert limits.rate(MOZILLA) is None
        assert 95 <= sends(limits, FCM, timer, 1.0) <= 101
        # Another 429 a while later halves it again, down to the floor at most.
        timer.now += DECREASE_INTERVAL_SECONDS
        limits.answered(FCM, 429)
        assert limits.rate(FCM) == 50.0
        for _ in range(20):
            timer.now += DECREASE_INTERVAL_SECONDS
            limits.answered(FCM, 429)
        assert limits.rate(FCM) == 1.0
        assert limits.delay(MOZILLA) == 0

    def test_successes_bring_it_back_gradually_then_unlimited(self) -> None:
        timer = Timer()
        limits = OriginRateLimits(timer=timer, label=push_service_label)
        for _ in range(300):
            limits.delay(FCM)
        limits.answered(FCM, 429)
        assert limits.rate(FCM) == 150.0
        assert PUSH_ORIGIN_RATE.labels("fcm.googleapis.com")._value.get() == 150.0
        rates = []
        for _ in range(int(RECOVERY_SECONDS)):
            timer.now += 1.0
            for _ in range(10):  # many successes a second: one step a second
                limits.answered(FCM, 201)
            rates.append(limits.rate(FCM))
        step = 300 / RECOVERY_SECONDS
        assert rates[:3] == [150 + step, 150 + 2 * step, 150 + 3 * step]
        # Back where it was throttled: unlimited again, and the gauge's series is gone.
        assert rates[-1] is None and limits.rate(FCM) is None
        assert "fcm.googleapis.com" not in {
            s.labels["push_service"] for m in PUSH_ORIGIN_RATE.collect() for s in m.samples
        }

    def test_a_configured_rate_is_the_ceiling_it_returns_to(self) -> None:
        timer = Timer()
        limits = OriginRateLimits(per_second=40, timer=timer)
        limits.answered(FCM, 429)
        assert limits.rate(FCM) == 20.0
        for _ in range(100):
            timer.now += 1.0
            limits.answered(FCM, 201)
        assert limits.rate(FCM) == 40.0

    def test_other_answers_change_nothing(self) -> None:
        timer = Timer()
        limits = OriginRateLimits(per_second=40, timer=timer)
        limits.answered(FCM, 429)
        for status in (400, 404, 410, 500, 503, None):
            timer.now += 5
            limits.answered(FCM, status)
        assert limits.rate(FCM) == 20.0
