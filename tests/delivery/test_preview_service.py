"""DeliveryService.PreviewDeliveryPlan over real gRPC: real campaign, segment and delivery
servers sharing one FrozenClock, the audience registered with segment as browsers do.
The plan's rows per hour, browser and variant under quiet hours, a frequency cap (with
people already at it) and a control group; a sample and variants; a listed audience; a
start put off; and bad input refused with INVALID_ARGUMENT."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.segment.v1 import segment_pb2, segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.campaign.server import create_server as create_campaign_server
from services.delivery import policy_store
from services.delivery.domain.policies import in_control_group, in_sample, variant_of
from services.delivery.models import DeliveryRunRow
from services.delivery.server import create_server as create_delivery_server
from services.kit.auth import internal_metadata
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.errors import error_info
from services.kit.grpcserver import ManagedServer, client_channel
from services.segment.models import KeptAudienceRow
from services.segment.server import create_server as create_segment_server
from tests.delivery.conftest import FAST_DELIVERY
from tests.support.sites import bearer

# 06:30 UTC in January: 07:30 in Berlin and 01:30 in New York (inside 22:00-08:00),
# 15:30 in Tokyo (outside).
START = datetime(2027, 1, 15, 6, 30, tzinfo=UTC)
CAMPAIGN = "cmp_preview_rpc"
CHROME, FIREFOX, SAFARI = (
    common_pb2.BROWSER_CHROME,
    common_pb2.BROWSER_FIREFOX,
    common_pb2.BROWSER_SAFARI,
)
QUIET = delivery_pb2.RunPolicy(quiet_start="22:00", quiet_end="08:00", quiet_delay=True)


def hour(h: int) -> datetime:
    return START.replace(hour=h, minute=0)


@dataclass
class Shop:
    settings: Settings
    clock: FrozenClock
    delivery: delivery_service_pb2_grpc.DeliveryServiceStub
    segment: segment_service_pb2_grpc.SegmentServiceStub
    simulator: PushServiceSimulator
    site_id: str
    api_key: str

    @property
    def internal(self) -> tuple[tuple[str, str], ...]:
        return internal_metadata(self.settings.internal_token_value, self.site_id)

    async def browser(self, browser: int, timezone: str, profile_id: str = "") -> str:
        """A browser subscribed to the site; its subscriber id."""
        sub = self.simulator.mint_subscription()
        response = await self.segment.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
                ),
                browser=browser,  # type: ignore[arg-type]
                timezone=timezone,
                profile_id=profile_id,
            ),
            metadata=bearer(self.api_key),
            timeout=10,
        )
        return response.subscriber.subscriber_id

    async def preview(self, **fields: Any) -> delivery_service_pb2.PreviewDeliveryPlanResponse:
        fields.setdefault("campaign_id", CAMPAIGN)
        fields.setdefault("ttl_seconds", 24 * 3600)
        return await self.delivery.PreviewDeliveryPlan(
            delivery_service_pb2.PreviewDeliveryPlanRequest(**fields),
            metadata=self.internal,
            timeout=30,
        )

    def already_sent(self, people: list[str], day: datetime) -> None:
        """Counts a send today for each person, as a capped run's admission does."""
        engine = create_engine(self.settings.database_url)
        try:
            with engine.begin() as conn:
                policy_store.reserve_sends(
                    conn, self.site_id, [(p, day.date()) for p in people], 1000, 0, day
                )
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
async def servers(
    settings_factory,
) -> AsyncIterator[tuple[Settings, FrozenClock, dict[str, ManagedServer]]]:  # type: ignore[no-untyped-def]
    settings: Settings = settings_factory(**FAST_DELIVERY)
    clock = FrozenClock(START)
    made = {
        "campaign": await create_campaign_server("127.0.0.1:0", settings, clock=clock),
        "segment": await create_segment_server("127.0.0.1:0", settings, clock=clock),
        "delivery": await create_delivery_server("127.0.0.1:0", settings, clock=clock),
    }
    for name, server in made.items():
        setattr(settings, f"{name}_address", server.address)
    for server in made.values():
        await server.start()
    try:
        yield settings, clock, made
    finally:
        for name in ("delivery", "campaign", "segment"):
            await made[name].stop()


