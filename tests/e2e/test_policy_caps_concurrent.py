"""A frequency cap holds atomically across concurrent campaigns and delivery processes:
two runs of two campaigns, started at the same moment on two `clarion serve delivery`
processes sharing one PostgreSQL database, each to the same profiles of five browsers,
with cap_per_day 3 — each profile gets exactly 3 pushes, and the other 7 of its 10
recipients end suppressed frequency_cap.

Campaign (site credentials), segment (the audience) and reporting run in this process,
with the push-service simulator, which accepts every push and counts what each endpoint
received. Each delivery process sends chunks of one recipient, so the ten recipients of
a profile are claimed by different senders of both processes at once. PostgreSQL only:
SQLite has one writer, and these are two processes on one database.
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
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, select

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.delivery.models import DeliveryRecipientRow
from services.kit.auth import internal_metadata
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.support.sites import bearer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CAP_PER_DAY = 3
BROWSERS = 5
PROFILES = 5
ROUNDS = 2
DELIVERY_PROCESSES = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def midday_zone() -> str:
    """A time zone where it is around noon now, so the few seconds of the test never
    straddle its people's local midnight (the cap counts per local day). Etc/GMT-N is
    UTC+N."""
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


@dataclass
class Deployment:
    settings: Settings
    simulator: PushServiceSimulator
    env: dict[str, str]
    site_id: str
    api_key: str
    logs: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_delivery(self) -> int:
        """Starts one more `clarion serve delivery` on the shared database; its port."""
        port = _free_port()
        index = len(self.processes)
        with (self.logs / f"delivery-{index}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "clarion", "serve", "delivery"],
                    env={**self.env, "CLARION_DELIVERY_LISTEN": f"127.0.0.1:{port}"},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        self.ports.append(port)
        return port

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:]
            for path in sorted(self.logs.glob("delivery-*.log"))
        )

    async def serving(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with client_channel(f"127.0.0.1:{port}") as channel:
            while True:
                try:
                    answer = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=2
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, "delivery never SERVING\n" + self.log_tail()
                await asyncio.sleep(0.1)

    def internal(self) -> tuple[tuple[str, str], ...]:
        return internal_metadata(self.settings.internal_token_value, self.site_id)


@pytest.fixture
async def deployment(
    database_backend: str, settings_factory, tmp_path: Path
) -> AsyncIterator[Deployment]:  # type: ignore[no-untyped-def]
    if database_backend != "postgresql":
        pytest.skip("delivery processes share one database on PostgreSQL")
    from services.campaign.server import create_server as campaign
    from services.reporting.server import create_server as reporting
    from services.segment.server import create_server as segment

    settings: Settings = settings_factory()
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    servers: dict[str, ManagedServer] = {
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
        "CLARION_DELIVERY_WORKERS": "2",
        # One recipient a chunk: a profile's recipients go to different senders.
        "CLARION_DELIVERY_CHUNK_SIZE": "1",
        "CLARION_DELIVERY_CONCURRENCY": "8",
        "CLARION_DELIVERY_POLL_SECONDS": "0.05",
        **{
            f"CLARION_{name.upper()}_ADDRESS": f"127.0.0.1:{server.port}"
            for name, server in servers.items()
        },
    }
    site = await create_site(settings, "Capped shop", "mailto:caps@clarion.invalid")
    found = Deployment(settings, simulator, env, site.site_id, site.api_key, tmp_path)
    try:
        yield found
    finally:
        for process in found.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in found.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for server in servers.values():
            await server.stop()
        await simulator.stop()


async def register_profiles(
    deployment: Deployment, profiles: list[str], timezone: str
) -> dict[str, list[SimulatedSubscription]]:
    """Five browsers (simulator subscriptions) of each profile, registered with segment."""
    browsers = {
        p: [deployment.simulator.mint_subscription() for _ in range(BROWSERS)] for p in profiles
    }
    async with client_channel(deployment.settings.segment_address) as channel:
        answer = await segment_service_pb2_grpc.SegmentServiceStub(
            channel
        ).BatchRegisterSubscribers(
            segment_service_pb2.BatchRegisterSubscribersRequest(
                requests=[
                    segment_service_pb2.RegisterSubscriberRequest(
                        push_subscription=common_pb2.PushSubscription(
                            endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                        ),
                        browser=common_pb2.BROWSER_FIREFOX,
                        profile_id=profile,
                        timezone=timezone,
                    )
                    for profile, subs in browsers.items()
                    for s in subs
                ]
            ),
            metadata=bearer(deployment.api_key),
            timeout=30,
        )
    assert len(answer.responses) == len(profiles) * BROWSERS
    return browsers


def start_request(
    campaign_id: str, profiles: list[str]
) -> delivery_service_pb2.StartDeliveryRunRequest:
    run_id = f"run_{uuid.uuid4().hex}"
    payload = {"title": "Capped", "body": campaign_id, "run_id": run_id}
    return delivery_service_pb2.StartDeliveryRunRequest(
        run_id=run_id,
        campaign_id=campaign_id,
        content=delivery_pb2.RunContent(
            payload=json.dumps(payload, separators=(",", ":")).encode(),
            ttl_seconds=3600,
            urgency=common_pb2.URGENCY_HIGH,
        ),
        audience=delivery_pb2.RunAudience(profile_ids=profiles),
        policy=delivery_pb2.RunPolicy(cap_per_day=CAP_PER_DAY),
    )


async def wait_finished(deployment: Deployment, run_ids: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with client_channel(f"127.0.0.1:{deployment.ports[0]}") as channel:
        stub = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
        while True:
            answer = await stub.BatchGetDeliveryRuns(
                delivery_service_pb2.BatchGetDeliveryRunsRequest(run_ids=run_ids),
                metadata=deployment.internal(),
                timeout=10,
            )
            if len(answer.delivery_runs) == len(run_ids) and all(
                run.HasField("finish_time") for run in answer.delivery_runs
            ):
                return
            assert time.monotonic() < deadline, "runs not finished\n" + deployment.log_tail()
            await asyncio.sleep(0.1)


def outcomes(database_url: str, run_ids: list[str]) -> dict[str, Counter[tuple[str, str]]]:
    """(state, reason) counts of both runs' recipients, per profile."""
    table = DeliveryRecipientRow.__table__
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.profile_id, table.c.state, table.c.reason).where(
                    table.c.run_id.in_(run_ids)
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, Counter[tuple[str, str]]] = {}
    for profile_id, state, reason in rows:
        found.setdefault(profile_id, Counter())[(state, reason)] += 1
    return found


