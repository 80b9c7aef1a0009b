"""Runs in the campaign domain, with an in-memory fake of the DeliveryPort.

The store is real (a database of this module's own, so the hand-off of pending runs
sees no other suite's runs); only delivery is faked, at the domain's port. Each fake
takes only its own test's site's runs: another test's leftovers look undeliverable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from clarion.campaign.v1 import campaign_pb2
from services.campaign.domain import (
    CampaignDraft,
    Campaigns,
    DeliveryRunView,
    PeerCallFailed,
    Sites,
)
from services.campaign.domain import campaigns as campaigns_module
from services.campaign.domain.content import Notification, render_payload
from services.campaign.domain.policies import RunPolicy
from services.campaign.server import HandoffLoop
from services.campaign.store import (
    CampaignRecord,
    CampaignStore,
    RunProgress,
    RunRecord,
    RunState,
    Urgency,
)
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.errors import InvalidArgument, NotFound
from services.kit.grpcserver import open_service_database
from tests.campaign.helpers import FakeSegment, eventually

UNREACHABLE = "UNAVAILABLE: connection refused"


@dataclass
class FakeDelivery:
    """Delivery as the domain sees it: takes runs (idempotently) and reports on them."""

    site_id: str
    # The next this many StartDeliveryRun calls fail as if delivery were down.
    unreachable_times: int = 0
    # Delivery refuses every run for good with this detail.
    refusal: str = ""
    # StartDeliveryRun does not answer until this is set.
    answer: asyncio.Event | None = None
    reads_fail: bool = False
    runs: dict[str, RunRecord] = field(default_factory=dict)
    views: dict[str, DeliveryRunView] = field(default_factory=dict)
    start_calls: list[str] = field(default_factory=list)
    # The merged policy each run was handed with (the last hand-off's).
    policies: dict[str, RunPolicy | None] = field(default_factory=dict)
    read_calls: list[list[str]] = field(default_factory=list)

    async def start_run(
        self,
        run: RunRecord,
        default_timezone: str = "",
        policy: RunPolicy | None = None,
        utm: campaign_pb2.UtmParameters | None = None,
    ) -> DeliveryRunView:
        if run.site_id != self.site_id:
            raise PeerCallFailed("delivery.StartDeliveryRun", UNREACHABLE)
        self.start_calls.append(run.run_id)
        self.policies[run.run_id] = policy
        if self.answer is not None:
            await self.answer.wait()
        if self.refusal:
            raise PeerCallFailed("delivery.StartDeliveryRun", self.refusal, permanent=True)
        if self.unreachable_times > 0:
            self.unreachable_times -= 1
            raise PeerCallFailed("delivery.StartDeliveryRun", UNREACHABLE)
        self.runs.setdefault(run.run_id, run)
        return self.views.setdefault(
            run.run_id, DeliveryRunView(run.run_id, RunState.PREPARING, RunProgress(), "", None)
        )

    async def get_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, DeliveryRunView]:
        self.read_calls.append(list(run_ids))
        if self.reads_fail:
            raise PeerCallFailed("delivery.BatchGetDeliveryRuns", UNREACHABLE)
        return {
            run_id: self.views[run_id]
            for run_id in run_ids
            if run_id in self.views and self.runs[run_id].site_id == site_id
        }

    def report(
        self,
        run_id: str,
        state: RunState,
        progress: RunProgress,
        *,
        failure_reason: str = "",
        finish_time: datetime | None = None,
    ) -> None:
        """What delivery will say about the run from now on."""
        self.views[run_id] = DeliveryRunView(run_id, state, progress, failure_reason, finish_time)


@dataclass
class World:
    campaigns: Campaigns
    delivery: FakeDelivery
    clock: FrozenClock
    site_id: str
    campaign: CampaignRecord


@pytest.fixture(scope="module")
async def store(settings_factory: Callable[..., Settings]) -> AsyncIterator[CampaignStore]:
    engine = await open_service_database("campaign", settings_factory())
    yield CampaignStore(engine)
    await engine.dispose()


@pytest.fixture
async def world(store: CampaignStore) -> World:
    clock = FrozenClock()
    site = await Sites(store, clock).create("Unit site", "mailto:ops@example.com")
    delivery = FakeDelivery(site_id=site.site_id)
    campaigns = Campaigns(store, clock, delivery, FakeSegment())
    campaign = await campaigns.create(
        site.site_id,
        CampaignDraft(
            name="",
            notification=Notification(
                title="Hello", body="World", target_url="https://shop.example/"
            ),
            ttl_seconds=600,
            urgency=Urgency.HIGH,
        ),
    )
    return World(campaigns, delivery, clock, site.site_id, campaign)


async def other_site(store: CampaignStore) -> str:
    return (await Sites(store, FrozenClock()).create("Other", "mailto:ops@example.com")).site_id


class TestSendNow:
    async def test_stores_the_rendered_content_and_hands_it_to_delivery(self, world: World) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert run.state == RunState.PREPARING and run.failure_reason == ""
        assert not run.handoff_pending
        assert run.payload == render_payload(
            world.campaign.notification,
            world.campaign.campaign_id,
            run.run_id,
            site_id=world.site_id,
        )
        assert json.loads(run.payload) == {
            "title": "Hello",
            "body": "World",
            "url": "https://shop.example/",
            "campaign_id": world.campaign.campaign_id,
            "run_id": run.run_id,
            "site_id": world.site_id,
            "version": 1,
        }
        assert (run.ttl_seconds, run.urgency) == (600, Urgency.HIGH)
        assert world.delivery.start_calls == [run.run_id]
        assert world.delivery.runs[run.run_id].payload == run.payload
        assert await world.campaigns.get_run(world.site_id, run.run_id) == run

    async def test_the_same_request_id_returns_the_first_run_and_hands_it_off_once(
        self, world: World
    ) -> None:
        first = await world.campaigns.send_now(
            world.site_id, world.campaign.campaign_id, request_id="again"
        )
        repeat = await world.campaigns.send_now(
            world.site_id, world.campaign.campaign_id, request_id="again"
        )
        fresh = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert repeat.run_id == first.run_id != fresh.run_id
        assert world.delivery.start_calls == [first.run_id, fresh.run_id]

    async def test_with_delivery_down_the_run_waits_preparing_for_the_hand_off(
        self, world: World
    ) -> None:
        world.delivery.unreachable_times = 1

        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert (run.state, run.handoff_pending, run.progress) == (
            RunState.PREPARING,
            True,
            RunProgress(),
        )
        assert world.delivery.runs == {}
        # Backing off: not offered again before its next attempt is due.
        assert await world.campaigns.hand_off_pending() == 0
        assert world.delivery.start_calls == [run.run_id]
        # Delivery is back: the pass after the backoff hands the run over.
        world.clock.advance(seconds=1)
        assert await world.campaigns.hand_off_pending() >= 1
        assert world.delivery.runs[run.run_id].payload == run.payload
        world.delivery.report(run.run_id, RunState.SENDING, RunProgress(resolved=3, queued=3))
        shown = await world.campaigns.get_run(world.site_id, run.run_id)
        assert (shown.state, shown.progress.queued, shown.handoff_pending) == (
            RunState.SENDING,
            3,
            False,
        )

    async def test_a_delivery_that_does_not_answer_does_not_hold_the_call(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(campaigns_module, "HANDOFF_WAIT_SECONDS", 0.2)
        world.delivery.answer = asyncio.Event()

        started = time.monotonic()
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        elapsed = time.monotonic() - started

        assert elapsed < 5
        assert (run.state, run.handoff_pending) == (RunState.PREPARING, True)
        assert world.campaigns.handoff_wanted.is_set()  # the background loop takes over
        # The hand-off in flight still lands once delivery answers.
        world.delivery.answer.set()
        landed = await eventually(
            lambda: world.campaigns.get_run(world.site_id, run.run_id),
            lambda r: not r.handoff_pending,
            timeout=10,
            what="the hand-off in flight landed",
        )
        assert landed.state == RunState.PREPARING
        assert world.delivery.start_calls == [run.run_id]

    async def test_a_run_delivery_refuses_fails_with_the_reason(self, world: World) -> None:
        world.delivery.refusal = "INVALID_ARGUMENT: content.payload is not a PushPayload"

        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)

        assert run.state == RunState.FAILED
        assert run.failure_reason == (
            "delivery refused the run: INVALID_ARGUMENT: content.payload is not a PushPayload"
        )
        assert run.finish_time == world.clock.now()
        assert not run.handoff_pending
        # Refused for good: never offered again, and nothing left to ask delivery about.
        await world.campaigns.hand_off_pending()
        assert world.delivery.start_calls == [run.run_id]
        assert await world.campaigns.get_run(world.site_id, run.run_id) == run
        assert world.delivery.read_calls == []

    async def test_another_sites_campaign_is_not_found_and_nothing_is_handed_off(
        self, world: World, store: CampaignStore
    ) -> None:
        other = await other_site(store)

        with pytest.raises(NotFound) as raised:
            await world.campaigns.send_now(other, world.campaign.campaign_id)

        assert raised.value.reason == "CAMPAIGN_NOT_FOUND"
        assert world.delivery.start_calls == []

    async def test_a_long_request_id_is_refused_before_anything_is_stored(
        self, world: World
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            await world.campaigns.send_now(
                world.site_id, world.campaign.campaign_id, request_id="r" * 129
            )

        assert raised.value.reason == "INVALID_REQUEST_ID"
        page = await world.campaigns.list_runs(world.site_id, world.campaign.campaign_id, 0, "")
        assert page.runs == []


class TestGetRun:
    async def test_shows_delivery_progress_and_the_last_known_when_delivery_is_down(
        self, world: World
    ) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        progress = RunProgress(resolved=10, queued=10, sent=4, failed=1)
        world.delivery.report(run.run_id, RunState.SENDING, progress)

        sending = await world.campaigns.get_run(world.site_id, run.run_id)
        world.delivery.reads_fail = True
        while_down = await world.campaigns.get_run(world.site_id, run.run_id)

        assert (sending.state, sending.progress) == (RunState.SENDING, progress)
        assert (while_down.state, while_down.progress) == (RunState.SENDING, progress)

    async def test_a_finished_run_is_final(self, world: World) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        world.clock.advance(minutes=5)
        progress = RunProgress(resolved=2, queued=2, sent=1, expired=1)
        world.delivery.report(run.run_id, RunState.DONE, progress, finish_time=world.clock.now())

        done = await world.campaigns.get_run(world.site_id, run.run_id)
        reads = len(world.delivery.read_calls)
        world.delivery.reads_fail = True
        again = await world.campaigns.get_run(world.site_id, run.run_id)

        assert (done.state, done.progress, done.finish_time) == (
            RunState.DONE,
            progress,
            world.clock.now(),
        )
        assert again == done
        assert len(world.delivery.read_calls) == reads  # not asked again

    async def test_a_failed_preparation_shows_delivery_reason(self, world: World) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        world.delivery.report(
            run.run_id,
            RunState.FAILED,
            RunProgress(resolved=0),
            failure_reason="segment stayed unavailable",
            finish_time=world.clock.now(),
        )

        failed = await world.campaigns.get_run(world.site_id, run.run_id)

        assert (failed.state, failed.failure_reason) == (
            RunState.FAILED,
            "segment stayed unavailable",
        )

    async def test_another_sites_run_is_not_found(self, world: World, store: CampaignStore) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        other = await other_site(store)

        with pytest.raises(NotFound) as raised:
            await world.campaigns.get_run(other, run.run_id)

        assert raised.value.reason == "RUN_NOT_FOUND"


class TestListRuns:
    async def test_refreshes_the_live_runs_of_a_page_in_one_call(self, world: World) -> None:
        runs = [
            await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
            for _ in range(3)
        ]
        for run in runs:
            world.delivery.report(run.run_id, RunState.SENDING, RunProgress(resolved=1, queued=1))
        world.delivery.read_calls.clear()

        page = await world.campaigns.list_runs(world.site_id, world.campaign.campaign_id, 0, "")

        assert {r.run_id for r in page.runs} == {r.run_id for r in runs}
        assert {r.state for r in page.runs} == {RunState.SENDING}
        assert len(world.delivery.read_calls) == 1
        assert sorted(world.delivery.read_calls[0]) == sorted(r.run_id for r in runs)

    async def test_shows_stored_progress_when_delivery_is_down(self, world: World) -> None:
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        world.delivery.reads_fail = True

        page = await world.campaigns.list_runs(world.site_id, world.campaign.campaign_id, 0, "")

        assert [(r.run_id, r.state) for r in page.runs] == [(run.run_id, RunState.PREPARING)]

    async def test_another_sites_campaign_is_not_found(
        self, world: World, store: CampaignStore
    ) -> None:
        other = await other_site(store)

        with pytest.raises(NotFound) as raised:
            await world.campaigns.list_runs(other, world.campaign.campaign_id, 0, "")

        assert raised.value.reason == "CAMPAIGN_NOT_FOUND"

    async def test_a_token_of_no_page_is_invalid(self, world: World) -> None:
        with pytest.raises(InvalidArgument) as raised:
            await world.campaigns.list_runs(world.site_id, world.campaign.campaign_id, 0, "x")

        assert raised.value.reason == "INVALID_PAGE_TOKEN"


class TestHandoffLoop:
    async def test_hands_the_run_over_once_delivery_takes_it(self, world: World) -> None:
        world.delivery.unreachable_times = 3
        loop = HandoffLoop(world.campaigns, interval_seconds=0.05)
        await loop.start()
        try:
            run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
            handed = await eventually(
                lambda: _run_after_backoff(world, run.run_id),
                lambda r: not r.handoff_pending,
                timeout=15,
                what="the loop handed the run to delivery",
            )
        finally:
            await loop.stop()

        assert run.handoff_pending and handed.state == RunState.PREPARING
        assert world.delivery.start_calls.count(run.run_id) == 4  # 3 refused, then taken
        assert list(world.delivery.runs) == [run.run_id]
        world.delivery.report(
            run.run_id,
            RunState.DONE,
            RunProgress(resolved=1, queued=1, sent=1),
            finish_time=world.clock.now(),
        )
        done = await world.campaigns.get_run(world.site_id, run.run_id)
        assert (done.state, done.progress.sent) == (RunState.DONE, 1)

    async def test_a_failing_pass_does_not_stop_the_loop(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        passes = 0
        real = world.campaigns.hand_off_pending

        async def flaky() -> int:
            nonlocal passes
            passes += 1
            if passes == 1:
                raise RuntimeError("database went away for a moment")
            return await real()

        monkeypatch.setattr(world.campaigns, "hand_off_pending", flaky)
        world.delivery.unreachable_times = 1
        loop = HandoffLoop(world.campaigns, interval_seconds=0.05)
        run = await world.campaigns.send_now(world.site_id, world.campaign.campaign_id)
        await loop.start()
        try:
            await eventually(
                lambda: _run_after_backoff(world, run.run_id),
                lambda r: not r.handoff_pending,
                timeout=15,
                what="the hand-off after a failed pass",
            )
        finally:
            await loop.stop()

        assert passes >= 2


async def _run_after_backoff(world: World, run_id: str) -> RunRecord:
    """The run, after moving the clock past any hand-off backoff (a minute at a time)."""
    world.clock.advance(seconds=60)
    return await world.campaigns.get_run(world.site_id, run_id)


class TestConcurrentUpdates:
    async def test_two_updates_of_different_fields_at_once_both_land(self, world: World) -> None:
        renamed = CampaignDraft(name="Renamed", notification=Notification())
        retitled = CampaignDraft(name="", notification=Notification(title="New title"))
        # Two at once: the loser of the first write reads again and applies its change on
        # top (a single rival cannot make it lose twice).
        await asyncio.gather(
            *(
                world.campaigns.update(world.site_id, world.campaign.campaign_id, draft, [path])
                for draft, path in [(renamed, "name"), (retitled, "notification.title")]
            )
        )
        stored = await world.campaigns.get(world.site_id, world.campaign.campaign_id)
        assert (stored.name, stored.notification.title) == ("Renamed", "New title")
        assert stored.version == 1 + 2  # each update applied to the version it read
