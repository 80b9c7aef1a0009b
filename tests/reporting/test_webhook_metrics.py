"""Reporting's webhook metrics on a reporting server of its own (each backend) and a real
receiver: attempts by result as they settle, and the backlog and dead-letter gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from prometheus_client import REGISTRY

from tests.reporting.conftest import WebhooksUnderTest, webhook_settings, webhooks_server
from tests.reporting.test_webhooks import (
    VIEW,
    VIEWED,
    create,
    event,
    record_events,
    record_run,
    until,
)
from tests.reporting.webhook_receiver import WebhookReceiver


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(settings_factory) -> AsyncIterator[WebhooksUnderTest]:  # type: ignore[no-untyped-def]
    settings = webhook_settings(
        settings_factory, webhook_allow_private_addresses=True, metrics_refresh_seconds=0.05
    )
    async with webhooks_server(settings) as under_test:
        yield under_test


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts(result: str) -> float:
    return sample("clarion_webhook_attempts_total", result=result)


class TestWebhookMetrics:
    async def test_attempts_count_by_result_and_gauges_show_backlog_and_dead_letters(
        self, metered: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        before = {result: attempts(result) for result in ("delivered", "failed", "dead")}
        site = metered.site()
        ok, failing, gone = receiver.new_path(), receiver.new_path(), receiver.new_path()
        receiver.answer(failing, 500)
        receiver.answer(gone, 410)
        for path in (ok, failing, gone):
            await create(metered, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(metered, site)
        await record_events(metered, site, event(campaign_id, run_id, VIEWED, "sub_1"))
        for path in (ok, failing, gone):
            await receiver.wait_for(path, 1)

        def delta(result: str) -> float:
            return attempts(result) - before[result]

        async def settled() -> bool:
            return (delta("delivered"), delta("failed"), delta("dead")) == (1, 1, 1)

        await until(settled, "the three attempts to settle")

        # The failing one waits for its retry, not yet due (the clock stands still);
        # the gone one is a dead letter. Other reporting servers in this process refresh
        # the same gauges, less often: wait for this one's figures.
        async def gauges() -> bool:
            return (
                sample("clarion_webhook_backlog"),
                sample("clarion_webhook_backlog_oldest_due_age_seconds"),
                sample("clarion_webhook_dead_letters"),
            ) == (1, 0, 1)

        await until(gauges, "the backlog gauges")
