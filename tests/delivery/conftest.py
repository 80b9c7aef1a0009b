"""Fixtures for the delivery tests.

- `engine` / `store`: a database of delivery's own per backend (SQLite, and PostgreSQL
  when CLARION_TEST_POSTGRES_URL is set); `store` empties it first, because workers
  claim runs and chunks across all sites and must see only the test's own.
- In-memory fakes of the domain's ports (services/delivery/domain/ports.py) and a
  `Harness` that drives `DeliveryWorkers` one step at a time on a FrozenClock.
- `stack`: real campaign, segment, reporting and delivery servers on ephemeral ports,
  plus the push-service simulator; once per encryptor (python, and native when built).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.campaign.server import create_server as create_campaign_server
from services.delivery.adapters.encryptors import create_encryptor
from services.delivery.adapters.http_sender import TaskStream
from services.delivery.domain.descriptions import RunDescription
from services.delivery.domain.goals import ConversionGoal
from services.delivery.domain.ports import (
    AudiencePage,
    CredentialsUnavailable,
    PeerUnavailable,
    SiteCredentials,
)
from services.delivery.domain.rules import PushAnswer
from services.delivery.domain.runs import DeliveryRuns, RunRequest
from services.delivery.domain.worker import DeliveryWorkers
from services.delivery.models import (
    DeliveryChunkRow,
    DeliveryOutboxRow,
    DeliveryPushServiceHoldRow,
    DeliveryRecipientRow,
    DeliveryRunContextRow,
    DeliveryRunRow,
    TargetKind,
)
from services.delivery.server import create_server as create_delivery_server
from services.delivery.store import DeliveryStore, Member, OutboxItem
from services.kit.auth import internal_metadata
from services.kit.clock import Clock, FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for, upgrade_to_head
from services.kit.grpcserver import ManagedServer, client_channel
from services.reporting.server import create_server as create_reporting_server
from services.segment.server import create_server as create_segment_server
from tests.support.sites import bearer

ENCRYPTORS = ["python"] + (["native"] if importlib.util.find_spec("encrypt_rs") else [])
# The fastest encryptor built, for tests about the queue rather than the cryptography.
FAST_ENCRYPTOR = ENCRYPTORS[-1]

LEASE = 30.0

# Short timings so retries, timeouts and polling finish within a test.
FAST_DELIVERY: dict[str, Any] = {
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


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 20.0, what: str = ""
) -> None:
    """Polls `check` until it is true; fails after `timeout` seconds (never a fixed sleep)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not within {timeout}s: {what or check}")


def shared_payload(**fields: str) -> bytes:
    """A PushPayload JSON as campaign renders it (without the per-recipient fields)."""
    values = {"title": "Sale", "body": "50% off today", **fields}
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


# The database.


@pytest.fixture(scope="session")
def private_database_url(database_factory: Callable[[], str]) -> str:
    return database_factory()


@pytest.fixture(scope="session")
async def engine(private_database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade_to_head, "delivery", private_database_url)
    made = create_engine_for(private_database_url)
    yield made
    await made.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> DeliveryStore:
    """The delivery store on an empty private database."""
    async with engine.begin() as conn:
        for table in (
            DeliveryOutboxRow,
            DeliveryPushServiceHoldRow,
            DeliveryRecipientRow,
            DeliveryChunkRow,
            DeliveryRunContextRow,
            DeliveryRunRow,
        ):
            await conn.execute(delete(table.__table__))
    return DeliveryStore(engine)


@pytest.fixture
def database_backend_name(engine: AsyncEngine) -> str:
    return engine.dialect.name


async def recipient_rows(engine: AsyncEngine, run_id: str) -> Counter[str]:
    """How many recipient rows each subscriber of the run has."""
    table = DeliveryRecipientRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.subscriber_id, func.count())
            .where(table.c.run_id == run_id)
            .group_by(table.c.subscriber_id)
        )
        return Counter({subscriber_id: count for subscriber_id, count in rows})


async def outbox_outcomes(engine: AsyncEngine, run_id: str) -> Counter[str]:
    """Outcomes waiting in the outbox (rows hold a commit's worth each), per subscriber."""
    table = DeliveryOutboxRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.entries).where(table.c.run_id == run_id, table.c.kind == "outcome")
        )
        return Counter(entry[0] for (entries,) in rows for entry in json.loads(entries))


