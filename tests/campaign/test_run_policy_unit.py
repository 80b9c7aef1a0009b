"""What a run hands delivery besides its payload: the content options fixed when it
starts (Safari's own payload, the properties its templates read, what a missing value
becomes, the topic) and the policy merged, at each hand-off, from the site's delivery
policy as it is then and the campaign's policy as it was when the run started.

The merge and the StartDeliveryRunRequest built from a run are pure functions; the rest
runs in the campaign domain on a real store, with delivery faked at its port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from services.campaign.domain import CampaignDraft, Campaigns, Sites
from services.campaign.domain.content import Notification
from services.campaign.domain.policies import RunPolicy, run_policy
from services.campaign.peer_clients import start_run_request
from services.campaign.store import (
    CampaignStore,
    ListedRecipients,
    RunContentOptions,
    RunProgress,
    RunRecord,
    RunState,
    Urgency,
)
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import open_service_database
from tests.campaign.helpers import FakeSegment
from tests.campaign.test_send_now_unit import FakeDelivery

SHOP = "https://shop.example/"
DELAY = campaign_pb2.QUIET_HOURS_ACTION_DELAY
DISCARD = campaign_pb2.QUIET_HOURS_ACTION_DISCARD


def hours(start: str, end: str, action: int = 0) -> campaign_pb2.QuietHours:
    return campaign_pb2.QuietHours(start=start, end=end, action=action)  # type: ignore[arg-type]


SITE = campaign_pb2.DeliveryPolicy(
    frequency_cap=campaign_pb2.FrequencyCap(per_day=2, per_week=6),
    quiet_hours=hours("22:00", "08:00", DISCARD),
    max_per_minute=500,
)


class TestRunPolicyMerge:
    def test_nothing_set_is_no_policy(self) -> None:
        assert run_policy(None, None) == RunPolicy()
        assert run_policy(campaign_pb2.DeliveryPolicy(), campaign_pb2.CampaignPolicy()) == (
            RunPolicy()
        )

    def test_the_sites_policy_applies_to_a_campaign_without_its_own(self) -> None:
        assert run_policy(SITE, None) == RunPolicy(
            cap_per_day=2, cap_per_week=6, quiet_start="22:00", quiet_end="08:00",
            quiet_delay=False, site_max_per_minute=500,
        )  # fmt: skip

    def test_a_campaign_ignoring_the_cap_has_none_and_keeps_the_rest(self) -> None:
        merged = run_policy(SITE, campaign_pb2.CampaignPolicy(ignore_frequency_cap=True))

        assert (merged.cap_per_day, merged.cap_per_week) == (0, 0)
        assert (merged.quiet_start, merged.quiet_end, merged.site_max_per_minute) == (
            "22:00",
            "08:00",
            500,
        )

    def test_the_campaigns_own_quiet_hours_replace_the_sites(self) -> None:
        own = campaign_pb2.CampaignPolicy(quiet_hours=hours("12:00", "14:00", DELAY))

        merged = run_policy(SITE, own)

        assert (merged.quiet_start, merged.quiet_end, merged.quiet_delay) == (
            "12:00",
            "14:00",
            True,
        )
        assert (merged.cap_per_day, merged.cap_per_week) == (2, 6)

    def test_ignoring_quiet_hours_leaves_none(self) -> None:
        merged = run_policy(SITE, campaign_pb2.CampaignPolicy(ignore_quiet_hours=True))

        assert (merged.quiet_start, merged.quiet_end, merged.quiet_delay) == ("", "", False)

    @pytest.mark.parametrize(
        ("action", "delay"),
        [(campaign_pb2.QUIET_HOURS_ACTION_UNSPECIFIED, True), (DELAY, True), (DISCARD, False)],
    )
    def test_an_unspecified_action_delays(self, action: int, delay: bool) -> None:
        site = campaign_pb2.DeliveryPolicy(quiet_hours=hours("22:00", "08:00", action))

        assert run_policy(site, None).quiet_delay is delay

    def test_throttles_and_the_control_group(self) -> None:
        own = campaign_pb2.CampaignPolicy(max_per_minute=50, control_group_percent=20)

        merged = run_policy(SITE, own)

        assert (merged.campaign_max_per_minute, merged.site_max_per_minute) == (50, 500)
        assert merged.control_group_percent == 20
        assert run_policy(None, own) == RunPolicy(
            campaign_max_per_minute=50, control_group_percent=20
        )


def a_run(**fields: object) -> RunRecord:
    from datetime import UTC, datetime

    given: dict[str, object] = {
        "run_id": "run_1",
        "site_id": "site_1",
        "campaign_id": "cmp_1",
        "state": RunState.PREPARING,
        "failure_reason": "",
        "progress": RunProgress(),
        "payload": b'{"title":"Hi"}',
        "ttl_seconds": 600,
        "urgency": Urgency.HIGH,
        "handoff_pending": True,
        "create_time": datetime(2027, 1, 1, tzinfo=UTC),
    }
    given.update(fields)
    return RunRecord(**given)  # type: ignore[arg-type]


class TestStartDeliveryRunRequest:
    def test_carries_the_content_options_and_the_policy(self) -> None:
        run = a_run(
            content_options=RunContentOptions(
                browser_payloads={common_pb2.BROWSER_SAFARI: b'{"title":"Hi (Safari)"}'},
                profile_properties=("first_name",),
                event_properties=("sku",),
                suppress_missing_values=True,
                missing_value_text="",
                topic="sale",
            ),
            recipients=ListedRecipients(profile_ids=("p1",)),
        )
        policy = RunPolicy(cap_per_day=1, quiet_start="22:00", quiet_end="07:00", quiet_delay=True)

        request = start_run_request(run, "", policy)

        assert request.content == delivery_pb2.RunContent(
            payload=b'{"title":"Hi"}',
            ttl_seconds=600,
            urgency=common_pb2.URGENCY_HIGH,
            profile_properties=["first_name"],
            suppress_missing_values=True,
            browser_payloads=[
                delivery_pb2.BrowserPayload(
                    browser=common_pb2.BROWSER_SAFARI, payload=b'{"title":"Hi (Safari)"}'
                )
            ],
            topic="sale",
        )
        assert request.policy == delivery_pb2.RunPolicy(
            cap_per_day=1, quiet_start="22:00", quiet_end="07:00", quiet_delay=True
        )
        assert list(request.audience.profile_ids) == ["p1"]

    def test_a_run_stored_before_content_options_sends_its_payload_alone(self) -> None:
        request = start_run_request(a_run(), "", RunPolicy())

        assert request.content == delivery_pb2.RunContent(
            payload=b'{"title":"Hi"}', ttl_seconds=600, urgency=common_pb2.URGENCY_HIGH
        )
        assert not request.HasField("policy")  # nothing to apply: left unset


@dataclass
class World:
    campaigns: Campaigns
    sites: Sites
    store: CampaignStore
    delivery: FakeDelivery
    site_id: str
    clock: FrozenClock

    async def set_site_policy(self, policy: campaign_pb2.DeliveryPolicy) -> None:
        await self.sites.update(
            self.site_id, "", "", "", ["delivery_policy"], delivery_policy=policy
        )


@pytest.fixture(scope="module")
async def store(settings_factory: Callable[..., Settings]) -> AsyncIterator[CampaignStore]:
    engine = await open_service_database("campaign", settings_factory())
    yield CampaignStore(engine)
    await engine.dispose()


@pytest.fixture
async def world(store: CampaignStore) -> World:
    clock = FrozenClock()
    sites = Sites(store, clock)
    site = await sites.create("Policy site", "mailto:ops@example.com")
    delivery = FakeDelivery(site_id=site.site_id)
    campaigns = Campaigns(store, clock, delivery, FakeSegment())
    return World(campaigns, sites, store, delivery, site.site_id, clock)


async def new_campaign(world: World, **fields: object) -> str:
    fields.setdefault("notification", Notification(title="Hello", target_url=SHOP))
    draft = CampaignDraft(name="", **fields)  # type: ignore[arg-type]
    return (await world.campaigns.create(world.site_id, draft)).campaign_id


class TestRunsCarryThePolicy:
    async def test_a_run_started_after_the_sites_policy_changed_hands_the_new_one(
        self, world: World
    ) -> None:
        campaign_id = await new_campaign(
            world, policy=campaign_pb2.CampaignPolicy(ignore_quiet_hours=True, max_per_minute=9)
        )
        first = await world.campaigns.send_now(world.site_id, campaign_id)
        await world.set_site_policy(SITE)

        second = await world.campaigns.send_now(world.site_id, campaign_id)

        assert world.delivery.policies[first.run_id] == RunPolicy(campaign_max_per_minute=9)
        assert world.delivery.policies[second.run_id] == RunPolicy(
            cap_per_day=2, cap_per_week=6, campaign_max_per_minute=9, site_max_per_minute=500
        )

    async def test_the_campaigns_policy_is_its_start_and_the_sites_its_hand_off(
        self, world: World
    ) -> None:
        campaign_id = await new_campaign(
            world, policy=campaign_pb2.CampaignPolicy(control_group_percent=10)
        )
        world.delivery.unreachable_times = 1_000  # the hand-off waits
        run = await world.campaigns.send_now(world.site_id, campaign_id)
        assert run.handoff_pending
        await world.campaigns.update(
            world.site_id, campaign_id,
            CampaignDraft(name="", notification=Notification(),
                          policy=campaign_pb2.CampaignPolicy(control_group_percent=40)),
            ["policy"],
        )  # fmt: skip
        await world.set_site_policy(campaign_pb2.DeliveryPolicy(max_per_minute=77))

        world.delivery.unreachable_times = 0
        world.clock.advance(seconds=600)  # past the hand-off's backoff
        await world.campaigns.hand_off_pending()

        assert run.run_id in world.delivery.runs
        assert world.delivery.policies[run.run_id] == RunPolicy(
            control_group_percent=10, site_max_per_minute=77
        )


class TestRunsFixTheirContent:
    async def test_the_run_keeps_safaris_payload_the_templates_reads_and_the_options(
        self, world: World
    ) -> None:
        campaign_id = await new_campaign(
            world,
            notification=Notification(
                title="Hi {{ profile.first_name }}", target_url=SHOP, icon_url=SHOP + "i.png"
            ),
            personalization=campaign_pb2.Personalization(
                on_missing=campaign_pb2.MISSING_VALUE_ACTION_USE_TEXT, missing_value_text="friend"
            ),
            utm=campaign_pb2.UtmParameters(source="push"),
            topic="hello",
        )

        started = await world.campaigns.send_now(world.site_id, campaign_id)

        run = await world.store.get_run(world.site_id, started.run_id)
        assert run is not None and run.content_options is not None
        options = run.content_options
        assert options.profile_properties == ("first_name",)
        assert (options.suppress_missing_values, options.missing_value_text, options.topic) == (
            False,
            "friend",
            "hello",
        )
        shared = json.loads(run.payload)
        assert shared["icon"] == SHOP + "i.png"
        assert shared["url"] == SHOP + "?utm_source=push"
        safari = json.loads(options.browser_payloads[common_pb2.BROWSER_SAFARI])
        assert "icon" not in safari and safari["url"] == shared["url"]
        request = start_run_request(run)
        assert request.content.topic == "hello"
        assert list(request.content.profile_properties) == ["first_name"]
        assert [p.browser for p in request.content.browser_payloads] == [
            common_pb2.BROWSER_SAFARI,
            common_pb2.BROWSER_SAFARI_LEGACY,
        ]
        assert world.delivery.runs[run.run_id].content_options == options

    async def test_a_changed_campaign_does_not_change_a_started_run(self, world: World) -> None:
        campaign_id = await new_campaign(world, topic="first")
        started = await world.campaigns.send_now(world.site_id, campaign_id)

        await world.campaigns.update(
            world.site_id, campaign_id,
            CampaignDraft(name="", notification=Notification(), topic="second"), ["topic"],
        )  # fmt: skip

        run = await world.store.get_run(world.site_id, started.run_id)
        assert run is not None and run.content_options is not None
        assert run.content_options.topic == "first"
