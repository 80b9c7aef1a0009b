"""`clarion demo --scenario webhooks`: engagement from simulated browsers reaches a
site's webhook receiver, signed, once each, and agrees with the campaign's report.

Starts the embedded stack and the push-service simulator, creates a site and a local
webhook receiver (aiohttp on 127.0.0.1, in this process; reporting may reach it through
CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES, set for the demo's stack only) that checks each
request's signature with the standardwebhooks library, and registers it as the site's
endpoint for View, Click and Close. N browsers subscribe through the gateway; a campaign
with two buttons and UTM parameters is sent to them. Each browser then does what a
service worker does with the push it decrypted: reports it viewed, and (seeded) clicks
its body or one of its buttons, or closes it, through the gateway's events API with the
run, subscriber and engagement token from the push; every other click goes through the
gateway's click redirect (`GET /c/{token}`) instead, and must be redirected to where that
button leads. A few forged events (another browser's token, an altered token, a token
for another run) are sent too; the gateway must refuse each, and none may reach the receiver.

Printed: events expected (the genuine ones), webhooks received, signature failures
(must be 0), forged sent and forged accepted (must be 0), the report's viewed, clicked,
closed and clicks per button next to the receiver's counts (must be equal), the UTM
parameters and title the webhooks carried against the campaign's, and elapsed_s. The
exit status is 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.demo import register_browsers, wait_for_report, wait_for_run
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import (
    reporting_service_pb2,
    reporting_service_pb2_grpc,
    webhook_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

DEFAULT_BROWSERS = 120
CONCURRENCY = 16
CLICK_SHARE = 0.45
CLOSE_SHARE = 0.25  # of the rest after clicks: the others only view
FORGED = 6
WEBHOOK_WAIT_SECONDS = 60.0
SETTLE_SECONDS = 1.0
UTM = {
    "source": "clarion",
    "medium": "push",
    "campaign": "webhooks-demo",
    "content": "two-buttons",
    "term": "hooks",
}
TITLE = "Webhooks, end to end"
BUTTONS = ("", "action_1", "action_2")  # the body, then the two actions
CLICK_TARGETS = {
    "": "https://shop.example/new?ref=push",
    "action_1": "https://shop.example/sale",
    "action_2": "https://shop.example/later",
}
ALLOW_PRIVATE = "CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"


@dataclass
class DemoReceiver:
    """Keeps every verified webhook's JSON by webhook-id; counts the rest."""

    secret: str = ""
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    signature_failures: int = 0
    redelivered: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/clarion"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/clarion", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            self.signature_failures += 1
            return web.Response(status=400, text="bad signature")
        webhook_id = headers["webhook-id"]
        if webhook_id in self.bodies:
            self.redelivered += 1
        self.bodies[webhook_id] = dict(payload)
        self._arrived.set()
        return web.Response(status=200, text="ok")

    def keys(self) -> Counter[tuple[str, str, int]]:
        """(subscriber, action, clicked_button) of each webhook-id received."""
        return Counter(
            (str(b["cookie_id"]), str(b["action"]), int(b["clicked_button"]))
            for b in self.bodies.values()
        )

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 0.2)


@contextlib.contextmanager
def _private_webhooks_allowed() -> Iterator[None]:
    """Reporting reads this when it starts: the receiver is on 127.0.0.1."""
    before = os.environ.get(ALLOW_PRIVATE)
    os.environ[ALLOW_PRIVATE] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_PRIVATE, None)
        else:
            os.environ[ALLOW_PRIVATE] = before


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[tuple[EmbeddedStack, Any]]:
    from clarion.simulator import PushServiceSimulator

    settings.allow_insecure_endpoints = True  # the simulator listens on plain http
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    stack = None
    try:
        with _private_webhooks_allowed():
            stack = await EmbeddedStack.start(settings, ephemeral_ports=True)
        yield stack, simulator
    finally:
        if stack is not None:
            await stack.stop()
        await simulator.stop()


def _campaign_request() -> campaign_service_pb2.CreateCampaignRequest:
    return campaign_service_pb2.CreateCampaignRequest(
        name="Webhooks demo",
        notification=common_pb2.Notification(
            title=TITLE,
            body="Every view, click and close reaches your receiver, signed",
            target_url=CLICK_TARGETS[""],
            actions=[
                common_pb2.NotificationAction(title="Shop now", url=CLICK_TARGETS["action_1"]),
                common_pb2.NotificationAction(title="Later", url=CLICK_TARGETS["action_2"]),
            ],
        ),
        utm=campaign_pb2.UtmParameters(**UTM),
        ttl_seconds=3600,
        urgency=common_pb2.URGENCY_NORMAL,
        labels=["demo", "webhooks"],
    )


