"""The report pages under /reports/: signed in with a site API key, against the real
campaign, segment, delivery and reporting servers behind the gateway, with a campaign
really sent to the push-service simulator. What is checked is what a reader of the page
notices: the numbers, the final state of a person, the status codes and the cookies."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2, reporting_pb2
from clarion.reporting.v1 import reporting_service_pb2 as reporting_pb
from clarion.segment.v1 import segment_service_pb2
from clarion.simulator import Behaviour, PushServiceSimulator
from services.campaign.admin import create_site
from services.gateway import pages
from services.gateway.limits import TokenBuckets
from services.gateway.pages import words
from services.gateway.server import create_gateway
from services.kit.clock import FrozenClock
from services.kit.grpcserver import client_channel
from services.kit.peers import Peers
from tests.campaign.helpers import (
    closed_port_address,
    eventually,
    finished,
    get_run,
    new_campaign,
    send_now,
)
from tests.gateway.conftest import Stack
from tests.support.sites import bearer
from tests.support.stacks import running_simulator

# --- a reader's browser and eyes -------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def all(self, tag: str, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str, **attrs: str) -> Node:
        [found] = self.all(tag, **attrs)
        return found

    def rows(self) -> list[list[str]]:
        """A table's body rows as the texts of their cells."""
        return [
            [cell.text() for cell in row.children if isinstance(cell, Node)]
            for body in self.all("tbody")
            for row in body.all("tr")
        ]


