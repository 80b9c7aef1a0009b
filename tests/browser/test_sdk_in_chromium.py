"""A real page on localhost subscribes with the SDK in headless Chromium; a campaign is
sent through the whole platform; the simulator's decrypted push is delivered to the
page's service worker, which shows it as the campaign designed it and reports the view,
a click on a button and the close, which the run's report then shows.

Replaced: only `PushManager.subscribe`/`getSubscription` in the page, which return a
subscription the simulator minted with the site's key (Chromium has no push service
offline). See sdk/web/browser-test/drive.mjs and docs/sdk.md "What is tested where".
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from clarion.campaign.v1 import campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.demo_browser import (
    OPEN_REFUSED,
    BrowserDriver,
    demo_notification,
    run_browser_demo,
    send_campaign,
    wait_for_run_report,
)
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from clarion.simulator.model import b64url_encode
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel
from tests.support.sites import bearer


class Site:
    def __init__(self, stack: EmbeddedStack, site_id: str, api_key: str, key: bytes) -> None:
        self.site_id = site_id
        self.auth = bearer(api_key)
        self.vapid_public_key = key
        self._channels = [
            client_channel(stack.address(name)) for name in ("campaign", "reporting", "segment")
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.reporting = reporting_service_pb2_grpc.ReportingServiceStub(self._channels[1])
        self.segment = segment_service_pb2_grpc.SegmentServiceStub(self._channels[2])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def run_report(self, run_id: str, until: Callable[[Any], bool]) -> Any:
        report = await wait_for_run_report(self.reporting, self.auth, run_id, until)
        assert until(report), f"the run's report never matched: {report}"
        return report


@pytest_asyncio.fixture(loop_scope="session")
async def site(stack: EmbeddedStack) -> AsyncIterator[Site]:
    created = await create_site(stack.settings, "Browser shop", "mailto:ops@shop.test")
    made = Site(stack, created.site_id, created.api_key, created.vapid_public_key)
    yield made
    await made.close()


def buttons(report: Any) -> list[tuple[str, int]]:
    return [(b.button, b.clicked) for b in report.clicked_by_button]


class TestTheSdkInChromium:
    async def test_subscribe_push_show_click_and_close_are_real_and_reported(
        self,
        sdk: Path,
        page_url: str,
        simulator: PushServiceSimulator,
        stack: EmbeddedStack,
        site: Site,
    ) -> None:
        started = time.monotonic()
        origin = page_url.rstrip("/")
        minted = simulator.mint_subscription(application_server_key=site.vapid_public_key)
        driver = await BrowserDriver.start(
            sdk,
            {
                "pageUrl": page_url,
                "gatewayUrl": stack.gateway_url,
                "siteId": site.site_id,
                "subscription": minted.to_json(),
                "timezone": "Europe/Paris",
            },
        )
        try:
            # The page's init() and a click on its button: subscribe() with the site's key.
            subscribed = await driver.step("subscribed")
            subscriber_id = subscribed["subscribe"]["subscriberId"]
            assert subscribed["subscribe"]["created"] is True
            assert subscribed["permission"] == "granted"
            assert subscribed["pushManagerCalls"] == [
                {
                    "userVisibleOnly": True,
                    "applicationServerKey": b64url_encode(site.vapid_public_key),
                }
            ]
            # The gateway stored it, with the browser and the page's time zone.
            subscriber = (
                await site.segment.GetSubscriber(
                    segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
                    metadata=site.auth,
                    timeout=10,
                )
            ).subscriber
            assert subscriber.push_subscription.endpoint == minted.endpoint
            assert subscriber.push_subscription.p256dh == minted.p256dh
            assert subscriber.browser == common_pb2.BROWSER_CHROME
            assert subscriber.timezone == "Europe/Paris"

            # A campaign to everyone: delivery encrypts it to the browser's keys.
            campaign_id, run = await send_campaign(
                site.campaigns, site.auth, demo_notification(origin)
            )
            run_id = run.run_id
            assert (run.audience, run.progress.sent) == (1, 1)
            [message] = simulator.messages(minted.endpoint)
            payload = message.payload()
            assert payload is not None
            assert payload["subscriber_id"] == subscriber_id
            # It names its site and the contract's version (the worker reports to that site).
            assert (payload["site_id"], payload["version"]) == (site.site_id, 1)

            # The decrypted push, delivered to the worker, is shown as designed.
            assert message.plaintext is not None
            await driver.send({"push": message.plaintext.decode(), "expect": "shown"})
            shown = await driver.step("shown")
            [notification] = shown["notifications"]
            assert notification["title"] == "Winter sale"
            assert notification["body"] == "Everything -30% until Sunday"
            assert notification["icon"] == origin + "/icon.png"
            assert notification["badge"] == origin + "/badge.png"
            assert notification["tag"] == "winter-sale"
            assert notification["actions"] == [
                {"action": "action_1", "title": "Shop now", "icon": origin + "/cart.png"},
                {"action": "action_2", "title": "Later", "icon": ""},
            ]
            assert notification["data"] == {"clarion": payload}
            viewed = await site.run_report(run_id, lambda r: r.viewed >= 1)
            assert (viewed.sent, viewed.viewed, viewed.clicked) == (1, 1, 0)

            # A click on the first button, then the close.
            await driver.send({"click": "action_1"})
            clicked = await driver.step("clicked")
            assert clicked["handled"] == 1
            assert clicked["stillShown"] == 0  # the worker closed it
            [opened] = clicked["opened"]
            assert opened["url"].startswith(f"{stack.gateway_url}/c/{site.site_id}~{run_id}~")
            assert opened["url"].endswith("?b=1")
            await driver.send({"close": True})
            closed = await driver.step("closed")
            assert closed["handled"] == 1

            # Headless Chromium refuses clients.openWindow in a dispatched event (no user
            # activation), so the click counted is the worker's events-API report.
            assert opened["result"] == OPEN_REFUSED, opened
            report = await site.run_report(run_id, lambda r: r.clicked >= 1 and r.closed >= 1)
            assert (report.sent, report.viewed, report.clicked, report.closed) == (1, 1, 1, 1)
            assert buttons(report) == [("action_1", 1)]
            assert report.campaign_id == campaign_id

            # The click link the worker opens leads to the button's URL, and a click
            # already reported through the events API is not counted twice.
            async with aiohttp.ClientSession() as http:
                async with http.get(opened["url"], allow_redirects=False) as response:
                    assert response.status == 302
                    assert response.headers["Location"].startswith(origin + "/welcome?from=button")
            again = await site.run_report(run_id, lambda r: True)
            assert (again.clicked, buttons(again)) == (1, [("action_1", 1)])

            # A push that is not JSON shows nothing; the worker says why on its console.
            await driver.send({"push": "not json", "expect": "nothing"})
            ignored = await driver.step("ignored")
            assert ignored["reason"].startswith("[clarion] NOT_JSON")
            assert ignored["notifications"] == []

            await driver.send({"done": True})
            done = await driver.step("done")
            # Nothing else went wrong in the worker.
            assert done["workerErrors"] == [
                "[clarion] OPEN_FAILED: Not allowed to open a window.",
                ignored["reason"],
            ], driver.console()
        finally:
            await driver.close()
        assert driver.process.returncode == 0, driver.console()
        print(
            f"\nbrowser test: Chromium launched in {subscribed['launchedMs']} ms, subscribed "
            f"at {subscribed['elapsedMs']} ms, shown {shown['elapsedMs']} ms after the push, "
            f"driver {done['totalMs']} ms, test {time.monotonic() - started:.1f} s"
        )


@pytest.mark.slow
class TestTheBrowserDemo:
    async def test_it_prints_equal_counts_from_the_browser_and_the_report(
        self, sdk: Path, tmp_path: Path
    ) -> None:
        # As `clarion demo --scenario browser` runs: its own SQLite stack (once, not per
        # test database: the test above covers both).
        result = await run_browser_demo(tmp_path)

        assert result["ok"] is True, result
        assert (result["subscribed"], result["pushed"], result["shown"]) == (1, 1, 1)
        assert (result["clicked"], result["closed"]) == (1, 1)
        counts = (result["report_viewed"], result["report_clicked"], result["report_closed"])
        assert counts == (1, 1, 1)
        assert result["report_clicked_by_button"] == {"action_1": 1}
        assert result["click_counted_by"].startswith("the worker's events-API report")
        assert result["worker_errors"] == ["[clarion] OPEN_FAILED: Not allowed to open a window."]
        # The report pages it signed in to, at a desktop and a phone size, as PNG files.
        shots = [Path(p) for p in result["screenshots"]]
        assert sorted(p.name for p in shots) == sorted(
            f"{page}-{size}.png"
            for page in ("campaigns", "campaign-report", "why", "plan")
            for size in ("desktop", "phone")
        )
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in shots)
        assert result["report_pages_findings"] == {}