async def test_two_campaigns_on_two_delivery_processes_never_pass_a_persons_cap(
    deployment: Deployment,
) -> None:
    # One after the other, so that only the first one migrates the database.
    for _ in range(DELIVERY_PROCESSES):
        await deployment.serving(deployment.start_delivery())
    channels = [client_channel(f"127.0.0.1:{port}") for port in deployment.ports]
    stubs = [delivery_service_pb2_grpc.DeliveryServiceStub(c) for c in channels]
    zone = midday_zone()
    try:
        for round_ in range(ROUNDS):
            profiles = [f"shopper-{round_}-{i}-{uuid.uuid4().hex[:6]}" for i in range(PROFILES)]
            browsers = await register_profiles(deployment, profiles, zone)
            requests = [start_request(f"cmp_{name}", profiles) for name in ("spring", "summer")]
            # The same moment, one run handed to each process.
            await asyncio.gather(
                *(
                    stub.StartDeliveryRun(request, metadata=deployment.internal(), timeout=10)
                    for stub, request in zip(stubs, requests, strict=True)
                )
            )
            run_ids = [r.run_id for r in requests]
            await wait_finished(deployment, run_ids)

            found = outcomes(deployment.settings.database_url, run_ids)
            assert found == {
                profile: Counter(
                    {
                        ("sent", ""): CAP_PER_DAY,
                        ("suppressed", "frequency_cap"): 2 * BROWSERS - CAP_PER_DAY,
                    }
                )
                for profile in profiles
            }, f"round {round_}"
            # What the push service received: exactly the cap per person.
            received = {
                profile: sum(len(deployment.simulator.messages(s.endpoint)) for s in subs)
                for profile, subs in browsers.items()
            }
            assert received == {profile: CAP_PER_DAY for profile in profiles}, f"round {round_}"
    finally:
        for channel in channels:
            await channel.close()
