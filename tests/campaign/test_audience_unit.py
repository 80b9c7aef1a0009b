"""A campaign's audience in the campaign domain: checked by segment (a fake of the port)
before it is kept, refusals named relative to the request, nothing stored on refusal,
and each run handed to delivery with the audience the campaign had when it started.
On every database backend; the real segment is in tests/e2e/test_campaign_audience.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from clarion.segment.v1 import profile_pb2, segment_pb2
from services.campaign.domain import CampaignDraft, Campaigns, Sites
from services.campaign.domain.content import Notification
from services.campaign.store import CampaignRecord, CampaignStore
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.errors import InvalidArgument, NotFound, Unavailable
from services.kit.grpcserver import open_service_database
from tests.campaign.helpers import FakeSegment
from tests.campaign.test_send_now_unit import FakeDelivery

SEGMENT_ID = "seg_0123456789abcdef0123456789abcdef"
SAVED = segment_pb2.AudienceSelector(segment_id=SEGMENT_ID)
BAD_FIELD = "audience.definition.condition.all.conditions[1].property.values"


def in_city(city: str) -> segment_pb2.AudienceSelector:
    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(
            condition=segment_pb2.Condition(
                property=segment_pb2.PropertyCondition(
                    name="city",
                    operator=segment_pb2.PROPERTY_OPERATOR_EQUALS,
                    values=[profile_pb2.PropertyValue(string_value=city)],
                )
            )
        )
    )


@dataclass
class World:
    campaigns: Campaigns
    store: CampaignStore
    delivery: FakeDelivery
    segment: FakeSegment
    clock: FrozenClock
    site_id: str

    async def create(self, audience: segment_pb2.AudienceSelector | None = None) -> CampaignRecord:
        return await self.campaigns.create(
            self.site_id,
            CampaignDraft(
                name="Sale",
                notification=Notification(
                    title="Hello", body="World", target_url="https://shop.example/"
                ),
                audience=audience,
            ),
        )

    async def set_audience(
        self, campaign_id: str, audience: segment_pb2.AudienceSelector | None
    ) -> CampaignRecord:
        changes = CampaignDraft(name="", notification=Notification(), audience=audience)
        return await self.campaigns.update(self.site_id, campaign_id, changes, ["audience"])

    async def stored_campaigns(self) -> list[CampaignRecord]:
        return await self.store.list_campaigns(self.site_id, "", 100)


@pytest.fixture(scope="module")
async def store(settings_factory: Callable[..., Settings]) -> AsyncIterator[CampaignStore]:
    engine = await open_service_database("campaign", settings_factory())
    yield CampaignStore(engine)
    await engine.dispose()


@pytest.fixture
async def world(store: CampaignStore) -> World:
    clock = FrozenClock()
    site = await Sites(store, clock).create("Audience site", "mailto:ops@example.com")
    delivery = FakeDelivery(site_id=site.site_id)
    segment = FakeSegment()
    segment.segments.add(SEGMENT_ID)
    return World(
        Campaigns(store, clock, delivery, segment), store, delivery, segment, clock, site.site_id
    )


class TestCreateWithAnAudience:
    async def test_a_saved_segment_is_checked_kept_and_read_back(self, world: World) -> None:
        created = await world.create(SAVED)

        assert world.segment.checked == [SAVED]
        assert created.audience == SAVED
        assert (await world.campaigns.get(world.site_id, created.campaign_id)).audience == SAVED
        assert [c.audience for c in await world.stored_campaigns()] == [SAVED]

    async def test_without_an_audience_segment_is_not_asked(self, world: World) -> None:
        created = await world.create()
        # A selector with neither kind set means every subscriber too.
        also = await world.create(segment_pb2.AudienceSelector())

        assert world.segment.checked == []
        assert created.audience is None and also.audience is None

    async def test_an_unknown_segment_is_not_found_and_nothing_is_stored(
        self, world: World
    ) -> None:
        with pytest.raises(NotFound) as raised:
            await world.create(segment_pb2.AudienceSelector(segment_id="seg_nope"))

        assert raised.value.reason == "SEGMENT_NOT_FOUND"
        assert raised.value.metadata["field"] == "audience.segment_id"
        assert raised.value.metadata["segment_id"] == "seg_nope"
        assert await world.stored_campaigns() == []

    async def test_a_refused_definition_names_the_field_and_nothing_is_stored(
        self, world: World
    ) -> None:
        world.segment.refuse_definition = (BAD_FIELD, "PROPERTY_TYPE_MISMATCH")

        with pytest.raises(InvalidArgument) as raised:
            await world.create(in_city("Paris"))

        assert raised.value.reason == "PROPERTY_TYPE_MISMATCH"
        assert raised.value.metadata["field"] == BAD_FIELD
        assert BAD_FIELD in raised.value.message
        assert await world.stored_campaigns() == []

    async def test_segment_down_is_unavailable_and_nothing_is_stored(self, world: World) -> None:
        world.segment.down = True

        with pytest.raises(Unavailable) as raised:
            await world.create(SAVED)

        assert raised.value.reason == "SEGMENT_UNAVAILABLE"
        assert "segment unreachable" in raised.value.message
        assert await world.stored_campaigns() == []

    async def test_a_repeated_request_id_returns_the_first_campaign_without_asking_again(
        self, world: World
    ) -> None:
        draft = CampaignDraft(
            name="Once",
            notification=Notification(title="t", target_url="https://shop.example/"),
            audience=SAVED,
            request_id="r1",
        )
        first = await world.campaigns.create(world.site_id, draft)
        world.segment.down = True  # a repeat must not depend on segment
        repeat = await world.campaigns.create(world.site_id, draft)

        assert repeat.campaign_id == first.campaign_id
        assert world.segment.checked == [SAVED]


class TestUpdateTheAudience:
    async def test_sets_changes_and_clears_it(self, world: World) -> None:
        campaign = await world.create()

        targeted = await world.set_audience(campaign.campaign_id, SAVED)
        assert targeted.audience == SAVED
        adhoc = await world.set_audience(campaign.campaign_id, in_city("Paris"))
        assert adhoc.audience == in_city("Paris")
        cleared = await world.set_audience(campaign.campaign_id, None)
        assert cleared.audience is None

        assert world.segment.checked == [SAVED, in_city("Paris")]
        assert (await world.campaigns.get(world.site_id, campaign.campaign_id)).audience is None

    async def test_other_paths_leave_the_audience_alone(self, world: World) -> None:
        campaign = await world.create(SAVED)
        changes = CampaignDraft(name="Renamed", notification=Notification())
        updated = await world.campaigns.update(world.site_id, campaign.campaign_id, changes, ["name"])
        assert (updated.name, updated.audience) == ("Renamed", SAVED)
        assert world.segment.checked == [SAVED]  # not checked again

    async def test_a_refused_definition_is_named_in_the_request_and_nothing_changes(
        self, world: World
    ) -> None:
        campaign = await world.create(SAVED)
        world.segment.refuse_definition = (BAD_FIELD, "PROPERTY_TYPE_MISMATCH")

        with pytest.raises(InvalidArgument) as raised:
            await world.set_audience(campaign.campaign_id, in_city("Paris"))

        assert raised.value.reason == "PROPERTY_TYPE_MISMATCH"
        assert raised.value.metadata["field"] == "campaign." + BAD_FIELD
        assert "campaign." + BAD_FIELD in raised.value.message
        stored = await world.campaigns.get(world.site_id, campaign.campaign_id)
        assert (stored.audience, stored.version) == (SAVED, campaign.version)

    async def test_an_unknown_segment_is_not_found(self, world: World) -> None:
        campaign = await world.create()

        with pytest.raises(NotFound) as raised:
            await world.set_audience(
                campaign.campaign_id, segment_pb2.AudienceSelector(segment_id="seg_gone")
            )

        assert raised.value.reason == "SEGMENT_NOT_FOUND"
        assert raised.value.metadata["field"] == "campaign.audience.segment_id"
        assert (await world.campaigns.get(world.site_id, campaign.campaign_id)).audience is None

    async def test_segment_down_is_unavailable_and_nothing_changes(self, world: World) -> None:
        campaign = await world.create()
        world.segment.down = True

        with pytest.raises(Unavailable) as raised:
            await world.set_audience(campaign.campaign_id, SAVED)

        assert raised.value.reason == "SEGMENT_UNAVAILABLE"
        assert (await world.campaigns.get(world.site_id, campaign.campaign_id)).audience is None


class TestRunsCarryTheAudience:
    async def test_the_run_is_handed_over_with_the_campaigns_audience(self, world: World) -> None:
        campaign = await world.create(in_city("Paris"))

        run = await world.campaigns.send_now(world.site_id, campaign.campaign_id)

        assert run.audience == in_city("Paris")
        assert world.delivery.runs[run.run_id].audience == in_city("Paris")

    async def test_a_campaign_without_an_audience_hands_over_none(self, world: World) -> None:
        campaign = await world.create()
        run = await world.campaigns.send_now(world.site_id, campaign.campaign_id)
        assert world.delivery.runs[run.run_id].audience is None

    async def test_a_run_keeps_the_audience_the_campaign_had_when_it_started(
        self, world: World
    ) -> None:
        campaign = await world.create(in_city("Paris"))
        world.delivery.unreachable_times = 1  # the hand-off waits for the background loop

        run = await world.campaigns.send_now(world.site_id, campaign.campaign_id)
        assert run.handoff_pending
        await world.set_audience(campaign.campaign_id, SAVED)
        world.clock.advance(seconds=1)
        assert await world.campaigns.hand_off_pending() >= 1

        assert world.delivery.runs[run.run_id].audience == in_city("Paris")
        assert (await world.campaigns.get_run(world.site_id, run.run_id)).audience == in_city(
            "Paris"
        )
