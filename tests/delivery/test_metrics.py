"""Delivery's metrics from its store, on each backend: the queue gauges' figures and the
outcomes counter, which counts committed outcomes only, each recipient once."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.delivery.store import DeliveryStore
from services.kit.clock import FrozenClock
from tests.delivery.conftest import LEASE
from tests.delivery.test_cancel import prepared, sent

pytestmark = pytest.mark.usefixtures("store")


def outcomes(status: str, reason: str) -> float:
    labels = {"status": status, "reason": reason}
    return REGISTRY.get_sample_value("clarion_delivery_outcomes_total", labels) or 0.0


class TestQueueStats:
    async def test_depth_and_oldest_due_age_follow_the_queue(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 25, chunk_size=10)
        queued_at = clock.now()
        clock.advance(seconds=90)
        depth, oldest, runs = await store.queue_stats(clock.now())
        assert depth == 25
        assert oldest is not None and oldest.replace(tzinfo=queued_at.tzinfo) == queued_at
        assert runs.get("sending") == 1

        await store.cancel_run(site_id, run_id, clock.now())
        depth, oldest, runs = await store.queue_stats(clock.now())
        assert (depth, oldest) == (0, None)
        assert runs.get("cancelled") == 1 and "sending" not in runs


class TestOutcomesCounter:
    async def test_sends_and_a_cancel_count_each_recipient_once(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 12, chunk_size=10)
        sent_before = outcomes("sent", "none")
        cancelled_before = outcomes("suppressed", "cancelled")
        chunk = await store.claim_chunk("w1", clock.now(), LEASE)
        assert chunk is not None
        recipients = await store.due_recipients(chunk, clock.now())
        terminal = [sent(r) for r in recipients[:4]]
        for _ in range(2):  # the same outcomes committed again change nothing
            assert await store.record_progress(
                chunk, "cmp_1", terminal=terminal, now=clock.now(), lease_seconds=LEASE
            )
        assert outcomes("sent", "none") - sent_before == 4

        await store.cancel_run(site_id, run_id, clock.now())
        # The cancel fenced the sender out: its later commit is refused and not counted.
        late = [sent(r) for r in recipients[4:6]]
        assert not await store.record_progress(
            chunk, "cmp_1", terminal=late, now=clock.now(), lease_seconds=LEASE
        )
        assert outcomes("sent", "none") - sent_before == 4
        assert outcomes("suppressed", "cancelled") - cancelled_before == 8
