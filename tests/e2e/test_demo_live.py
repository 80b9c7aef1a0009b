"""`clarion demo --scenario abandoned-cart` and `--scenario recurring`: campaigns that run
themselves, on a moved clock, push exactly whom they should, on each database."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from clarion import demo_live
from clarion.demo_live import Shopper, run_abandoned_cart_demo, run_recurring_demo


@pytest.fixture
def settings(settings_factory):  # type: ignore[no-untyped-def]
    return settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)


class TestAbandonedCartScenario:
    async def test_exactly_the_shoppers_who_did_not_buy_in_time_are_pushed_once(
        self,
        settings,  # type: ignore[no-untyped-def]
    ) -> None:
        result = await run_abandoned_cart_demo(
            40, settings.data_dir, settings=settings, seed=7, settle_seconds=30
        )

        # Some bought in time, some late, some not at all: the trigger actually selects.
        assert 0 < result["bought"] < result["carts"], result
        assert result["bought_late"] > 0, result
        assert result["expected_pushed"] == result["carts"] - result["bought"], result
        assert result["pushed"] == result["expected_pushed"] > 0, result
        assert result["bought_late_pushed"] == result["bought_late"], result
        assert result["wrong"] == 0, result
        assert 0 < result["runs"] <= result["pushed"], result

    async def test_a_purchase_after_the_window_does_not_cancel_the_push(
        self,
        settings,
        monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
    ) -> None:
        # Each buys 630 s after the add: tracked at the very step (and clock time) the
        # pass that ends the add's wait (due at 600 s + 2 s of grace) runs.
        def late_at_the_step_the_push_is_due(count: int, rng: random.Random) -> list[Shopper]:
            return [Shopper(f"shopper-{i}", 30 * i, 30 * i + 630) for i in range(count)]

        monkeypatch.setattr(demo_live, "shoppers", late_at_the_step_the_push_is_due)

        result = await run_abandoned_cart_demo(
            4, settings.data_dir, settings=settings, settle_seconds=30
        )

        assert result["pushed"] == result["expected_pushed"] == 4, result
        assert result["wrong"] == 0, result


class TestRecurringScenario:
    async def test_a_run_each_day_at_nine_in_berlin_to_everyone_subscribed_by_then(
        self,
        settings,  # type: ignore[no-untyped-def]
    ) -> None:
        # Across the night Berlin moves to summer time (28 March 2027): 09:00 local is
        # 08:00 UTC before it and 07:00 UTC after.
        start = datetime(2027, 3, 24, tzinfo=UTC)

        result = await run_recurring_demo(
            10, settings.data_dir, settings=settings, seed=11, start=start
        )

        assert result["runs"] == result["expected_runs"] == 10, result
        assert result["per_run_audience"] == result["expected_per_run_audience"], result
        assert result["expected_per_run_audience"][-1] > result["expected_per_run_audience"][0]
        assert result["wrong"] == 0, result
        assert result["off_schedule"] == [], result
        assert set(result["local_times"]) <= {"09:00", "09:01"}, result
        assert result["received"] == result["expected_received"] > 0, result
