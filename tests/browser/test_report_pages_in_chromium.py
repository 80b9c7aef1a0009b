"""The gateway's report pages in Debian's headless Chromium, at a desktop and a phone
viewport: signed in through the form with the site's API key, each page (campaigns list,
campaign report, why trail, delivery plan) is screenshot and checked with axe-core.

Nothing is replaced: the campaign is sent through the whole platform to simulated
browsers, their views and clicks are posted to the gateway as service workers do, and
the pages' own bundled script draws the chart under their Content-Security-Policy.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clarion.campaign.v1 import campaign_service_pb2_grpc
from clarion.demo import register_browsers, report_engagement
from clarion.demo_browser import (
    VIEWPORTS,
    blocking_findings,
    capture_report_pages,
    demo_notification,
    report_pages,
    send_campaign,
)
from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel
from tests.support.sites import bearer

BROWSERS = 20


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report-pages")


class TestReportPagesInChromium:
    async def test_every_page_reads_well_at_desktop_and_phone_size(
        self,
        sdk: Path,
        stack: EmbeddedStack,
        simulator: PushServiceSimulator,
        shots_dir: Path,
    ) -> None:
        site = await create_site(stack.settings, "Report shop", "mailto:ops@shop.test")
        subscriptions = [simulator.mint_subscription() for _ in range(BROWSERS)]
        async with aiohttp.ClientSession() as session:
            subscriber_ids = await register_browsers(
                session, stack.gateway_url, site.site_id, subscriptions
            )
            async with client_channel(stack.address("campaign")) as channel:
                campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                campaign_id, run = await send_campaign(
                    campaigns,
                    bearer(site.api_key),
                    demo_notification("https://shop.test"),
                    name="Winter sale",
                )
            assert run.progress.sent == BROWSERS, run.progress
            # Views for all, a click for every tenth: the pages have a funnel to show.
            await report_engagement(
                session, stack.gateway_url, site.site_id, simulator, subscriptions
            )

        captured = await capture_report_pages(
            sdk,
            stack.gateway_url,
            site.api_key,
            report_pages(campaign_id, subscriber_ids[0]),
            shots_dir,
        )

        pages: dict[tuple[str, str], dict[str, Any]] = {
            (page["name"], page["viewport"]): page for page in captured["pages"]
        }
        names = ("campaigns", "campaign-report", "why", "plan")
        assert set(pages) == {(n, v["name"]) for n in names for v in VIEWPORTS}
        assert captured["signedIn"].rstrip("/").endswith("/reports")
        problems = {
            f"{name}@{viewport}": found
            for (name, viewport), page in pages.items()
            if (found := blocking_findings(page))
        }
        assert problems == {}, problems
        for (name, viewport), page in pages.items():
            width, height = png_size(Path(page["screenshot"]))
            wanted = next(v for v in VIEWPORTS if v["name"] == viewport)
            assert width == wanted["width"], (name, viewport, width)
            assert height >= wanted["height"] // 2, (name, viewport, height)
        for viewport in VIEWPORTS:
            report = pages[("campaign-report", viewport["name"])]
            assert "Winter sale" in report["title"] + report["heading"]
            chart = report["chart"]
            assert chart["present"] and chart["drawn"], chart
            # The chart fits the page: narrower than the phone's screen on a phone.
            assert 0 < chart["widthPx"] <= viewport["width"], chart