# Fakes of the ports.


def public_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


_KEY, _P256DH = public_key()
_AUTH = os.urandom(16)


def members(
    n: int,
    *,
    prefix: str | None = None,
    unsubscribed: Sequence[int] = (),
    profile_id: Callable[[int], str] = lambda i: "",
) -> list[Member]:
    """`n` audience members on made-up push endpoints (one shared key pair, which the
    fake transport never decrypts); `profile_id` gives member i's profile ("": none)."""
    prefix = prefix or f"m{uuid.uuid4().hex[:8]}"
    return [
        Member(
            subscriber_id=f"{prefix}_{i:06d}",
            profile_id=profile_id(i),
            timezone="UTC",
            browser=common_pb2.BROWSER_FIREFOX,
            target_kind=TargetKind.WEB_PUSH,
            endpoint=f"https://push.test/{prefix}/{i:06d}",
            p256dh=_P256DH,
            auth=_AUTH,
            unsubscribed=i in unsubscribed,
        )
        for i in range(n)
    ]


def subscription_member(sub: SimulatedSubscription, subscriber_id: str) -> Member:
    """A member whose keys decrypt: a simulator subscription."""
    return Member(
        subscriber_id=subscriber_id,
        profile_id="",
        timezone="UTC",
        browser=common_pb2.BROWSER_CHROME,
        target_kind=TargetKind.WEB_PUSH,
        endpoint=sub.endpoint,
        p256dh=sub.p256dh,
        auth=sub.auth,
    )


class FakeAudience:
    """Segment's audience snapshot and checks. Page tokens are offsets into the site's
    members sorted by id, so any worker can resume from a stored token."""

    def __init__(self) -> None:
        self.sites: dict[str, list[Member]] = {}
        self.inactive: set[str] = set()
        self.failure: PeerUnavailable | None = None
        self.check_failure: PeerUnavailable | None = None
        # After this many pages served, raise `failure_after` (or hang when None).
        self.pages_before_trouble: int | None = None
        self.failure_after: PeerUnavailable | None = None
        self.hanging = asyncio.Event()
        self.pages_served = 0
        self.tokens_asked: list[str] = []
        # (selector, audience_key) of every page asked for.
        self.selectors_asked: list[tuple[bytes, str]] = []
        # (subscriber_ids, profile_ids) of every page asked for.
        self.listed_asked: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        # The profile_properties of every page asked for.
        self.properties_asked: list[tuple[str, ...]] = []
        self.checked: list[str] = []

    async def audience_page(
        self,
        site_id: str,
        snapshot_time: datetime,
        subscriber_ids: Sequence[str],
        page_token: str,
        page_size: int,
        *,
        selector: bytes = b"",
        audience_key: str = "",
        profile_ids: Sequence[str] = (),
        profile_properties: Sequence[str] = (),
    ) -> AudiencePage:
        self.tokens_asked.append(page_token)
        self.properties_asked.append(tuple(profile_properties))
        self.selectors_asked.append((selector, audience_key))
        self.listed_asked.append((tuple(subscriber_ids), tuple(profile_ids)))
        if self.failure is not None:
            raise self.failure
        if self.pages_before_trouble is not None and self.pages_served >= self.pages_before_trouble:
            if self.failure_after is not None:
                raise self.failure_after
            self.hanging.set()
            await asyncio.Event().wait()  # until the "process" is killed
        everyone = sorted(self.sites.get(site_id, []), key=lambda m: m.subscriber_id)
        if subscriber_ids or profile_ids:
            wanted, profiles = set(subscriber_ids), set(profile_ids)
            everyone = [
                m for m in everyone if m.subscriber_id in wanted or m.profile_id in profiles
            ]
        start = int(page_token or 0)
        # As segment: each member carries the properties asked for that its profile has.
        page = [
            replace(
                m,
                profile_properties={
                    k: v for k, v in m.profile_properties.items() if k in profile_properties
                },
            )
            for m in everyone[start : start + page_size]
        ]
        self.pages_served += 1
        after = start + page_size
        return AudiencePage(page, str(after) if after < len(everyone) else "")

    async def inactive_subscribers(self, site_id: str, subscriber_ids: Sequence[str]) -> set[str]:
        if self.check_failure is not None:
            raise self.check_failure
        self.checked += subscriber_ids
        return self.inactive & set(subscriber_ids)


