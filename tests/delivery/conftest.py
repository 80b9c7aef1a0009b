"""Fixtures for the delivery tests.

- `private_database_url`: a database of its own (per backend) for the queue tests, so
  their claims see only their own chunks (workers claim across all sites).
- `stack`: real campaign, segment, reporting and delivery servers on ephemeral ports,
  plus the push-service simulator; once per encryptor (python, and native when built).
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.campaign.server import create_server as create_campaign_server
from services.delivery.models import RecipientState
from services.delivery.server import create_server as create_delivery_server
from services.delivery.store import DeliveryStore, Terminal
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for, upgrade_to_head
from services.kit.grpcserver import ManagedServer, client_channel
from services.reporting.server import create_server as create_reporting_server
from services.segment.server import create_server as create_segment_server
from tests.support.sites import bearer

ENCRYPTORS = ["python"] + (["native"] if importlib.util.find_spec("encrypt_rs") else [])

LEASE = 30.0

# Short timings so retries, timeouts and polling finish within a test.
FAST_DELIVERY = {
    "delivery_workers": 2,
    "delivery_poll_seconds": 0.05,
    "delivery_chunk_size": 20,
    "delivery_lease_seconds": 5.0,
    "push_timeout_seconds": 0.5,
    "push_retry_base_seconds": 0.1,
    "push_retry_max_seconds": 1.0,
    "push_max_attempts": 3,
    "rpc_timeout_seconds": 5.0,
}


@pytest.fixture(scope="session")
def private_database_url(database_factory: Callable[[], str]) -> str:
    return database_factory()


@pytest.fixture(scope="session")
async def store(private_database_url: str) -> AsyncIterator[DeliveryStore]:
    await asyncio.to_thread(upgrade_to_head, "delivery", private_database_url)
    engine = create_engine_for(private_database_url)
    yield DeliveryStore(engine)
    await engine.dispose()


@pytest.fixture
async def drained(store: DeliveryStore) -> DeliveryStore:
    """The store with no claimable chunk left over from an earlier test."""
    far_future = FrozenClock().now().replace(year=2100)
    while (chunk := await store.claim_chunk("drain", far_future, LEASE)) is not None:
        pending = await store.due_recipients(chunk, far_future)
        await store.record_results(
            chunk,
            [
                Terminal(r.recipient_id, RecipientState.EXPIRED, "test_cleanup", False)
                for r in pending
            ],
            [],
            far_future,
        )
    return store


@pytest.fixture(scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    sim = PushServiceSimulator()
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


@dataclass
class Site:
    site_id: str
    api_key: str
    vapid_public_key: bytes

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)


@dataclass
class Stack:
    settings: Settings
    delivery: delivery_service_pb2_grpc.DeliveryServiceStub
    segment: segment_service_pb2_grpc.SegmentServiceStub
    reporting: reporting_service_pb2_grpc.ReportingServiceStub
    simulator: PushServiceSimulator

    async def new_site(self, subject: str = "mailto:ops@clarion.test") -> Site:
        created = await create_site(self.settings, f"delivery test {uuid.uuid4().hex[:6]}", subject)
        return Site(created.site_id, created.api_key, created.vapid_public_key)

    async def subscriber(self, site: Site) -> tuple[delivery_pb2.Recipient, SimulatedSubscription]:
        """A simulator subscription registered with segment, as a delivery recipient."""
        sub = self.simulator.mint_subscription(application_server_key=site.vapid_public_key)
        subscription = common_pb2.PushSubscription(
            endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
        )
        registered = await self.segment.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=subscription, browser=common_pb2.BROWSER_FIREFOX, timezone="UTC"
            ),
            metadata=site.metadata,
        )
        recipient = delivery_pb2.Recipient(
            subscriber_id=registered.subscriber.subscriber_id,
            push_subscription=subscription,
            browser=common_pb2.BROWSER_FIREFOX,
        )
        return recipient, sub

    async def create_run(self, site: Site, **overrides: object) -> str:
        values: dict[str, object] = {
            "run_id": f"run_{uuid.uuid4().hex}",
            "campaign_id": f"cmp_{uuid.uuid4().hex}",
            "notification": common_pb2.Notification(title="Sale", body="50% off today"),
            "ttl_seconds": 3600,
            "urgency": common_pb2.URGENCY_HIGH,
        }
        values.update(overrides)
        request = delivery_service_pb2.CreateDeliveryRunRequest(**values)  # type: ignore[arg-type]
        await self.delivery.CreateDeliveryRun(request, metadata=site.metadata)
        return request.run_id

    async def send(
        self, site: Site, run_id: str, recipients: list[delivery_pb2.Recipient]
    ) -> delivery_pb2.DeliveryRun:
        await self.delivery.EnqueueRecipients(
            delivery_service_pb2.EnqueueRecipientsRequest(run_id=run_id, recipients=recipients),
            metadata=site.metadata,
        )
        await self.delivery.StartDeliveryRun(
            delivery_service_pb2.StartDeliveryRunRequest(run_id=run_id), metadata=site.metadata
        )
        return await self.wait_done(site, run_id)

    async def wait_done(
        self, site: Site, run_id: str, timeout: float = 20.0
    ) -> delivery_pb2.DeliveryRun:
        async with asyncio.timeout(timeout):
            while True:
                run = (
                    await self.delivery.GetDeliveryRun(
                        delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id),
                        metadata=site.metadata,
                    )
                ).delivery_run
                if run.state == delivery_pb2.DELIVERY_RUN_STATE_DONE:
                    return run
                await asyncio.sleep(0.05)

    async def outcome(
        self, site: Site, run_id: str, subscriber_id: str
    ) -> delivery_pb2.RecipientOutcome:
        response = await self.delivery.GetRecipientOutcome(
            delivery_service_pb2.GetRecipientOutcomeRequest(
                run_id=run_id, subscriber_id=subscriber_id
            ),
            metadata=site.metadata,
        )
        return response.outcome


@pytest.fixture(scope="module", params=ENCRYPTORS)
async def stack(
    request: pytest.FixtureRequest, settings_factory, simulator: PushServiceSimulator
) -> AsyncIterator[Stack]:
    settings: Settings = settings_factory(encryptor=request.param, **FAST_DELIVERY)
    servers: dict[str, ManagedServer] = {
        "campaign": await create_campaign_server("127.0.0.1:0", settings),
        "segment": await create_segment_server("127.0.0.1:0", settings),
        "reporting": await create_reporting_server("127.0.0.1:0", settings),
        "delivery": await create_delivery_server("127.0.0.1:0", settings),
    }
    # Peers open their channels lazily, so the addresses can be filled in after binding.
    for name, server in servers.items():
        setattr(settings, f"{name}_address", server.address)
    for server in servers.values():
        await server.start()
    channels = {name: client_channel(server.address) for name, server in servers.items()}
    try:
        yield Stack(
            settings=settings,
            delivery=delivery_service_pb2_grpc.DeliveryServiceStub(channels["delivery"]),
            segment=segment_service_pb2_grpc.SegmentServiceStub(channels["segment"]),
            reporting=reporting_service_pb2_grpc.ReportingServiceStub(channels["reporting"]),
            simulator=simulator,
        )
    finally:
        for channel in channels.values():
            await channel.close()
        for server in servers.values():
            await server.stop()
