"""kill -9 of the delivery process, mid-send and mid-preparation: nothing is lost, every
recipient ends terminal, and what is sent twice stays within the requests in flight.

Campaign, segment and reporting run in this process; delivery runs as its own
`clarion serve delivery` process on the same database, and is killed with SIGKILL and
started again. The push-service simulator counts what each endpoint received.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

RECIPIENTS = 10_000
# Requests in flight at most (all senders of one process together): the bound on
# what one kill may send twice.
CONCURRENCY = 32
KILLS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    settings: Settings
    servers: dict[str, ManagedServer]
    simulator: PushServiceSimulator
    delivery_port: int
    env: dict[str, str]
    api_key: str
    # Every delivery process's stderr, appended: the fixture prints its end, which
    # pytest shows for a failed test (a restarted process that exited says why there).
    log: Path
    process: subprocess.Popen[str] | None = None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def start_delivery(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "clarion", "serve", "delivery"],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill_delivery(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def delivery_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with client_channel(f"127.0.0.1:{self.delivery_port}") as channel:
            while True:
                try:
                    answer = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=2
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, "delivery never became SERVING"
                await asyncio.sleep(0.1)


@pytest.fixture
async def deployment(settings_factory, tmp_path: Path) -> AsyncIterator[Deployment]:  # type: ignore[no-untyped-def]
    from services.campaign.server import create_server as campaign
    from services.reporting.server import create_server as reporting
    from services.segment.server import create_server as segment

    delivery_port = _free_port()
    settings: Settings = settings_factory(delivery_address=f"127.0.0.1:{delivery_port}")
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    servers = {
        "campaign": await campaign("127.0.0.1:0", settings),
        "segment": await segment("127.0.0.1:0", settings),
        "reporting": await reporting("127.0.0.1:0", settings),
    }
    for name, server in servers.items():
        setattr(settings, f"{name}_address", f"127.0.0.1:{server.port}")
    for server in servers.values():
        await server.start()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLARION_DATABASE_URL": settings.database_url,
        "CLARION_INTERNAL_TOKEN": settings.internal_token.get_secret_value(),
        "CLARION_PUSH_TEST_ENDPOINTS": "true",
        "CLARION_LOG_FORMAT": "json",
        "CLARION_DELIVERY_LISTEN": f"127.0.0.1:{delivery_port}",
        # Metrics on a free port: the default one may be another process's.
        "CLARION_METRICS_PORT": "0",
        "CLARION_DELIVERY_CONCURRENCY": str(CONCURRENCY),
        "CLARION_DELIVERY_WORKERS": "2",
        # A killed process's leases are taken over quickly.
        "CLARION_DELIVERY_LEASE_SECONDS": "2",
        "CLARION_DELIVERY_POLL_SECONDS": "0.1",
        "CLARION_DELIVERY_PREPARE_PAGE_SIZE": "200",
        **{
            f"CLARION_{name.upper()}_ADDRESS": f"127.0.0.1:{server.port}"
            for name, server in servers.items()
        },
    }
    site = await create_site(settings, "Crash", "mailto:crash@clarion.invalid")
    found = Deployment(
        settings, servers, simulator, delivery_port, env, site.api_key, tmp_path / "delivery.log"
    )
    try:
        yield found
    finally:
        if found.process is not None and found.process.poll() is None:
            found.kill_delivery()
        if found.log.exists():
            tail = found.log.read_text().splitlines()[-30:]
            print("delivery's stderr, last lines:", *tail, sep="\n")
        for server in servers.values():
            await server.stop()
        await simulator.stop()


async def _register(deployment: Deployment, count: int) -> list[str]:
    subscriptions = [deployment.simulator.mint_subscription() for _ in range(count)]
    async with client_channel(deployment.settings.segment_address) as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        for start in range(0, count, 1000):
            await stub.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_FIREFOX,
                        )
                        for s in subscriptions[start : start + 1000]
                    ]
                ),
                metadata=deployment.metadata(),
                timeout=60,
            )
    return [s.endpoint for s in subscriptions]


async def _send(deployment: Deployment) -> tuple[str, str]:
    async with client_channel(deployment.settings.campaign_address) as channel:
        stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
        created = await stub.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title="Crash", body="kill -9", target_url="https://shop.example/"
                ),
                ttl_seconds=3600,
            ),
            metadata=deployment.metadata(),
            timeout=10,
        )
        sent = await stub.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=created.campaign.campaign_id),
            metadata=deployment.metadata(),
            timeout=10,
        )
    return created.campaign.campaign_id, sent.run.run_id


async def _run(deployment: Deployment, run_id: str) -> campaign_pb2.Run:
    async with client_channel(deployment.settings.campaign_address) as channel:
        response = await campaign_service_pb2_grpc.CampaignServiceStub(channel).GetRun(
            campaign_service_pb2.GetRunRequest(run_id=run_id),
            metadata=deployment.metadata(),
            timeout=10,
        )
    return response.run


async def _until(condition: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[misc]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _finish(
    deployment: Deployment, run_id: str, campaign_id: str, endpoints: list[str]
) -> dict[str, int | float]:
    # How long each GetRun took: campaign asks the restarted delivery for the run's
    # progress, and answers what it last stored when delivery cannot say in time.
    waits: list[float] = []

    async def done() -> bool:
        started = time.monotonic()
        state = (await _run(deployment, run_id)).state
        waits.append(time.monotonic() - started)
        return state == campaign_pb2.RUN_STATE_DONE

    await _until(done, "the run to be DONE", timeout=180)
    run = await _run(deployment, run_id)
    progress = run.progress
    received = deployment.simulator.stats.per_endpoint
    duplicates = sum(max(0, received[e] - 1) for e in endpoints)
    lost = sum(1 for e in endpoints if received[e] == 0)

    async def reported() -> bool:
        async with client_channel(deployment.settings.reporting_address) as channel:
            report = (
                await reporting_service_pb2_grpc.ReportingServiceStub(channel).GetCampaignReport(
                    reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                    metadata=deployment.metadata(),
                    timeout=10,
                )
            ).report
        return report.sent == RECIPIENTS and report.audience == RECIPIENTS

    await _until(reported, "reporting to count every outcome once")
    return {
        "resolved": progress.resolved,
        "sent": progress.sent,
        "failed": progress.failed,
        "terminal": progress.sent + progress.failed + progress.suppressed + progress.expired,
        "lost": lost,
        "duplicates": duplicates,
        "slowest_get_run_s": round(max(waits), 3),
    }


class TestKilledDelivery:
    async def test_three_kills_mid_send_lose_nothing_and_resend_at_most_what_was_in_flight(
        self, deployment: Deployment
    ) -> None:
        endpoints = await _register(deployment, RECIPIENTS)
        deployment.start_delivery()
        await deployment.delivery_serving()
        campaign_id, run_id = await _send(deployment)
        stats = deployment.simulator.stats
        for kill in range(KILLS):
            target = (kill + 1) * RECIPIENTS // (KILLS + 1)

            async def far_enough(target: int = target) -> bool:
                return stats.received >= target

            await _until(far_enough, f"{target} messages before kill {kill + 1}")
            deployment.kill_delivery()
            deployment.start_delivery()
        figures = await _finish(deployment, run_id, campaign_id, endpoints)
        print("crash figures", json.dumps({"kills": KILLS, "concurrency": CONCURRENCY, **figures}))
        assert figures["lost"] == 0
        assert figures["terminal"] == figures["resolved"] == figures["sent"] == RECIPIENTS
        assert figures["duplicates"] <= KILLS * CONCURRENCY

    async def test_a_kill_while_preparing_resumes_and_queues_everyone_once(
        self, deployment: Deployment
    ) -> None:
        endpoints = await _register(deployment, RECIPIENTS)
        deployment.start_delivery()
        await deployment.delivery_serving()
        campaign_id, run_id = await _send(deployment)

        async def part_resolved() -> bool:
            run = await _run(deployment, run_id)
            return run.state == campaign_pb2.RUN_STATE_PREPARING and run.progress.resolved > 0

        await _until(part_resolved, "preparation to be under way")
        deployment.kill_delivery()
        resolved_at_kill = (await _run(deployment, run_id)).progress.resolved
        deployment.start_delivery()
        figures = await _finish(deployment, run_id, campaign_id, endpoints)
        print("crash figures", json.dumps({"resolved_at_kill": resolved_at_kill, **figures}))
        assert 0 < resolved_at_kill < RECIPIENTS
        assert figures["lost"] == 0
        assert figures["terminal"] == figures["resolved"] == figures["sent"] == RECIPIENTS
        assert figures["duplicates"] <= CONCURRENCY