@dataclass(frozen=True)
class Engagement:
    subscriber_id: str
    kind: str  # viewed, clicked, closed
    button: str = ""
    via_redirect: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        action = {"viewed": "View", "clicked": "Click", "closed": "Close"}[self.kind]
        return self.subscriber_id, action, BUTTONS.index(self.button) if self.button else 0


def plan_engagement(subscriber_ids: list[str], rng: random.Random) -> list[Engagement]:
    """A view from every browser; then a click (body or a button) or a close, or nothing.
    Every other click goes through the gateway's click redirect."""
    planned: list[Engagement] = []
    clicks = 0
    for subscriber_id in subscriber_ids:
        planned.append(Engagement(subscriber_id, "viewed"))
        draw = rng.random()
        if draw < CLICK_SHARE:
            button = BUTTONS[clicks % len(BUTTONS)]
            planned.append(Engagement(subscriber_id, "clicked", button, clicks % 2 == 1))
            clicks += 1
        elif draw < CLICK_SHARE + (1 - CLICK_SHARE) * CLOSE_SHARE:
            planned.append(Engagement(subscriber_id, "closed"))
    return planned


def forged_events(
    payloads: dict[str, dict[str, Any]], planned: list[Engagement], count: int
) -> list[tuple[dict[str, str], tuple[str, str, int]]]:
    """Clicks on button 2 by browsers that made no click, each with a token that must not
    verify: another browser's, one with altered characters, or theirs for another run."""
    clicked = {e.subscriber_id for e in planned if e.kind == "clicked"}
    idle = [s for s in payloads if s not in clicked]
    forged = []
    for index, subscriber_id in enumerate(idle[:count]):
        payload = payloads[subscriber_id]
        event = {
            "kind": "clicked",
            "run_id": str(payload["run_id"]),
            "campaign_id": str(payload["campaign_id"]),
            "subscriber_id": subscriber_id,
            "button": "action_2",
            "engagement_token": str(payload["engagement_token"]),
        }
        if index % 3 == 0:  # another browser's token
            other = next(s for s in payloads if s != subscriber_id)
            event["engagement_token"] = str(payloads[other]["engagement_token"])
        elif index % 3 == 1:  # altered
            token = event["engagement_token"]
            event["engagement_token"] = ("A" if token[0] != "A" else "B") + token[1:]
        else:  # genuine, for a run this browser was not sent
            event["run_id"] = "run_forged_elsewhere"
        forged.append((event, (subscriber_id, "Click", 2)))
    return forged


async def report_engagement(
    session: aiohttp.ClientSession,
    gateway_url: str,
    site_id: str,
    payloads: dict[str, dict[str, Any]],
    planned: list[Engagement],
) -> list[str]:
    """What the service workers send; returns what went wrong (nothing, in a good run)."""
    from services.kit.tokens import click_path

    semaphore = asyncio.Semaphore(CONCURRENCY)
    problems: list[str] = []

    async def send(engagement: Engagement) -> None:
        payload = payloads[engagement.subscriber_id]
        async with semaphore:
            if engagement.via_redirect:
                path = click_path(
                    site_id,
                    str(payload["run_id"]),
                    engagement.subscriber_id,
                    str(payload["engagement_token"]),
                    BUTTONS.index(engagement.button),
                )
                async with session.get(f"{gateway_url}{path}", allow_redirects=False) as answer:
                    # A recorded click goes where that button leads (with the UTM
                    # parameters); one not recorded, to the site's home page.
                    to = answer.headers.get("location", "")
                    if answer.status not in (302, 303, 307) or not to.startswith(
                        CLICK_TARGETS[engagement.button]
                    ):
                        problems.append(f"click redirect answered {answer.status} to {to!r}")
                return
            event = {
                "kind": engagement.kind,
                "run_id": str(payload["run_id"]),
                "campaign_id": str(payload["campaign_id"]),
                "subscriber_id": engagement.subscriber_id,
                "engagement_token": str(payload["engagement_token"]),
            }
            if engagement.button:
                event["button"] = engagement.button
            async with session.post(
                f"{gateway_url}/v1/sites/{site_id}/events", json=event
            ) as answer:
                if answer.status != 202:
                    problems.append(
                        f"gateway refused an event: {answer.status} {await answer.text()}"
                    )

    await asyncio.gather(*(send(e) for e in planned))
    return problems


