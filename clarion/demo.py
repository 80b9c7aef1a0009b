"""`clarion demo`: the walking skeleton end to end, measured.

Starts the embedded stack and the push-service simulator, creates a site, registers
N simulated browsers (the first thousand through the gateway, as the SDK would; the
rest through segment's batch import, as a migration from another provider would),
creates a campaign, sends it, waits until every recipient has an outcome in reporting,
and prints one JSON line with what the platform and the simulator each counted.
Browsers then report views and clicks through the gateway, with the engagement token
each push carried (at most the first thousand, to keep the demo short).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

REGISTER_CONCURRENCY = 32
# Browsers that subscribe (and later report engagement) through the gateway.
GATEWAY_BROWSERS = 1000
IMPORT_BATCH = 1000
# What a service worker takes from the push to report on it; the token proves to the
# gateway that this subscriber was sent this run.
_ENGAGEMENT_FIELDS = ("run_id", "campaign_id", "subscriber_id", "engagement_token")


@dataclass
class DemoResult:
    audience: int
    sent: int
    failed: int
    received: int
    decrypted: int
    # Accepted pushes a browser would drop, or might (the simulator's Problem codes)
    conformance_problems: int
    seconds: float
    send_call_seconds: float
    register_seconds: float
    viewed: int
    clicked: int
    click_through_rate: float

    def as_json(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "sent": self.sent,
            "failed": self.failed,
            "received": self.received,
            "decrypted": self.decrypted,
            "conformance_problems": self.conformance_problems,
            "seconds": round(self.seconds, 3),
            "send_call_seconds": round(self.send_call_seconds, 4),
            "msgs_per_s": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "register_seconds": round(self.register_seconds, 3),
            "viewed": self.viewed,
            "clicked": self.clicked,
            "ctr": round(self.click_through_rate, 4),
        }

    @property
    def ok(self) -> bool:
        return (
            self.audience == self.sent == self.received == self.decrypted
            and self.failed == 0
            and self.conformance_problems == 0
        )


async def register_browsers(
    session: aiohttp.ClientSession, gateway_url: str, site_id: str, subscriptions: list[Any]
) -> list[str]:
    """POSTs each PushSubscription.toJSON() to the gateway, as the browser SDK does."""
    semaphore = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def register(subscription: Any) -> str:
        async with semaphore:
            async with session.post(
                f"{gateway_url}/v1/sites/{site_id}/subscriptions",
                json={"subscription": subscription.to_json(), "browser": "chrome", "timezone": "UTC"},
            ) as response:
                body = await response.json()
                if response.status not in (200, 201):
                    raise RuntimeError(f"gateway refused a subscription: {response.status} {body}")
                return str(body["subscriber_id"])

    return await asyncio.gather(*(register(s) for s in subscriptions))


class MissingEngagementProof(RuntimeError):
    """A push reached the simulator without what a service worker needs to report it."""


def engagement_events(
    payloads: Iterable[dict[str, Any]], *, click_every: int = 10
) -> list[dict[str, str]]:
    """What the service workers post for these pushes: a view for each, and a click for
    every `click_every`-th. Each event names the run, subscriber and engagement token from
    the push itself, as a real service worker can only do."""
    events = []
    for index, payload in enumerate(payloads):
        missing = [key for key in _ENGAGEMENT_FIELDS if not payload.get(key)]
        if missing:
            raise MissingEngagementProof(
                f"a pushed payload has no {', '.join(missing)}; delivery must put them in "
                "each recipient's copy (see PushPayload in common.proto)"
            )
        base = {key: str(payload[key]) for key in _ENGAGEMENT_FIELDS}
        events.append({**base, "kind": "viewed"})
        if index % click_every == 0:
            events.append({**base, "kind": "clicked"})
    return events


async def report_engagement(
    session: aiohttp.ClientSession,
    gateway_url: str,
    site_id: str,
    simulator: Any,
    subscriptions: list[Any],
) -> None:
    """What each service worker does: read the decrypted push, report it shown (and clicked)."""
    semaphore = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def post(event: dict[str, str]) -> None:
        async with semaphore:
            async with session.post(f"{gateway_url}/v1/sites/{site_id}/events", json=event) as response:
                if response.status != 202:
                    raise RuntimeError(f"gateway refused an event: {response.status} {await response.text()}")

    payloads = []
    for subscription in subscriptions:
        for message in simulator.messages(subscription.endpoint):
            payload = message.payload()
            if payload is None:
                raise MissingEngagementProof("a push reached the simulator without a JSON payload")
            payloads.append(payload)
    await asyncio.gather(*(post(event) for event in engagement_events(payloads)))


async def run_demo(
    subscribers: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    timeout_seconds: float = 300.0,
) -> DemoResult:
    from clarion.simulator import PushServiceSimulator
    from services.campaign.admin import create_site

    # The demo prints its own progress; the services log warnings only (as its help says).
    settings = settings or Settings(data_dir=data_dir, log_level="WARNING", log_format="console")
    # The simulator listens on plain http on loopback.
    settings.allow_insecure_endpoints = True
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True)
    try:
        site = await create_site(settings, "Clarion demo", "mailto:demo@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        progress(f"site {site.site_id}; registering {subscribers} simulated browsers")

        subscriptions = [simulator.mint_subscription() for _ in range(subscribers)]
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            await register_browsers(
                session, stack.gateway_url, site.site_id, subscriptions[:GATEWAY_BROWSERS]
            )
        await import_browsers(stack, metadata, subscriptions[GATEWAY_BROWSERS:])
        register_seconds = time.perf_counter() - started

        channel = client_channel(stack.address("campaign"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)
        created = await campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Demo",
                notification=common_pb2.Notification(
                    title="Hello from Clarion",
                    body="An end-to-end encrypted web push",
                    target_url="https://example.com/welcome?utm_source=clarion",
                ),
                ttl_seconds=3600,
                urgency=common_pb2.URGENCY_NORMAL,
            ),
            metadata=metadata,
            timeout=30,
        )
        campaign_id = created.campaign.campaign_id
        progress(f"campaign {campaign_id}; sending")

        send_started = time.perf_counter()
        sent_run = await campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=metadata,
            timeout=30,
        )
        send_call_seconds = time.perf_counter() - send_started
        run_id = sent_run.run.run_id
        await wait_for_run(campaigns, run_id, metadata, progress, timeout_seconds)
        report = await wait_for_report(stack, campaign_id, metadata, timeout_seconds)
        seconds = time.perf_counter() - send_started
        await channel.close()

        engaging = subscriptions[:GATEWAY_BROWSERS]
        progress(
            f"{len(engaging)} browsers report views (all) and clicks (every 10th) "
            "through the gateway"
        )
        async with aiohttp.ClientSession() as session:
            await report_engagement(session, stack.gateway_url, site.site_id, simulator, engaging)
        engaged = await wait_for_report(
            stack,
            campaign_id,
            metadata,
            timeout_seconds,
            until=lambda r: r.viewed >= len(engaging),
        )

        return DemoResult(
            audience=report.audience,
            sent=report.sent,
            failed=report.failed,
            received=simulator.stats.received,
            decrypted=simulator.stats.decrypted,
            conformance_problems=simulator.stats.problems_total,
            seconds=seconds,
            send_call_seconds=send_call_seconds,
            register_seconds=register_seconds,
            viewed=engaged.viewed,
            clicked=engaged.clicked,
            click_through_rate=engaged.click_through_rate,
        )
    finally:
        await stack.stop()
        await simulator.stop()


async def import_browsers(
    stack: EmbeddedStack, metadata: tuple[tuple[str, str], ...], subscriptions: list[Any]
) -> None:
    """Registers subscriptions in batches through segment (an import, not the SDK)."""
    if not subscriptions:
        return
    channel = client_channel(stack.address("segment"))
    stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
    try:
        for start in range(0, len(subscriptions), IMPORT_BATCH):
            batch = subscriptions[start : start + IMPORT_BATCH]
            await stub.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_CHROME,
                            timezone="UTC",
                        )
                        for s in batch
                    ]
                ),
                metadata=metadata,
                timeout=60,
            )
    finally:
        await channel.close()


async def wait_for_run(
    campaigns: campaign_service_pb2_grpc.CampaignServiceStub,
    run_id: str,
    metadata: tuple[tuple[str, str], ...],
    progress: Callable[[str], None],
    timeout_seconds: float,
) -> None:
    """Polls GetRun, printing its progress, until every recipient has an outcome."""
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while True:
        run = (
            await campaigns.GetRun(
                campaign_service_pb2.GetRunRequest(run_id=run_id), metadata=metadata, timeout=10
            )
        ).run
        p = run.progress
        done = p.sent + p.failed + p.suppressed + p.expired
        line = (
            f"run {run_id}: {campaign_pb2.RunState.Name(run.state)}, resolved {p.resolved}, "
            f"{done} done (sent {p.sent}, failed {p.failed})"
        )
        if line != last:
            progress(line)
            last = line
        if run.state == campaign_pb2.RUN_STATE_DONE:
            return
        if run.state == campaign_pb2.RUN_STATE_FAILED and run.finish_time.seconds:
            raise RuntimeError(f"run {run_id} failed: {run.failure_reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} not done after {timeout_seconds}s: {line}")
        await asyncio.sleep(0.2)


async def wait_for_report(
    stack: EmbeddedStack,
    campaign_id: str,
    metadata: tuple[tuple[str, str], ...],
    timeout_seconds: float,
    until: Callable[[Any], bool] | None = None,
) -> Any:
    """Outcomes reach reporting asynchronously; wait until it has one per recipient."""
    channel = client_channel(stack.address("reporting"))
    stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
    deadline = time.monotonic() + timeout_seconds
    report = None
    try:
        while True:
            try:
                response = await stub.GetCampaignReport(
                    reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                    metadata=metadata,
                    timeout=10,
                )
                report = response.report
                settled = report.sent + report.failed + report.suppressed + report.expired
                # The audience arrives once delivery has resolved it; until then it is 0.
                complete = report.audience and settled >= report.audience
                if complete and (until is None or until(report)):
                    return report
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"report for {campaign_id} incomplete after {timeout_seconds}s: "
                    f"{str(report).replace(chr(10), ' ') if report else 'none'}"
                )
            await asyncio.sleep(0.1)
    finally:
        await channel.close()


def main(subscribers: int, data_dir: Path | None, as_json: bool) -> int:
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        result = asyncio.run(run_demo(subscribers, data_dir or Path(tmp), progress=progress))
    if as_json:
        print(json.dumps(result.as_json()), flush=True)
    else:
        for key, value in result.as_json().items():
            print(f"{key:>20}: {value}")
    if not result.ok:
        print("demo FAILED: the counts above disagree", file=sys.stderr)
        return 1
    return 0