@pytest.fixture
async def shop(
    servers: tuple[Settings, FrozenClock, dict[str, ManagedServer]],
    simulator: PushServiceSimulator,
) -> AsyncIterator[Shop]:
    settings, clock, made = servers
    clock.advance(seconds=(START - clock.now()).total_seconds())
    site = await create_site(settings, f"preview {uuid.uuid4().hex[:6]}", "mailto:ops@shop.test")
    async with (
        client_channel(made["delivery"].address) as delivery,
        client_channel(made["segment"].address) as segment,
    ):
        yield Shop(
            settings,
            clock,
            delivery_service_pb2_grpc.DeliveryServiceStub(delivery),
            segment_service_pb2_grpc.SegmentServiceStub(segment),
            simulator,
            site.site_id,
            site.api_key,
        )


Rows = dict[tuple[datetime, int, str], tuple[int, dict[int, int]]]


def rows_of(response: delivery_service_pb2.PreviewDeliveryPlanResponse) -> Rows:
    keys = [(r.hour_start.ToDatetime(tzinfo=UTC), r.browser, r.variant_id) for r in response.rows]
    assert keys == sorted(keys), "rows not in time, browser, variant order"
    return {
        key: (row.sent, {s.reason: s.count for s in row.suppressed})
        for key, row in zip(keys, response.rows, strict=True)
    }


class Expected:
    """Rows built up one recipient at a time."""

    def __init__(self) -> None:
        self.sent: Counter[tuple[datetime, int, str]] = Counter()
        self.suppressed: dict[tuple[datetime, int, str], Counter[int]] = {}

    def add(self, at: datetime, browser: int, reason: int = 0, variant: str = "") -> None:
        key = (at, browser, variant)
        self.suppressed.setdefault(key, Counter())
        if reason:
            self.suppressed[key][reason] += 1
        else:
            self.sent[key] += 1

    def rows(self) -> Rows:
        return {
            key: (self.sent[key], dict(self.suppressed[key])) for key in sorted(self.suppressed)
        }


CONTROL = common_pb2.DELIVERY_REASON_CONTROL_GROUP
CAPPED = common_pb2.DELIVERY_REASON_FREQUENCY_CAP


class TestThePlanPerHourAndBrowser:
    async def test_quiet_hours_cap_and_control_group(self, shop: Shop) -> None:
        # Twelve people, each with Chrome in Berlin and Firefox in New York; six
        # anonymous Safari browsers in Tokyo. Two people had their one push today.
        people = [f"p{i}" for i in range(12)]
        for person in people:
            await shop.browser(CHROME, "Europe/Berlin", person)
            await shop.browser(FIREFOX, "America/New_York", person)
        tokyo = [await shop.browser(SAFARI, "Asia/Tokyo") for _ in range(6)]
        held = {p for p in people if in_control_group(f"p:{p}", CAMPAIGN, 20)}
        at_cap = [p for p in people if p not in held][:2]
        assert held, "names whose hash holds some out"
        shop.already_sent([f"p:{p}" for p in at_cap], START)
        policy = delivery_pb2.RunPolicy(cap_per_day=1, control_group_percent=20)
        policy.MergeFrom(QUIET)

        response = await shop.preview(policy=policy)

        expected = Expected()
        for person in people:
            if person in held:  # held out when queued, at the start
                expected.add(hour(6), CHROME, CONTROL)
                expected.add(hour(6), FIREFOX, CONTROL)
                continue
            # Berlin's 08:00 is 07:00 UTC; New York's 13:00 UTC, by when the person had
            # its one push of the day (in Berlin, or before the run).
            expected.add(hour(7), CHROME, CAPPED if person in at_cap else 0)
            expected.add(hour(13), FIREFOX, CAPPED)
        for subscriber_id in tokyo:
            held_out = in_control_group(f"s:{subscriber_id}", CAMPAIGN, 20)
            expected.add(hour(6), SAFARI, CONTROL if held_out else 0)
        assert rows_of(response) == expected.rows()
        assert response.audience == 30
        assert response.snapshot_time.ToDatetime(tzinfo=UTC) == START

    async def test_quiet_hours_that_discard_and_a_throttle_over_the_hour(self, shop: Shop) -> None:
        for _ in range(4):
            await shop.browser(CHROME, "Europe/Berlin")
        for _ in range(40):
            await shop.browser(SAFARI, "Asia/Tokyo")
        policy = delivery_pb2.RunPolicy(
            quiet_start="22:00", quiet_end="08:00", campaign_max_per_minute=1
        )

        response = await shop.preview(policy=policy)

        # Tokyo at one a minute: 06:30-06:59 takes 30 pushes, 07:00-07:09 the other 10.
        assert rows_of(response) == {
            (hour(6), CHROME, ""): (0, {common_pb2.DELIVERY_REASON_DND: 4}),
            (hour(6), SAFARI, ""): (30, {}),
            (hour(7), SAFARI, ""): (10, {}),
        }

    async def test_a_start_put_off_plans_from_then_with_the_audience_as_it_is_now(
        self, shop: Shop
    ) -> None:
        await shop.browser(CHROME, "Europe/Berlin")
        await shop.browser(FIREFOX, "America/New_York")

        response = await shop.preview(policy=QUIET, start_after_seconds=3 * 3600)

        # From 09:30 UTC: Berlin (10:30) at once, New York still at its 08:00.
        assert rows_of(response) == {
            (hour(9), CHROME, ""): (1, {}),
            (hour(13), FIREFOX, ""): (1, {}),
        }
        assert response.snapshot_time.ToDatetime(tzinfo=UTC) == START

    async def test_the_ttl_ends_what_waits_too_long(self, shop: Shop) -> None:
        await shop.browser(FIREFOX, "America/New_York")

        response = await shop.preview(policy=QUIET, ttl_seconds=3600)

        assert rows_of(response) == {
            (hour(7), FIREFOX, ""): (0, {common_pb2.DELIVERY_REASON_EXPIRED_TTL: 1})
        }


