"""SendCampaignNow's orchestration with in-memory fakes of the three peer ports.

The store is real (the session's database); only segment, delivery and reporting are
faked, at the domain's ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from services.campaign.domain import (
    CampaignDraft,
    Campaigns,
    PeerCallFailed,
    Recipient,
    Sites,
)
from services.campaign.store import CampaignRecord, CampaignStore, Notification, RunState
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for
from services.kit.errors import NotFound, Unavailable
from services.kit.grpcserver import ManagedServer


def recipients(count: int, start: int = 0) -> list[Recipient]:
    return [
        Recipient(f"sub_{i}", f"https://push.example/{i}", b"\x04" + b"k" * 64, b"a" * 16, 1)
        for i in range(start, start + count)
    ]


@dataclass
class FakeSegment:
    pages: list[list[Recipient]] = field(default_factory=list)
    fail_at_page: int | None = None
    requested_page_sizes: list[int] = field(default_factory=list)
    closed: bool = False

    async def reachable_pages(
        self, site_id: str, page_size: int
    ) -> AsyncGenerator[Sequence[Recipient], None]:
        self.requested_page_sizes.append(page_size)
        try:
            for index, page in enumerate(self.pages):
                if index == self.fail_at_page:
                    raise PeerCallFailed("segment.StreamReachableSubscribers", "UNAVAILABLE: down")
                yield page
        finally:
            self.closed = True


@dataclass
class FakeDeliveryRun:
    site_id: str
    campaign: CampaignRecord
    recipients: list[Recipient] = field(default_factory=list)
    started: bool = False


@dataclass
class FakeDelivery:
    fail_on: str = ""
    # The start lands in delivery but its reply is lost (a timeout on the way back).
    start_reply_lost: bool = False
    block_enqueue: asyncio.Event | None = None
    runs: dict[str, FakeDeliveryRun] = field(default_factory=dict)

    def _maybe_fail(self, step: str) -> None:
        if self.fail_on == step:
            raise PeerCallFailed(f"delivery.{step}", "UNAVAILABLE: connection refused")

    async def open_run(self, site_id: str, run_id: str, campaign: CampaignRecord) -> None:
        self._maybe_fail("CreateDeliveryRun")
        self.runs.setdefault(run_id, FakeDeliveryRun(site_id, campaign))

    async def enqueue(self, site_id: str, run_id: str, recipients: Sequence[Recipient]) -> None:
        if self.block_enqueue is not None:
            await self.block_enqueue.wait()
        self._maybe_fail("EnqueueRecipients")
        self.runs[run_id].recipients.extend(recipients)

    async def start(self, site_id: str, run_id: str) -> None:
        self._maybe_fail("StartDeliveryRun")
        self.runs[run_id].started = True
        if self.start_reply_lost:
            raise PeerCallFailed("delivery.StartDeliveryRun", "DEADLINE_EXCEEDED: no reply")

    async def started(self, site_id: str, run_id: str) -> bool:
        self._maybe_fail("GetDeliveryRun")
        run = self.runs.get(run_id)
        return run is not None and run.started


@dataclass
class FakeReporting:
    fail: bool = False
    audiences: dict[str, tuple[str, int]] = field(default_factory=dict)

    async def record_audience(
        self, site_id: str, run_id: str, campaign_id: str, audience: int
    ) -> None:
        if self.fail:
            raise PeerCallFailed("reporting.RecordRunAudience", "DEADLINE_EXCEEDED: slow")
        self.audiences[run_id] = (campaign_id, audience)


@dataclass
class World:
    campaigns: Campaigns
    segment: FakeSegment
    delivery: FakeDelivery
    reporting: FakeReporting
    site_id: str
    campaign: CampaignRecord


@pytest.fixture(scope="session")
async def store(
    campaign_settings: Settings, campaign_server: ManagedServer
) -> AsyncIterator[CampaignStore]:
    # The server fixture has migrated the database.
    engine = create_engine_for(campaign_settings.database_url_for("campaign"))
    yield CampaignStore(engine)
    await engine.dispose()


@pytest.fixture
async def world(store: CampaignStore) -> World:
    clock = FrozenClock()
    segment, delivery, reporting = FakeSegment(), FakeDelivery(), FakeReporting()
    campaigns = Campaigns(store, clock, segment, delivery, reporting, audience_page_size=2)
    site = await Sites(store, clock).create("Unit site", "mailto:ops@example.com")
    campaign = await campaigns.create(
        site.site_id, CampaignDraft(name="", notification=Notification(title="Hello"))
    )
    return World(campaigns, segment, delivery, reporting, site.site_id, campaign)


class TestSendCampaignNow:
    async def test_queues_every_page_then_starts_the_run(self, world: World) -> None:
        world.segment.pages = [recipients(2), recipients(2, start=2), recipients(1, start=4)]

        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert run.state == RunState.QUEUED
        assert run.audience == 5
        assert run.run_id.startswith("run_") and run.failure_reason == ""
        delivered = world.delivery.runs[run.run_id]
        assert delivered.campaign == world.campaign and delivered.site_id == world.site_id
        assert [r.subscriber_id for r in delivered.recipients] == [f"sub_{i}" for i in range(5)]
        assert delivered.started
        assert world.reporting.audiences[run.run_id] == (world.campaign.campaign_id, 5)
        assert world.segment.requested_page_sizes == [2]
        assert await world.campaigns.get_run(world.site_id, run.run_id) == run

    async def test_no_reachable_subscribers_is_a_queued_run_of_zero(self, world: World) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert (run.state, run.audience) == (RunState.QUEUED, 0)
        assert world.delivery.runs[run.run_id].started
        assert world.reporting.audiences[run.run_id] == (world.campaign.campaign_id, 0)

    async def test_each_send_is_a_new_run(self, world: World) -> None:
        first = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        second = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert first.run_id != second.run_id

    @pytest.mark.parametrize("step", ["CreateDeliveryRun", "EnqueueRecipients", "StartDeliveryRun"])
    async def test_a_delivery_failure_fails_the_run(self, world: World, step: str) -> None:
        world.segment.pages = [recipients(2)]
        world.delivery.fail_on = step

        with pytest.raises(Unavailable) as raised:
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert raised.value.reason == "RUN_QUEUEING_FAILED"
        assert raised.value.metadata["step"] == f"delivery.{step}"
        run_id = raised.value.metadata["run_id"]
        assert run_id in raised.value.message and f"delivery.{step}" in raised.value.message
        run = await world.campaigns.get_run(world.site_id, run_id)
        assert run.state == RunState.FAILED
        assert f"delivery.{step}" in run.failure_reason
        assert not any(r.started for r in world.delivery.runs.values())

    async def test_a_start_whose_reply_was_lost_is_a_queued_run(self, world: World) -> None:
        world.segment.pages = [recipients(3)]
        world.delivery.start_reply_lost = True

        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert (run.state, run.audience) == (RunState.QUEUED, 3)
        assert world.delivery.runs[run.run_id].started

    async def test_an_unconfirmable_start_says_it_could_not_be_checked(self, world: World) -> None:
        world.segment.pages = [recipients(1)]
        world.delivery.start_reply_lost = True
        world.delivery.fail_on = "GetDeliveryRun"

        with pytest.raises(Unavailable) as raised:
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        run = await world.campaigns.get_run(world.site_id, raised.value.metadata["run_id"])
        assert run.state == RunState.FAILED
        assert "could not be checked" in run.failure_reason
        assert "nothing was sent" not in raised.value.message
        assert "check GetDeliveryRun" in raised.value.message

    async def test_a_segment_failure_mid_stream_fails_the_run(self, world: World) -> None:
        world.segment.pages = [recipients(2), recipients(2, start=2)]
        world.segment.fail_at_page = 1

        with pytest.raises(Unavailable) as raised:
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        run = await world.campaigns.get_run(world.site_id, raised.value.metadata["run_id"])
        assert run.state == RunState.FAILED
        assert "segment.StreamReachableSubscribers" in run.failure_reason
        assert not world.delivery.runs[run.run_id].started

    async def test_a_reporting_failure_fails_the_run_before_anything_is_sent(
        self, world: World
    ) -> None:
        world.segment.pages = [recipients(1)]
        world.reporting.fail = True

        with pytest.raises(Unavailable) as raised:
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert raised.value.metadata["step"] == "reporting.RecordRunAudience"
        run = await world.campaigns.get_run(world.site_id, raised.value.metadata["run_id"])
        assert run.state == RunState.FAILED
        assert not world.delivery.runs[run.run_id].started

    async def test_the_audience_stream_is_closed_when_delivery_fails(self, world: World) -> None:
        world.segment.pages = [recipients(2), recipients(2, start=2)]
        world.delivery.fail_on = "EnqueueRecipients"

        with pytest.raises(Unavailable):
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert world.segment.closed

    async def test_a_cancelled_send_fails_the_run(self, world: World) -> None:
        world.segment.pages = [recipients(2)]
        world.delivery.block_enqueue = asyncio.Event()
        send = asyncio.create_task(
            world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        )
        while not world.delivery.runs:
            await asyncio.sleep(0)
        run_id = next(iter(world.delivery.runs))

        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send

        run = await world.campaigns.get_run(world.site_id, run_id)
        assert run.state == RunState.FAILED
        assert not world.delivery.runs[run_id].started

    async def test_another_sites_campaign_is_not_found_and_nothing_is_queued(
        self, world: World, store: CampaignStore
    ) -> None:
        other = await Sites(store, FrozenClock()).create("Other", "mailto:ops@example.com")

        with pytest.raises(NotFound) as raised:
            await world.campaigns.send_now(other.site_id, world.campaign.campaign_id)

        assert raised.value.reason == "CAMPAIGN_NOT_FOUND"
        assert world.delivery.runs == {}

    async def test_another_sites_run_is_not_found(self, world: World, store: CampaignStore) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        other = await Sites(store, FrozenClock()).create("Other", "mailto:ops@example.com")

        with pytest.raises(NotFound) as raised:
            await world.campaigns.get_run(other.site_id, run.run_id)

        assert raised.value.reason == "RUN_NOT_FOUND"
