"""The gateway in a process of its own (`clarion serve`, the segments benchmark): browsers
register through it, a campaign reaches them, its /metrics answers, and stopping the
stack ends the process."""

from __future__ import annotations

import aiohttp

from clarion.demo import register_browsers
from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from tests.e2e.test_platform import _create_campaign, _send_now, _settled_report
from tests.kit.test_metrics import scrape


async def test_a_campaign_reaches_browsers_registered_through_the_gateways_process(
    settings_factory, simulator: PushServiceSimulator  # type: ignore[no-untyped-def]
) -> None:
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True, gateway_in_process=False)
    try:
        assert stack.gateway is None and stack.gateway_process is not None
        process = stack.gateway_process.process
        assert process.is_alive()
        site = await create_site(stack.settings, "Gateway apart", "mailto:ops@example.com")
        subscriptions = [simulator.mint_subscription() for _ in range(3)]
        async with aiohttp.ClientSession() as session:
            ids = await register_browsers(session, stack.gateway_url, site.site_id, subscriptions)
        assert len(set(ids)) == 3
        campaign_id = await _create_campaign(stack, site.api_key)
        await _send_now(stack, site.api_key, campaign_id)
        report = await _settled_report(stack, site.api_key, campaign_id)
        assert (report.audience, report.sent) == (3, 3)
        # The gateway's own /metrics, counting the registrations it answered.
        _, samples = await scrape(stack.metrics_urls()["gateway"])
        assert any(name.startswith("clarion_") for name, _ in samples)
    finally:
        await stack.stop()
    assert not process.is_alive()
    assert stack.gateway_process is None