async def run_webhooks_demo(
    browsers: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    seed: int = 11,
    timeout_seconds: float = 120.0,
) -> dict[str, Any]:
    from services.campaign.admin import create_site

    started = time.monotonic()
    settings = settings or Settings(data_dir=data_dir, log_level="WARNING", log_format="console")
    rng = random.Random(seed)
    receiver = DemoReceiver()
    await receiver.start()
    try:
        async with _running(settings) as (stack, simulator):
            site = await create_site(settings, "Webhooks demo", "mailto:demo@clarion.invalid")
            metadata = (("authorization", f"Bearer {site.api_key}"),)
            channels = [client_channel(stack.address(name)) for name in ("campaign", "reporting")]
            try:
                hooks = webhook_service_pb2_grpc.WebhookServiceStub(channels[1])
                created = await hooks.CreateWebhookEndpoint(
                    webhook_service_pb2.CreateWebhookEndpointRequest(
                        url=receiver.url,
                        event_types=(
                            webhook_pb2.WEBHOOK_EVENT_TYPE_VIEW,
                            webhook_pb2.WEBHOOK_EVENT_TYPE_CLICK,
                            webhook_pb2.WEBHOOK_EVENT_TYPE_CLOSE,
                        ),
                        request_id="webhooks-demo",
                    ),
                    metadata=metadata,
                    timeout=30,
                )
                receiver.secret = created.secret
                progress(f"site {site.site_id}; webhook endpoint {created.endpoint.endpoint_id}")

                subscriptions = [simulator.mint_subscription() for _ in range(browsers)]
                async with aiohttp.ClientSession() as session:
                    subscriber_ids = await register_browsers(
                        session, stack.gateway_url, site.site_id, subscriptions
                    )
                campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels[0])
                campaign = (
                    await campaigns.CreateCampaign(
                        _campaign_request(), metadata=metadata, timeout=30
                    )
                ).campaign
                run = (
                    await campaigns.SendCampaignNow(
                        campaign_service_pb2.SendCampaignNowRequest(
                            campaign_id=campaign.campaign_id
                        ),
                        metadata=metadata,
                        timeout=30,
                    )
                ).run
                progress(f"campaign {campaign.campaign_id} sent as run {run.run_id}")
                await wait_for_run(campaigns, run.run_id, metadata, progress, timeout_seconds)
                await wait_for_report(stack, campaign.campaign_id, metadata, timeout_seconds)

                payloads: dict[str, dict[str, Any]] = {}
                for subscription in subscriptions:
                    for message in simulator.messages(subscription.endpoint):
                        payload = message.payload()
                        if payload and payload.get("run_id") == run.run_id:
                            payloads[str(payload["subscriber_id"])] = payload
                planned = plan_engagement([s for s in subscriber_ids if s in payloads], rng)
                forged = forged_events(payloads, planned, FORGED)
                progress(
                    f"{len(payloads)} browsers report {len(planned)} events "
                    f"({sum(e.via_redirect for e in planned)} clicks through the redirect), "
                    f"and {len(forged)} forged ones"
                )
                forged_accepted_http = 0
                async with aiohttp.ClientSession() as session:
                    problems = await report_engagement(
                        session, stack.gateway_url, site.site_id, payloads, planned
                    )
                    for event, _ in forged:
                        async with session.post(
                            f"{stack.gateway_url}/v1/sites/{site.site_id}/events", json=event
                        ) as answer:
                            if answer.status < 300:
                                forged_accepted_http += 1

                expected = Counter(e.key for e in planned)
                await receiver.wait_for(len(expected), WEBHOOK_WAIT_SECONDS)
                await asyncio.sleep(SETTLE_SECONDS)  # anything extra would show by now

                reports = reporting_service_pb2_grpc.ReportingServiceStub(channels[1])
                report = (
                    await reports.GetCampaignReport(
                        reporting_service_pb2.GetCampaignReportRequest(
                            campaign_id=campaign.campaign_id
                        ),
                        metadata=metadata,
                        timeout=30,
                    )
                ).report
            finally:
                for channel in channels:
                    await channel.close()
    finally:
        await receiver.stop()

    return summarize(
        receiver=receiver,
        planned=planned,
        expected=expected,
        forged=forged,
        forged_accepted_http=forged_accepted_http,
        report=report,
        problems=problems,
        elapsed=time.monotonic() - started,
    )