class FakeTransport:
    """Counts every POST per endpoint; answers 201 unless scripted. With `gate` set,
    posts block until it is opened (a worker stalled mid-chunk)."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.order: list[str] = []
        self.sent: dict[str, list[tuple[bytes, dict[str, str]]]] = {}
        self.scripts: dict[str, list[PushAnswer]] = {}
        self.gate: asyncio.Event | None = None
        self.blocked = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def stream(self, headers: Mapping[str, str]) -> TaskStream:
        return TaskStream(self, headers)

    def script(self, endpoint: str, *answers: PushAnswer) -> None:
        """The next answers for `endpoint`; 201 once they are used up."""
        self.scripts[endpoint] = list(answers)

    async def post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> PushAnswer:
        self.posts[endpoint] += 1
        self.order.append(endpoint)
        self.sent.setdefault(endpoint, []).append((body, headers))
        if self.gate is not None:
            self.blocked += 1
            try:
                await self.gate.wait()
            finally:
                self.blocked -= 1
        script = self.scripts.get(endpoint)
        if script:
            return script.pop(0)
        return PushAnswer(status=201)


class FakeCredentials:
    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.private_key = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.public_key = key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        self.engagement_secret = os.urandom(32)
        self.failure: CredentialsUnavailable | None = None
        # The site's other key pairs (PKCS#8 DER) by id, and its current key's id.
        self.current_vapid_key_id = ""
        self.vapid_keys: dict[str, bytes] = {}
        self.calls = 0

    async def site_credentials(self, site_id: str) -> SiteCredentials:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        keys = dict(self.vapid_keys)
        if self.current_vapid_key_id:
            keys[self.current_vapid_key_id] = self.private_key
        return SiteCredentials(
            site_id,
            self.private_key,
            self.public_key,
            "mailto:ops@test.example",
            self.engagement_secret,
            current_vapid_key_id=self.current_vapid_key_id,
            vapid_keys=keys,
        )


class FakePruner:
    def __init__(self) -> None:
        self.down = False
        self.gone: list[tuple[str, str, str]] = []

    async def unsubscribe(self, site_id: str, gone: Sequence[tuple[str, str]]) -> None:
        if self.down:
            raise ConnectionError("segment is down")
        self.gone += [(site_id, subscriber_id, reason) for subscriber_id, reason in gone]


class FakeSink:
    def __init__(self) -> None:
        self.down = False
        self.outcomes: list[OutboxItem] = []
        self.audiences: list[tuple[str, str, int]] = []
        # Runs recorded at their start (audience not known yet).
        self.starts: list[tuple[str, str]] = []
        # The conversion goal and description each run's last record came with (None:
        # none), by run id.
        self.goals: dict[str, ConversionGoal | None] = {}
        self.descriptions: dict[str, RunDescription | None] = {}
        # ("start" | "audience" | "outcome", run_id) in the order reporting heard them.
        self.heard: list[tuple[str, str]] = []

    async def record_outcomes(self, site_id: str, outcomes: Sequence[OutboxItem]) -> None:
        if self.down:
            raise ConnectionError("reporting is down")
        self.outcomes += outcomes
        self.heard += [("outcome", o.run_id) for o in outcomes]

    async def record_audience(
        self,
        site_id: str,
        run_id: str,
        campaign_id: str,
        audience: int | None,
        *,
        test: bool = False,
        conversion_goal: ConversionGoal | None = None,
        description: RunDescription | None = None,
    ) -> None:
        if self.down:
            raise ConnectionError("reporting is down")
        if audience is None:
            self.starts.append((site_id, run_id))
            self.heard.append(("start", run_id))
        else:
            self.audiences.append((site_id, run_id, audience))
            self.heard.append(("audience", run_id))
        self.goals[run_id] = conversion_goal
        self.descriptions[run_id] = description

    def per_subscriber(self, run_id: str) -> Counter[str]:
        return Counter(o.subscriber_id for o in self.outcomes if o.run_id == run_id)


@dataclass
class Harness:
    """One delivery "process": DeliveryWorkers over the store with fakes of its ports."""

    store: DeliveryStore
    settings: Settings
    clock: FrozenClock
    audience: FakeAudience = field(default_factory=FakeAudience)
    transport: FakeTransport = field(default_factory=FakeTransport)
    credentials: FakeCredentials = field(default_factory=FakeCredentials)
    pruner: FakePruner = field(default_factory=FakePruner)
    sink: FakeSink = field(default_factory=FakeSink)
    encryptor: str = FAST_ENCRYPTOR
    workers: DeliveryWorkers = field(init=False)

    def __post_init__(self) -> None:
        self.workers = DeliveryWorkers(
            self.settings,
            self.store,
            create_encryptor(self.encryptor),  # type: ignore[arg-type]
            self.transport,
            credentials=self.credentials,
            audience=self.audience,
            pruner=self.pruner,
            outcomes=self.sink,
            clock=self.clock,
        )

    def sibling(self, **overrides: Any) -> Harness:
        """Another process on the same database, site credentials and clock."""
        values: dict[str, Any] = {
            "store": self.store,
            "settings": self.settings,
            "clock": self.clock,
            "credentials": self.credentials,
        }
        values.update(overrides)
        return Harness(**values)

    async def start_run(
        self,
        audience: Sequence[Member],
        *,
        site_id: str | None = None,
        ttl_seconds: int = 3600,
        urgency: str = "normal",
        subscriber_ids: Sequence[str] = (),
        payload: bytes | None = None,
        selector: bytes = b"",
        profile_ids: Sequence[str] = (),
        content: delivery_pb2.RunContent | None = None,
        contexts: Sequence[delivery_pb2.RecipientContext] = (),
        campaign_id: str | None = None,
        **more: Any,
    ) -> tuple[str, str]:
        """Registers the audience with the fake segment and starts a run through the
        domain (as StartDeliveryRun does); returns (site_id, run_id). `more`: other
        RunRequest fields (variants, sample, policy, ...)."""
        site_id = site_id or f"site_{uuid.uuid4().hex}"
        run_id = f"run_{uuid.uuid4().hex}"
        self.audience.sites.setdefault(site_id, []).extend(audience)
        await DeliveryRuns(self.store, self.clock).start(
            site_id,
            RunRequest(
                run_id=run_id,
                campaign_id=campaign_id or f"cmp_{run_id[4:12]}",
                payload=payload or shared_payload(run_id=run_id),
                ttl_seconds=ttl_seconds,
                urgency=urgency,
                subscriber_ids=list(subscriber_ids),
                selector=selector,
                profile_ids=list(profile_ids),
                content=content,
                contexts=list(contexts),
                **more,
            ),
        )
        self.workers.run_started()
        return site_id, run_id

    async def prepare_all(self) -> None:
        while await self.workers.prepare_once():
            pass

    async def send_all(self, owner: str = "w") -> int:
        """Sends chunks until none is due; returns how many were claimed."""
        claimed = 0
        while await self.workers.send_once(owner):
            claimed += 1
        return claimed

    async def deliver(self) -> None:
        """Prepare, send and relay until nothing is due now."""
        await self.prepare_all()
        await self.send_all()
        await self.workers.drain_outbox()


def harness_settings(settings_factory: Callable[..., Settings], **overrides: Any) -> Settings:
    values = {**FAST_DELIVERY, "delivery_chunk_size": 10, "delivery_prepare_page_size": 25}
    values.update(overrides)
    return settings_factory(**values)


@pytest.fixture
async def harness(store: DeliveryStore, settings_factory) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    made = Harness(store, harness_settings(settings_factory), FrozenClock())
    await made.workers.open()
    yield made
    await made.workers.close()


# The real services.


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
    # One client channel per server, by name ("delivery", "segment", ...).
    channels: dict[str, grpc.aio.Channel]
    # The servers by name (a test may restart one: replace it here).
    servers: dict[str, ManagedServer] = field(default_factory=dict)

    async def new_site(self, subject: str = "mailto:ops@clarion.test") -> Site:
        created = await create_site(self.settings, f"delivery test {uuid.uuid4().hex[:6]}", subject)
        return Site(created.site_id, created.api_key, created.vapid_public_key)

    def internal(self, site: Site) -> tuple[tuple[str, str], ...]:
        """What campaign sends: the internal token on behalf of the site."""
        return internal_metadata(self.settings.internal_token_value, site.site_id)

    async def subscriber(
        self, site: Site, profile_id: str = ""
    ) -> tuple[str, SimulatedSubscription]:
        """A simulator subscription registered with segment (attached to `profile_id`
        when given); returns (subscriber_id, sub)."""
        sub = self.simulator.mint_subscription(application_server_key=site.vapid_public_key)
        return await self.register(site, sub, profile_id), sub

    async def register(self, site: Site, sub: SimulatedSubscription, profile_id: str = "") -> str:
        registered = await self.segment.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
                ),
                browser=common_pb2.BROWSER_FIREFOX,
                timezone="UTC",
                profile_id=profile_id,
            ),
            metadata=site.metadata,
        )
        return registered.subscriber.subscriber_id

    def start_request(self, **overrides: Any) -> delivery_service_pb2.StartDeliveryRunRequest:
        run_id = str(overrides.pop("run_id", f"run_{uuid.uuid4().hex}"))
        values: dict[str, Any] = {
            "run_id": run_id,
            "campaign_id": f"cmp_{uuid.uuid4().hex}",
            "content": delivery_pb2.RunContent(
                payload=shared_payload(run_id=run_id),
                ttl_seconds=3600,
                urgency=common_pb2.URGENCY_HIGH,
            ),
        }
        values.update(overrides)
        return delivery_service_pb2.StartDeliveryRunRequest(**values)

    async def start_run(self, site: Site, **overrides: Any) -> delivery_pb2.DeliveryRun:
        response = await self.delivery.StartDeliveryRun(
            self.start_request(**overrides), metadata=self.internal(site)
        )
        return response.delivery_run

    async def get_run(self, site: Site, run_id: str) -> delivery_pb2.DeliveryRun:
        response = await self.delivery.GetDeliveryRun(
            delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id), metadata=self.internal(site)
        )
        return response.delivery_run

    async def wait_finished(
        self, site: Site, run_id: str, timeout: float = 20.0
    ) -> delivery_pb2.DeliveryRun:
        """The run once every recipient has an outcome (DONE, or FAILED with a finish time)."""
        found: list[delivery_pb2.DeliveryRun] = []

        async def finished() -> bool:
            run = await self.get_run(site, run_id)
            found[:] = [run]
            return run.HasField("finish_time")

        await eventually(finished, timeout=timeout, what=f"run {run_id} finished")
        return found[0]

    async def outcome(
        self, site: Site, run_id: str, subscriber_id: str
    ) -> delivery_pb2.RecipientOutcome:
        response = await self.delivery.GetRecipientOutcome(
            delivery_service_pb2.GetRecipientOutcomeRequest(
                run_id=run_id, subscriber_id=subscriber_id
            ),
            metadata=self.internal(site),
        )
        return response.outcome


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings,
    simulator: PushServiceSimulator,
    *,
    reporting_settings: Settings | None = None,
    delivery_clock: Clock | None = None,
) -> AsyncIterator[Stack]:
    """Campaign, segment, reporting (with `reporting_settings` when given) and delivery
    servers on ephemeral ports, and stubs to them; stopped when the block ends.
    `delivery_clock`: delivery's clock (default the system's)."""
    reporting_settings = reporting_settings or settings
    servers: dict[str, ManagedServer] = {
        "campaign": await create_campaign_server("127.0.0.1:0", settings),
        "segment": await create_segment_server("127.0.0.1:0", settings),
        "reporting": await create_reporting_server("127.0.0.1:0", reporting_settings),
        "delivery": await create_delivery_server("127.0.0.1:0", settings, clock=delivery_clock),
    }
    # Peers open their channels lazily, so the addresses can be filled in after binding.
    for name, server in servers.items():
        for each in (settings, reporting_settings):
            setattr(each, f"{name}_address", server.address)
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
            channels=channels,
            servers=servers,
        )
    finally:
        for channel in channels.values():
            await channel.close()
        # Delivery first, so in-flight sends finish while their peers are still up.
        for name in ("delivery", "campaign", "segment", "reporting"):
            await servers[name].stop()


@pytest.fixture(scope="module", params=ENCRYPTORS)
async def stack(
    request: pytest.FixtureRequest, settings_factory, simulator: PushServiceSimulator
) -> AsyncIterator[Stack]:
    settings: Settings = settings_factory(encryptor=request.param, **FAST_DELIVERY)
    async with running_stack(settings, simulator) as running:
        yield running