_VOID = {"meta", "link", "input", "br", "img", "hr"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    parser = _Parser()
    parser.feed(html)
    return parser.root


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    set_cookies: dict[str, str]  # name -> the whole Set-Cookie header
    text: str

    @property
    def page(self) -> Node:
        return parse(self.text)


class Reader:
    """A browser with its own cookies for one gateway (sent by hand: the jar is not
    asked, so the test sees exactly what the server set)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.base_url = http, base_url
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: object
    ) -> Answer:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        sent = {"Cookie": cookie} if cookie else {}
        async with self.http.request(
            method,
            self.base_url + path,
            headers={**sent, **(headers or {})},
            allow_redirects=False,
            **kwargs,  # type: ignore[arg-type]
        ) as response:
            text = await response.text()
            set_cookies = {}
            for header in response.headers.getall("Set-Cookie", []):
                morsel = next(iter(SimpleCookie(header).values()))
                set_cookies[morsel.key] = header
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(morsel.key, None)
                else:
                    self.cookies[morsel.key] = morsel.value
            return Answer(response.status, dict(response.headers), set_cookies, text)

    async def get(self, path: str, **kwargs: object) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def csrf(self) -> str:
        """The CSRF token of the sign-in form (its cookie set on the way)."""
        form = (await self.get("/reports/sign-in")).page
        return form.one("input", name="csrf").attrs["value"]

    async def sign_in(self, api_key: str, **headers: str) -> Answer:
        token = self.cookies.get("clarion_csrf") or await self.csrf()
        return await self.request(
            "POST",
            "/reports/sign-in",
            data={"api_key": api_key, "csrf": token},
            headers={"Origin": self.base_url, **headers},
        )


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


# --- a site with a sent campaign -------------------------------------------------------


@dataclass
class Shop:
    site_id: str
    api_key: str
    campaign_id: str  # sent to three: one sent and viewed and clicked, one viewed, one 410
    draft_id: str  # never sent
    sent_to: list[str]
    gone: str

    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    async with running_simulator() as sim:
        yield sim


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def campaigns(stack: Stack) -> AsyncIterator[campaign_service_pb2_grpc.CampaignServiceStub]:
    async with client_channel(stack.settings.campaign_address) as channel:
        yield campaign_service_pb2_grpc.CampaignServiceStub(channel)


async def register(stack: Stack, simulator: PushServiceSimulator, api_key: str, vapid: bytes):
    subscription = simulator.mint_subscription(application_server_key=vapid)
    registered = await stack.segment.RegisterSubscriber(
        segment_service_pb2.RegisterSubscriberRequest(
            push_subscription=common_pb2.PushSubscription(
                endpoint=subscription.endpoint,
                p256dh=subscription.p256dh,
                auth=subscription.auth,
            ),
            browser=common_pb2.BROWSER_FIREFOX,
            timezone="UTC",
        ),
        metadata=bearer(api_key),
    )
    return subscription, registered.subscriber.subscriber_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shop(stack: Stack, simulator: PushServiceSimulator, campaigns) -> Shop:
    site = await create_site(stack.settings, "Report pages shop", "mailto:ops@pages.test")
    auth = bearer(site.api_key)
    ids = []
    for n in range(3):
        subscription, subscriber_id = await register(
            stack, simulator, site.api_key, site.vapid_public_key
        )
        if n == 2:
            simulator.set_behaviour(subscription.endpoint, Behaviour(status=410))
        ids.append(subscriber_id)
    campaign = await new_campaign(campaigns, auth, title="Spring sale", name="Spring sale")
    draft = await new_campaign(campaigns, auth, title="Later", name="Autumn draft")
    run = await send_now(campaigns, auth, campaign.campaign_id)
    run = await eventually(
        lambda: get_run(campaigns, auth, run.run_id), finished, what="the run to finish"
    )
    assert (run.progress.sent, run.progress.failed) == (2, 1), run.progress
    kinds = [
        (ids[0], common_pb2.ENGAGEMENT_KIND_VIEWED),
        (ids[0], common_pb2.ENGAGEMENT_KIND_CLICKED),
        (ids[1], common_pb2.ENGAGEMENT_KIND_VIEWED),
    ]
    await stack.reporting_internal.RecordEngagementEvents(
        reporting_internal_service_pb2.RecordEngagementEventsRequest(
            events=[
                reporting_pb2.EngagementEvent(
                    run_id=run.run_id,
                    campaign_id=campaign.campaign_id,
                    subscriber_id=subscriber_id,
                    kind=kind,
                )
                for subscriber_id, kind in kinds
            ]
        ),
        metadata=stack.internal(site.site_id),
    )
    return Shop(
        site.site_id, site.api_key, campaign.campaign_id, draft.campaign_id, ids[:2], ids[2]
    )


@pytest_asyncio.fixture(loop_scope="session")
async def reader(stack: Stack) -> Reader:
    return Reader(stack.http, stack.gateway.url)


@pytest_asyncio.fixture(loop_scope="session")
async def signed_in(reader: Reader, shop: Shop) -> Reader:
    assert (await reader.sign_in(shop.api_key)).status == 303
    return reader


async def report_of(stack: Stack, shop: Shop) -> reporting_pb2.CampaignReport:
    response = await stack.reporting.GetCampaignReport(
        reporting_pb.GetCampaignReportRequest(campaign_id=shop.campaign_id), metadata=shop.auth()
    )
    return response.report


# --- sign-in ---------------------------------------------------------------------------


class TestSignIn:
    async def test_the_form_asks_for_the_key_as_a_password_with_a_csrf_token(self, reader):
        answer = await reader.get("/reports/sign-in")

        assert answer.status == 200
        key = answer.page.one("input", name="api_key")
        assert (key.attrs["type"], key.attrs["autocomplete"]) == ("password", "off")
        assert answer.page.one("label", **{"for": "api_key"}).text() == "Site API key"
        csrf_cookie = answer.set_cookies["clarion_csrf"]
        assert {"httponly", "samesite", "path"} <= attributes(csrf_cookie)
        assert "SameSite=Strict" in csrf_cookie and "Path=/reports" in csrf_cookie
        assert (
            answer.page.one("input", name="csrf").attrs["value"] == reader.cookies["clarion_csrf"]
        )

    async def test_a_wrong_key_is_401_and_the_form_again_and_never_logged(
        self, reader, shop, capfd
    ):
        wrong = "ck_" + uuid.uuid4().hex + "wrong"

        answer = await reader.sign_in(wrong)

        assert answer.status == 401
        assert "not accepted" in answer.page.one("p", role="alert").text()
        assert answer.page.all("input", name="api_key")
        assert "clarion_reports" not in answer.set_cookies
        assert wrong not in answer.text
        captured = capfd.readouterr()
        assert wrong not in captured.out + captured.err

    async def test_the_right_key_signs_in_with_a_strict_http_only_cookie(self, reader, shop, capfd):
        answer = await reader.sign_in(shop.api_key)

        assert answer.status == 303
        assert answer.headers["Location"] == "/reports/"
        cookie = answer.set_cookies["clarion_reports"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/reports" in cookie
        assert "Max-Age=28800" in cookie
        assert "secure" not in attributes(cookie)  # plain http here
        assert (await reader.get("/reports/")).status == 200
        captured = capfd.readouterr()
        assert shop.api_key not in captured.out + captured.err

    async def test_behind_https_the_cookie_is_secure(self, reader, shop):
        answer = await reader.sign_in(
            shop.api_key, **{"X-Forwarded-Proto": "https", "Origin": "https" + reader.base_url[4:]}
        )

        assert answer.status == 303
        assert "secure" in attributes(answer.set_cookies["clarion_reports"])

    async def test_a_post_without_the_csrf_field_is_403(self, reader, shop):
        await reader.csrf()

        answer = await reader.request("POST", "/reports/sign-in", data={"api_key": shop.api_key})

        assert answer.status == 403
        assert "Reload the page" in answer.text
        assert "clarion_reports" not in answer.set_cookies

    async def test_a_csrf_field_that_is_not_the_cookies_is_403(self, reader, shop):
        await reader.csrf()

        answer = await reader.request(
            "POST", "/reports/sign-in", data={"api_key": shop.api_key, "csrf": "A" * 43}
        )

        assert answer.status == 403

    async def test_a_post_from_another_origin_is_403(self, reader, shop):
        token = await reader.csrf()

        answer = await reader.request(
            "POST",
            "/reports/sign-in",
            data={"api_key": shop.api_key, "csrf": token},
            headers={"Origin": "https://evil.example"},
        )

        assert answer.status == 403
        assert "another site" in answer.text

    async def test_a_browser_saying_cross_site_is_403(self, reader, shop):
        token = await reader.csrf()

        answer = await reader.request(
            "POST",
            "/reports/sign-in",
            data={"api_key": shop.api_key, "csrf": token},
            headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        )

        assert answer.status == 403

    async def test_a_null_origin_from_our_own_page_signs_in(self, reader, shop):
        # What a browser sends for the form under Referrer-Policy: no-referrer.
        answer = await reader.sign_in(
            shop.api_key, **{"Origin": "null", "Sec-Fetch-Site": "same-origin"}
        )

        assert answer.status == 303

    async def test_a_page_without_a_session_goes_to_the_sign_in_form(self, reader, shop):
        for path in ("/reports/", f"/reports/campaigns/{shop.campaign_id}"):
            answer = await reader.get(path)
            assert (answer.status, answer.headers["Location"]) == (303, "/reports/sign-in")

    async def test_signing_out_clears_the_cookie(self, signed_in):
        page = (await signed_in.get("/reports/")).page
        token = page.one("form", action="/reports/sign-out").one("input", name="csrf")

        answer = await signed_in.request(
            "POST",
            "/reports/sign-out",
            data={"csrf": token.attrs["value"]},
            headers={"Origin": signed_in.base_url},
        )

        assert answer.status == 303
        assert "Max-Age=0" in answer.set_cookies["clarion_reports"]
        assert (await signed_in.get("/reports/")).status == 303


# --- pages -----------------------------------------------------------------------------


class TestPages:
    async def test_every_page_carries_the_security_headers_and_no_cors(self, signed_in, shop):
        campaign = f"/reports/campaigns/{shop.campaign_id}"
        for path in (
            "/reports/",
            campaign,
            f"{campaign}/plan",
            f"{campaign}/why?subscriber_id={shop.gone}",
        ):
            answer = await signed_in.get(path)
            assert answer.status == 200, path
            assert answer.headers["Content-Security-Policy"] == pages.CONTENT_SECURITY_POLICY
            assert answer.headers["Cache-Control"] == "no-store"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["Referrer-Policy"] == "no-referrer"
            assert "Access-Control-Allow-Origin" not in answer.headers
            page = answer.page
            assert page.one("html").attrs["lang"] == "en"
            assert page.one("main").attrs["id"] == "main"
            assert page.one("a", **{"class": "skip-link"}).attrs["href"] == "#main"
            # CSP allows no inline script or style: the only inline script is data.
            assert not page.all("style") and "style=" not in answer.text
            assert all(
                s.attrs.get("src") or s.attrs.get("type") == "application/json"
                for s in page.all("script")
            )

    async def test_the_list_shows_the_sent_campaign_with_the_reports_numbers(
        self, stack, signed_in, shop
    ):
        report = await report_of(stack, shop)

        answer = await signed_in.get("/reports/")

        rows = {
            row.attrs["data-campaign-id"]: [c.text() for c in row.children if isinstance(c, Node)]
            for row in answer.page.one("table").all("tr")
            if "data-campaign-id" in row.attrs
        }
        name, status, schedule, last_sent, audience, sent, ctr = rows[shop.campaign_id]
        assert name == "Spring sale"
        assert schedule == "When sent by hand"
        assert (audience, sent) == (str(report.audience), str(report.sent)) == ("3", "2")
        assert ctr == words.percent(report.click_through_rate) == "50.00%"
        assert last_sent.endswith("UTC")
        assert rows[shop.draft_id][3:] == ["—"] * 4
        assert answer.page.one("p", **{"class": "site-name"}).text() == "Site: Report pages shop"

    async def test_more_campaigns_than_a_page_have_a_next_page_link(self, stack, campaigns):
        site = await create_site(stack.settings, "Busy shop", "mailto:ops@busy.test")
        for n in range(21):
            await new_campaign(campaigns, bearer(site.api_key), name=f"Campaign {n}")
        reader = Reader(stack.http, stack.gateway.url)
        await reader.sign_in(site.api_key)

        first = (await reader.get("/reports/")).page
        link = first.one("a", rel="next").attrs["href"]
        second = (await reader.get(link)).page

        names = [row[0] for page in (first, second) for row in page.one("table").rows()]
        assert sorted(names) == sorted(f"Campaign {n}" for n in range(21))
        assert len(first.one("table").rows()) == 20
        assert not second.all("a", rel="next")
        assert (await reader.get("/reports/?page=not-a-token")).status == 400

    async def test_the_report_shows_the_funnel_and_a_timeline_the_chart_can_read(
        self, stack, signed_in, shop
    ):
        report = await report_of(stack, shop)

        page = (await signed_in.get(f"/reports/campaigns/{shop.campaign_id}")).page

        funnel = {row[0]: row[1:] for row in page.one("table", id="funnel").rows()}
        assert funnel == {
            "Audience": [str(report.audience), "—"],
            "Sent": [str(report.sent), "100.00%"],
            "Viewed": [str(report.viewed), words.share(report.viewed, report.sent)],
            "Clicked": [str(report.clicked), words.share(report.clicked, report.sent)],
            "Converted": [str(report.conversions), words.share(report.conversions, report.sent)],
        }
        assert (report.sent, report.viewed, report.clicked) == (2, 2, 1)
        data = json.loads(page.one("script", id="timeline-data").text())
        assert {len(series) for series in data["series"].values()} == {len(data["hours"])}
        assert set(data["series"]) == {"sent", "viewed", "clicked", "converted"}
        assert sum(data["series"]["sent"]) == report.sent
        assert all(hour % 3600 == 0 for hour in data["hours"])
        assert page.one("figure").all("div", id="timeline-chart")
        assert page.one("details").one("table", id="timeline-table").rows()
        [run] = page.one("table", id="runs").rows()
        assert run[1:6] == ["3", "2", "2", "1", "50.00%"]
        reasons = page.one("table", id="reasons").rows()
        assert reasons == [["Failed", "Subscription gone (410)", "1"]]
        assert "No control group." in page.text()
        assert page.one("a", href=f"/reports/campaigns/{shop.campaign_id}/plan")

    async def test_a_campaign_never_sent_says_so(self, signed_in, shop):
        answer = await signed_in.get(f"/reports/campaigns/{shop.draft_id}")

        assert answer.status == 200
        main = answer.page.one("main")
        assert "Not sent yet" in main.text()
        assert "No runs yet." in main.text()
        assert main.all("form", action=f"/reports/campaigns/{shop.draft_id}/why")

    async def test_another_sites_campaign_is_a_404_page(self, stack, reader, shop):
        other = await create_site(stack.settings, "Other shop", "mailto:ops@other.test")
        assert (await reader.sign_in(other.api_key)).status == 303

        for suffix in ("", "/plan", f"/why?subscriber_id={shop.sent_to[0]}"):
            answer = await reader.get(f"/reports/campaigns/{shop.campaign_id}{suffix}")
            assert answer.status == 404, suffix
            assert answer.page.one("h1").text() == "Not found"
            assert "Traceback" not in answer.text

    async def test_the_why_page_shows_each_recipients_final_state(self, signed_in, shop):
        sent = (
            await signed_in.get(
                f"/reports/campaigns/{shop.campaign_id}/why?subscriber_id={shop.sent_to[0]}"
            )
        ).page
        gone = (
            await signed_in.get(
                f"/reports/campaigns/{shop.campaign_id}/why?subscriber_id={shop.gone}&profile_id="
            )
        ).page

        [trail] = sent.all("section", **{"class": "trail"})
        assert trail.one("div", **{"class": "final-state"}).text() == "Final state Sent"
        assert "Clicked" in trail.text() and "the notification" in trail.text()
        [trail] = gone.all("section", **{"class": "trail"})
        assert trail.one("div", **{"class": "final-state"}).text() == (
            "Final state Failed: Subscription gone (410)"
        )
        assert "410" in [row[1] for row in trail.one("table").rows()]

    @pytest.mark.parametrize(
        ("query", "named"),
        [
            ("", "subscriber_id"),
            ("?subscriber_id=has%20space", "subscriber_id"),
            ("?profile_id=line%0Abreak", "profile_id"),
            ("?subscriber_id=a&profile_id=b", "profile_id"),
        ],
    )
    async def test_a_missing_or_malformed_person_is_a_400_naming_the_field(
        self, signed_in, shop, query, named
    ):
        answer = await signed_in.get(f"/reports/campaigns/{shop.campaign_id}/why{query}")

        assert answer.status == 400
        assert named in answer.page.one("p", **{"class": "error-message"}).text()

    async def test_the_plan_page_shows_the_previews_totals(self, signed_in, shop, campaigns):
        preview = await campaigns.PreviewCampaign(
            campaign_service_pb2.PreviewCampaignRequest(campaign_id=shop.campaign_id),
            metadata=shop.auth(),
        )

        page = (await signed_in.get(f"/reports/campaigns/{shop.campaign_id}/plan")).page

        totals = {
            dd.attrs["data-total"]: dd.text() for dd in page.all("dd") if "data-total" in dd.attrs
        }
        assert totals == {
            "audience": str(preview.plan.audience),
            "sent": str(sum(row.sent for row in preview.plan.rows)),
            "suppressed": "0",
        }
        assert preview.plan.audience == 2  # the 410 subscriber was pruned
        rows = page.one("table", id="plan-rows").rows()
        assert [row[1:4] for row in rows] == [["Firefox", "—", "2"]]

    async def test_unknown_pages_are_html_404s(self, signed_in):
        for path in ("/reports/nothing", "/reports/campaigns/bad%20id"):
            answer = await signed_in.get(path)
            assert answer.status == 404, path
            assert answer.headers["Content-Type"].startswith("text/html")


class TestOutages:
    async def test_reporting_down_is_a_503_page_not_a_traceback(self, stack, shop, tmp_path):
        server, peers = await serve_pages(stack, tmp_path, reporting_address=closed_port_address())
        try:
            reader = Reader(stack.http, str(server.make_url("")).rstrip("/"))
            assert (await reader.sign_in(shop.api_key)).status == 303
            answer = await reader.get("/reports/")
        finally:
            await server.close()
            await peers.close()

        assert answer.status == 503
        assert answer.page.one("h1").text() == "Service unavailable"
        assert "Traceback" not in answer.text

    async def test_campaign_down_is_a_503_page_at_sign_in(self, stack, shop, tmp_path):
        server, peers = await serve_pages(stack, tmp_path, campaign_address=closed_port_address())
        try:
            answer = await Reader(stack.http, str(server.make_url("")).rstrip("/")).sign_in(
                shop.api_key
            )
        finally:
            await server.close()
            await peers.close()

        assert answer.status == 503
        assert shop.api_key not in answer.text


class TestWords:
    @pytest.mark.parametrize(
        ("campaign", "said"),
        [
            (campaign_pb2.Campaign(), "When sent by hand"),
            (
                campaign_pb2.Campaign(
                    schedule=campaign_pb2.Schedule(at=Timestamp(seconds=1800000000))
                ),
                "Once at 2027-01-15 08:00 UTC",
            ),
            (
                campaign_pb2.Campaign(
                    schedule=campaign_pb2.Schedule(
                        recurrence=campaign_pb2.Recurrence(
                            rule="FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=30",
                            timezone="Europe/Berlin",
                        )
                    )
                ),
                "Every week on Mon, Thu at 09:30 (Europe/Berlin)",
            ),
            (
                campaign_pb2.Campaign(
                    schedule=campaign_pb2.Schedule(
                        recurrence=campaign_pb2.Recurrence(rule="FREQ=MONTHLY;BYSETPOS=-1")
                    )
                ),
                "Recurring: FREQ=MONTHLY;BYSETPOS=-1 (UTC)",
            ),
            (
                campaign_pb2.Campaign(
                    trigger=campaign_pb2.Trigger(
                        event_name="Added To Cart",
                        inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=3600),
                    )
                ),
                "Live: when “Added To Cart” happens, if no “Charged” follows within 1 h",
            ),
        ],
    )
    def test_a_schedule_in_words(self, campaign, said):
        assert words.schedule(campaign) == said


# --- a rotated key ends the session ----------------------------------------------------


class TestRotatedKey:
    async def test_the_old_cookie_goes_to_sign_in_once_the_cache_expires(self, stack):
        clock = FrozenClock()
        gateway = await create_gateway("127.0.0.1:0", stack.settings, clock=clock)
        await gateway.start()
        site = await create_site(stack.settings, "Rotating shop", "mailto:ops@rotate.test")
        try:
            reader = Reader(stack.http, gateway.url)
            assert (await reader.sign_in(site.api_key)).status == 303
            async with client_channel(stack.settings.campaign_address) as channel:
                rotated = await site_service_pb2_grpc.SiteServiceStub(channel).RotateApiKey(
                    site_service_pb2.RotateApiKeyRequest(), metadata=bearer(site.api_key)
                )

            # Still trusted for the cache's 30 s ...
            clock.advance(seconds=29)
            assert (await reader.get("/reports/")).status == 200
            # ... and not a moment after.
            clock.advance(seconds=2)
            answer = await reader.get("/reports/")
            assert (answer.status, answer.headers["Location"]) == (303, "/reports/sign-in")
            assert "Max-Age=0" in answer.set_cookies["clarion_reports"]
            assert (await reader.sign_in(site.api_key)).status == 401
            assert (await reader.sign_in(rotated.api_key)).status == 303
        finally:
            await gateway.stop()


# --- the built script and stylesheet ---------------------------------------------------

SCRIPT, STYLESHEET = "reports-0123abcd.js", "reports-4567cdef.css"


async def serve_pages(
    stack: Stack,
    static_dir: Path,
    sign_in_failures: TokenBuckets | None = None,
    **addresses: str,
) -> tuple[TestServer, Peers]:
    """The report pages alone on a bare app, with `static_dir` as their assets (and
    services at other `addresses`, e.g. reporting_address=)."""
    peers = Peers(stack.settings.model_copy(update=addresses))
    app = web.Application()
    pages.install(
        app, peers, peers.metadata, static_dir=static_dir, sign_in_failures=sign_in_failures
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, peers


class TestSignInAttempts:
    async def test_refused_keys_are_slowed_per_address_and_the_right_key_waits_too(
        self, stack, shop, tmp_path
    ):
        now = [0.0]
        failures = TokenBuckets(burst=3, refill_per_second=0.1, monotonic=lambda: now[0])
        server, peers = await serve_pages(stack, tmp_path, sign_in_failures=failures)
        try:
            guesser = Reader(stack.http, str(server.make_url("")).rstrip("/"))
            answers = [await guesser.sign_in(f"ck_guess{i}") for i in range(4)]
            blocked_right_key = await guesser.sign_in(shop.api_key)
            now[0] += 10.0  # one refused key may be tried again every 10 s
            after_wait = await guesser.sign_in(shop.api_key)
        finally:
            await server.close()
            await peers.close()

        assert [a.status for a in answers] == [401, 401, 401, 429]
        assert "Too many sign-in attempts" in answers[3].text
        assert answers[3].headers["Retry-After"] == "10"
        assert blocked_right_key.status == 429
        assert "clarion_reports" not in blocked_right_key.set_cookies
        assert after_wait.status == 303
        assert "clarion_reports" in after_wait.set_cookies


class TestStatic:
    @pytest_asyncio.fixture(loop_scope="session")
    async def built(self, stack, tmp_path) -> AsyncIterator[Reader]:
        (tmp_path / SCRIPT).write_text("console.log('chart');")
        (tmp_path / STYLESHEET).write_text("body{color:#111}")
        (tmp_path / "secret.txt").write_text("not listed")
        (tmp_path / "manifest.json").write_text(
            json.dumps({"reports.js": SCRIPT, "reports.css": STYLESHEET})
        )
        server, peers = await serve_pages(stack, tmp_path)
        try:
            yield Reader(stack.http, str(server.make_url("")).rstrip("/"))
        finally:
            await server.close()
            await peers.close()

    async def test_listed_files_are_served_immutable_with_their_type(self, built):
        script = await built.get(f"/reports/static/{SCRIPT}")
        stylesheet = await built.get(f"/reports/static/{STYLESHEET}")

        assert (script.status, script.text) == (200, "console.log('chart');")
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert stylesheet.headers["Content-Type"].startswith("text/css")
        for answer in (script, stylesheet):
            assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"

    @pytest.mark.parametrize(
        "name",
        [
            "secret.txt",
            "manifest.json",
            "reports-ffffffff.js",
            "..%2Fmanifest.json",
            "%2E%2E%2F%2E%2E%2Fapp.py",
            ".manifest.json",
        ],
    )
    async def test_anything_else_is_404(self, built, name):
        answer = await built.get(f"/reports/static/{name}")

        assert answer.status == 404
        assert answer.headers["Cache-Control"] == "no-store"

    async def test_a_climb_out_of_the_directory_is_404(self, built):
        async with built.http.get(
            aiohttp.client.URL(
                built.base_url + "/reports/static/../pages/__init__.py", encoded=True
            ),
            allow_redirects=False,
        ) as response:
            assert response.status == 404

    async def test_pages_link_the_manifests_files(self, built):
        page = (await built.get("/reports/sign-in")).page

        assert page.one("link", rel="stylesheet").attrs["href"] == f"/reports/static/{STYLESHEET}"
        assert page.one("script").attrs["src"] == f"/reports/static/{SCRIPT}"
        assert not page.all("p", **{"class": "notice"})

    async def test_without_a_build_the_pages_say_so_and_still_work(self, stack, tmp_path):
        server, peers = await serve_pages(stack, tmp_path)
        try:
            reader = Reader(stack.http, str(server.make_url("")).rstrip("/"))
            answer = await reader.get("/reports/sign-in")
        finally:
            await server.close()
            await peers.close()

        assert answer.status == 200
        notice = answer.page.one("p", **{"class": "notice"}).text()
        assert "chart assets are not built: run make web" in notice.lower()
        assert not answer.page.all("script") and not answer.page.all("link")