class TestSamplesVariantsAndAudiences:
    async def test_a_sample_leaves_the_others_out_and_each_person_gets_its_variant(
        self, shop: Shop
    ) -> None:
        subscribers = [await shop.browser(CHROME, "UTC") for _ in range(60)]
        split = [("A", 30), ("B", 70)]

        response = await shop.preview(
            audience=delivery_pb2.RunAudience(
                sample=delivery_pb2.AudienceSample(start_basis_points=0, end_basis_points=5000)
            ),
            variants=[delivery_pb2.RunVariant(variant_id=v, weight_percent=w) for v, w in split],
        )

        inside = [s for s in subscribers if in_sample(f"s:{s}", CAMPAIGN, 0, 5000)]
        per_variant = Counter(variant_of(f"s:{s}", CAMPAIGN, split) for s in inside)
        assert 0 < len(inside) < len(subscribers)
        assert response.audience == len(inside)
        assert rows_of(response) == {
            (hour(6), CHROME, variant): (count, {}) for variant, count in per_variant.items()
        }

    async def test_the_two_halves_of_a_sample_make_the_whole_audience(self, shop: Shop) -> None:
        for _ in range(25):
            await shop.browser(FIREFOX, "UTC")
        halves = [
            await shop.preview(
                audience=delivery_pb2.RunAudience(
                    sample=delivery_pb2.AudienceSample(
                        start_basis_points=start, end_basis_points=end
                    )
                )
            )
            for start, end in ((0, 1000), (1000, 10_000))
        ]

        assert sum(half.audience for half in halves) == 25
        assert sum(row.sent for half in halves for row in half.rows) == 25

    async def test_a_listed_audience_is_its_people_and_subscribers(self, shop: Shop) -> None:
        listed = await shop.browser(CHROME, "UTC")
        await shop.browser(CHROME, "UTC", "ann")
        await shop.browser(SAFARI, "UTC", "ann")
        await shop.browser(FIREFOX, "UTC")  # not listed

        response = await shop.preview(
            audience=delivery_pb2.RunAudience(subscriber_ids=[listed], profile_ids=["ann"])
        )

        assert rows_of(response) == {(hour(6), CHROME, ""): (2, {}), (hour(6), SAFARI, ""): (1, {})}

    async def test_a_segment_reads_who_it_selects_and_stores_no_run(self, shop: Shop) -> None:
        await shop.browser(SAFARI, "UTC", "vip")
        await shop.browser(CHROME, "UTC", "other")
        selector = segment_pb2.AudienceSelector(
            definition=segment_pb2.SegmentDefinition(
                condition=segment_pb2.Condition(
                    subscriber=segment_pb2.SubscriberCondition(browsers=[SAFARI])
                )
            )
        )

        response = await shop.preview(audience=delivery_pb2.RunAudience(selector=selector))

        assert rows_of(response) == {(hour(6), SAFARI, ""): (1, {})}
        kept = KeptAudienceRow.__table__
        engine = create_engine(shop.settings.database_url)
        try:
            with engine.connect() as conn:
                runs = conn.execute(
                    select(func.count()).where(DeliveryRunRow.__table__.c.site_id == shop.site_id)
                ).scalar_one()
                keys = conn.execute(
                    select(kept.c.audience_key).where(kept.c.site_id == shop.site_id)
                ).scalars()
                kept_under = list(keys)
        finally:
            engine.dispose()
        assert runs == 0
        # Segment kept the members under a key of the preview's own, never a run's.
        assert len(kept_under) == 1 and kept_under[0].startswith("preview_")

    async def test_a_segment_that_does_not_exist_is_a_failed_precondition(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.preview(
                audience=delivery_pb2.RunAudience(
                    selector=segment_pb2.AudienceSelector(segment_id="seg_nothere")
                )
            )

        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(raised.value).reason == "AUDIENCE_REFUSED"
        assert "seg_nothere" in (raised.value.details() or "")


def variants(*split: tuple[str, int]) -> list[delivery_pb2.RunVariant]:
    return [delivery_pb2.RunVariant(variant_id=v, weight_percent=w) for v, w in split]


class TestBadInput:
    @pytest.mark.parametrize(
        ("fields", "reason", "field"),
        [
            ({"campaign_id": ""}, "MISSING_FIELD", "campaign_id"),
            ({"ttl_seconds": 0}, "INVALID_TTL", "ttl_seconds"),
            (
                {"policy": delivery_pb2.RunPolicy(quiet_start="22:00")},
                "INVALID_QUIET_HOURS",
                "policy.quiet_end",
            ),
            (
                {"policy": delivery_pb2.RunPolicy(default_timezone="Mars/Olympus")},
                "INVALID_TIMEZONE",
                "policy.default_timezone",
            ),
            (
                {"policy": delivery_pb2.RunPolicy(control_group_percent=51)},
                "INVALID_CONTROL_GROUP",
                "policy.control_group_percent",
            ),
            (
                {"timing": delivery_pb2.RunTiming(local_time="25:00")},
                "INVALID_LOCAL_TIME",
                "timing.local_time",
            ),
            ({"variants": variants(("A", 50), ("B", 40))}, "INVALID_VARIANT_SPLIT", "variants"),
            (
                {"variants": variants(("A", 0), ("B", 100))},
                "INVALID_VARIANT_SPLIT",
                "variants[0].weight_percent",
            ),
            (
                {"variants": variants(("A", 50), ("A", 50))},
                "INVALID_VARIANT",
                "variants[1].variant_id",
            ),
            ({"variants": variants(("", 100))}, "INVALID_VARIANT", "variants[0].variant_id"),
            (
                {
                    "audience": delivery_pb2.RunAudience(
                        sample=delivery_pb2.AudienceSample(
                            start_basis_points=5000, end_basis_points=5000
                        )
                    )
                },
                "INVALID_SAMPLE",
                "audience.sample.end_basis_points",
            ),
            (
                {
                    "audience": delivery_pb2.RunAudience(
                        profile_ids=[f"p{i}" for i in range(10_001)]
                    )
                },
                "TOO_MANY_RECIPIENTS",
                "audience.profile_ids",
            ),
            (
                {
                    "audience": delivery_pb2.RunAudience(
                        profile_ids=[f"p{i}" for i in range(6000)],
                        subscriber_ids=[f"s{i}" for i in range(5000)],
                    )
                },
                "TOO_MANY_RECIPIENTS",
                "audience",
            ),
            (
                {"audience": delivery_pb2.RunAudience(subscriber_ids=["ok", "not ok"])},
                "INVALID_ID",
                "audience.subscriber_ids[1]",
            ),
        ],
    )
    async def test_is_refused_naming_the_field(
        self, shop: Shop, fields: dict[str, Any], reason: str, field: str
    ) -> None:
        await shop.browser(CHROME, "UTC")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.preview(**fields)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(raised.value)
        assert (info.reason, info.metadata["field"]) == (reason, field)

    async def test_a_site_api_key_is_refused(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.delivery.PreviewDeliveryPlan(
                delivery_service_pb2.PreviewDeliveryPlanRequest(
                    campaign_id=CAMPAIGN, ttl_seconds=60
                ),
                metadata=bearer(shop.api_key),
                timeout=10,
            )

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(raised.value).reason == "INTERNAL_ONLY"