def _button_name(number: int) -> str:
    return BUTTONS[number] or "body"


def summarize(
    *,
    receiver: DemoReceiver,
    planned: list[Engagement],
    expected: Counter[tuple[str, str, int]],
    forged: list[tuple[dict[str, str], tuple[str, str, int]]],
    forged_accepted_http: int,
    report: Any,
    problems: list[str],
    elapsed: float,
) -> dict[str, Any]:
    received = receiver.keys()
    forged_keys = {key for _, key in forged}
    forged_accepted = max(forged_accepted_http, sum(1 for k in forged_keys if received[k]))
    counts = Counter(action for _, action, _ in received.elements())
    clicks = Counter(_button_name(b) for _, action, b in received.elements() if action == "Click")
    receiver_counts = {
        "View": counts["View"],
        "Click": counts["Click"],
        "Close": counts["Close"],
        "Click_by_button": {name: clicks[name] for name in ("body", "action_1", "action_2")},
    }
    report_counts: dict[str, Any] = {
        "viewed": report.viewed,
        "clicked": report.clicked,
        "closed": report.closed,
    }
    equal = (
        report.viewed == counts["View"]
        and report.clicked == counts["Click"]
        and report.closed == counts["Close"]
    )
    if report.clicked_by_button:
        by_button = {(b.button or "body"): b.clicked for b in report.clicked_by_button}
        report_counts["clicked_by_button"] = by_button
        equal = equal and all(
            by_button.get(name, 0) == n for name, n in receiver_counts["Click_by_button"].items()
        )
    sample = next(
        (b for b in receiver.bodies.values() if b.get("action") == "Click"),
        next(iter(receiver.bodies.values()), {}),
    )
    webhook_utm = {
        name: sorted({str(b.get(f"utm_{name}", "")) for b in receiver.bodies.values()})
        for name in UTM
    }
    checks = {
        "every_event_received_once": received == expected,
        "no_signature_failures": receiver.signature_failures == 0,
        "no_forged_accepted": forged_accepted == 0,
        "report_equals_receiver": equal,
        "every_genuine_event_accepted": not problems,
    }
    return {
        "events_expected": sum(expected.values()),
        "webhooks_received": len(receiver.bodies),
        "webhook_requests": receiver.requests,
        "redelivered": receiver.redelivered,
        "signature_failures": receiver.signature_failures,
        "forged_sent": len(forged),
        "forged_accepted": forged_accepted,
        "clicks_through_redirect": sum(e.via_redirect for e in planned),
        "report": report_counts,
        "receiver": receiver_counts,
        "equal": equal,
        "campaign_utm": {f"utm_{k}": v for k, v in UTM.items()},
        "webhook_utm": {f"utm_{k}": v for k, v in webhook_utm.items()},
        "webhook_titles": sorted(
            {str(b.get("notification_title", "")) for b in receiver.bodies.values()}
        ),
        "webhook_sample": sample,
        "problems": problems[:5],
        "checks": checks,
        "ok": all(checks.values()),
        "elapsed_s": round(elapsed, 2),
    }


def main(browsers: int, data_dir: Path | None, as_json: bool) -> int:
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        result = asyncio.run(run_webhooks_demo(browsers, data_dir or Path(tmp), progress=progress))
    if as_json:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    else:
        for name in (
            "events_expected", "webhooks_received", "signature_failures", "forged_sent",
            "forged_accepted", "clicks_through_redirect", "equal", "elapsed_s",
        ):  # fmt: skip
            print(f"{name:>24}: {result[name]}")
        report, receiver = result["report"], result["receiver"]
        for figure, action in (("viewed", "View"), ("clicked", "Click"), ("closed", "Close")):
            print(f"{figure:>24}: report {report[figure]}, receiver {receiver[action]}")
        for name, count in receiver["Click_by_button"].items():
            in_report = report.get("clicked_by_button", {}).get(name, "-")
            print(f"{'clicks ' + name:>24}: report {in_report}, receiver {count}")
        print(f"{'webhook UTM':>24}: {json.dumps(result['webhook_utm'])}")
        print(f"{'campaign UTM':>24}: {json.dumps(result['campaign_utm'])}")
        print(f"{'webhook sample':>24}: {json.dumps(result['webhook_sample'], ensure_ascii=False)}")
    failed = [name for name, ok in result["checks"].items() if not ok]
    if failed:
        print(f"demo FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
