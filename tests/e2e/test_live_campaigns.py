"""Campaigns that run themselves, through the whole platform on each database, with time
moved by an injected clock: live campaigns (a push on an event, and only on events that
pass the trigger's filters; event then inaction, which the inaction event cancels and a
second event re-arms; a date reminder, moved by a later event; the person filter, the
cooldown, pause), SendCampaignNow to listed profiles and subscribers, delivery at a
local time in each recipient's time zone, the cut-off, and cancelling a campaign whose
run is still sending."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import (
    profile_pb2,
    segment_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
)
from clarion.simulator import PushServiceSimulator
from clarion.simulator.model import Behaviour
from services.campaign.admin import create_site
from services.kit.clock import FrozenClock
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel
from tests.campaign.helpers import eventually
from tests.support.sites import bearer

Metadata = tuple[tuple[str, str], ...]
# Where the notifications' clicks lead (Safari, among the browsers, needs a deeplink).
SHOP = "https://shop.example/"
_ids = itertools.count()


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def text(name: str, value: str) -> profile_pb2.Property:
    return profile_pb2.Property(name=name, value=profile_pb2.PropertyValue(string_value=value))


def equals(name: str, value: str) -> segment_pb2.PropertyCondition:
    return segment_pb2.PropertyCondition(
        name=name,
        operator=segment_pb2.PROPERTY_OPERATOR_EQUALS,
        values=[profile_pb2.PropertyValue(string_value=value)],
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_stack(settings_factory, clock: FrozenClock) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    running = await EmbeddedStack.start(settings, ephemeral_ports=True, clock=clock)
    yield running
    await running.stop()


class Shop:
    """A site with browsers, and the calls a shop's backend makes."""

    def __init__(
        self,
        stack: EmbeddedStack,
        api_key: str,
        simulator: PushServiceSimulator,
        clock: FrozenClock,
    ) -> None:
        self.auth: Metadata = bearer(api_key)
        self.simulator = simulator
        self.clock = clock
        self._channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.sites = site_service_pb2_grpc.SiteServiceStub(self._channels[0])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(self._channels[1])
        self.endpoints: dict[str, list[str]] = {}
        self.subscriber_ids: dict[str, list[str]] = {}

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def browser(
        self, person: str, *, profile: bool = True, timezone: str = "Europe/Berlin"
    ) -> str:
        """Registers a browser of `person` (a profile unless anonymous); its subscriber id."""
        subscription = self.simulator.mint_subscription()
        response = await self.segments.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
                browser=common_pb2.BROWSER_CHROME,
                timezone=timezone,
                profile_id=person if profile else "",
            ),
            metadata=self.auth,
            timeout=10,
        )
        self.endpoints.setdefault(person, []).append(subscription.endpoint)
        self.subscriber_ids.setdefault(person, []).append(response.subscriber.subscriber_id)
        return response.subscriber.subscriber_id

    async def track(
        self, person: str, name: str, *properties: profile_pb2.Property, anonymous: bool = False
    ) -> None:
        event = profile_pb2.Event(
            event_id=f"evt-{next(_ids)}",
            name=name,
            occur_time=stamp(self.clock.now()),
            properties=list(properties),
        )
        if anonymous:
            event.subscriber_id = self.subscriber_ids[person][0]
        else:
            event.profile_id = person
        response = await self.segments.TrackEvents(
            segment_service_pb2.TrackEventsRequest(events=[event]), metadata=self.auth, timeout=10
        )
        assert response.results[0].ok, response.results[0]

    async def live(self, trigger: campaign_pb2.Trigger, **fields: object) -> campaign_pb2.Campaign:
        fields.setdefault(
            "notification",
            common_pb2.Notification(title="You left something", body="Come back", target_url=SHOP),
        )
        response = await self.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                trigger=trigger,
                **fields,  # type: ignore[arg-type]
            ),
            metadata=self.auth,
            timeout=10,
        )
        return response.campaign

    def pushes(self, person: str) -> int:
        return sum(len(self.simulator.messages(e)) for e in self.endpoints.get(person, []))

    async def until_pushed(self, expected: dict[str, int]) -> None:
        async def counts() -> dict[str, int]:
            return {person: self.pushes(person) for person in expected}

        await eventually(
            counts, lambda seen: seen == expected, timeout=30, what=f"pushes {expected}"
        )

    async def settle(self) -> None:
        """Long enough for the live loop to have read what came (several passes)."""
        await asyncio.sleep(1.5)

    async def runs(self, campaign_id: str) -> list[campaign_pb2.Run]:
        response = await self.campaigns.ListRuns(
            campaign_service_pb2.ListRunsRequest(campaign_id=campaign_id, page_size=1000),
            metadata=self.auth,
            timeout=10,
        )
        return list(response.runs)


@pytest_asyncio.fixture(loop_scope="session")
async def shop(
    live_stack: EmbeddedStack, simulator: PushServiceSimulator, clock: FrozenClock
) -> AsyncIterator[Shop]:
    site = await create_site(live_stack.settings, "Live shop", "mailto:ops@shop.test")
    made = Shop(live_stack, site.api_key, simulator, clock)
    yield made
    await made.close()


def refusal(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    info = error_info(error)
    assert info is not None, error
    return error.code(), info.reason, info.metadata.get("field", "")


class TestOnEvent:
    async def test_each_matching_event_pushes_its_person_and_nothing_else(self, shop: Shop) -> None:
        for person in ("ana", "ben", "cem"):
            await shop.browser(person)
        await shop.browser("ana")  # ana has two browsers: both get it
        campaign = await shop.live(
            campaign_pb2.Trigger(
                event_name="Added To Cart", event_filters=[equals("category", "shoes")]
            )
        )
        assert campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        assert campaign.trigger.event_name == "Added To Cart"

        await shop.track("ana", "Added To Cart", text("category", "shoes"))
        await shop.track("ben", "Added To Cart", text("category", "hats"))  # filtered out
        await shop.track("cem", "Viewed", text("category", "shoes"))  # another event

        await shop.until_pushed({"ana": 2, "ben": 0, "cem": 0})
        await shop.settle()
        assert {"ben": shop.pushes("ben"), "cem": shop.pushes("cem")} == {"ben": 0, "cem": 0}
        runs = await shop.runs(campaign.campaign_id)
        assert [run.audience for run in runs] == [2]

    async def test_an_anonymous_browser_is_pushed_alone(self, shop: Shop) -> None:
        await shop.browser("visitor", profile=False)
        await shop.live(campaign_pb2.Trigger(event_name="Searched"))

        await shop.track("visitor", "Searched", anonymous=True)

        await shop.until_pushed({"visitor": 1})

    async def test_events_before_the_campaign_are_not_acted_on(self, shop: Shop) -> None:
        await shop.browser("early")
        await shop.track("early", "Signed Up")
        await shop.live(campaign_pb2.Trigger(event_name="Signed Up"))
        await shop.browser("late")

        await shop.track("late", "Signed Up")

        await shop.until_pushed({"late": 1, "early": 0})
        await shop.settle()
        assert shop.pushes("early") == 0

    async def test_the_audience_filters_the_person_who_triggered(self, shop: Shop) -> None:
        for person, city in (("paris", "Paris"), ("lyon", "Lyon")):
            await shop.browser(person)
            await shop.segments.UpsertProfiles(
                segment_service_pb2.UpsertProfilesRequest(
                    updates=[
                        profile_pb2.ProfileUpdate(
                            profile_id=person,
                            operations=[
                                profile_pb2.PropertyOperation(
                                    name="city", set=profile_pb2.PropertyValue(string_value=city)
                                )
                            ],
                        )
                    ]
                ),
                metadata=shop.auth,
                timeout=10,
            )
        in_paris = segment_pb2.AudienceSelector(
            definition=segment_pb2.SegmentDefinition(
                condition=segment_pb2.Condition(property=equals("city", "Paris"))
            )
        )
        await shop.live(campaign_pb2.Trigger(event_name="Opened App"), audience=in_paris)

        await shop.track("lyon", "Opened App")
        await shop.track("paris", "Opened App")

        await shop.until_pushed({"paris": 1, "lyon": 0})
        await shop.settle()
        assert shop.pushes("lyon") == 0

    async def test_a_cooldown_pushes_a_person_once_in_its_window(self, shop: Shop) -> None:
        await shop.browser("dora")
        await shop.live(campaign_pb2.Trigger(event_name="Liked", person_cooldown_seconds=3600))

        await shop.track("dora", "Liked")
        await shop.until_pushed({"dora": 1})
        await shop.track("dora", "Liked")
        await shop.settle()
        assert shop.pushes("dora") == 1

        shop.clock.advance(seconds=3601)
        await shop.track("dora", "Liked")
        await shop.until_pushed({"dora": 2})

    async def test_a_paused_campaign_pushes_nothing_until_resumed(self, shop: Shop) -> None:
        await shop.browser("eve")
        campaign = await shop.live(campaign_pb2.Trigger(event_name="Shared"))
        await shop.campaigns.PauseCampaign(
            campaign_service_pb2.PauseCampaignRequest(campaign_id=campaign.campaign_id),
            metadata=shop.auth,
            timeout=10,
        )

        await shop.track("eve", "Shared")
        await shop.settle()
        assert shop.pushes("eve") == 0

        resumed = await shop.campaigns.ResumeCampaign(
            campaign_service_pb2.ResumeCampaignRequest(campaign_id=campaign.campaign_id),
            metadata=shop.auth,
            timeout=10,
        )
        assert resumed.campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        await shop.track("eve", "Shared")
        await shop.until_pushed({"eve": 1})


class TestEventThenInaction:
    def abandoned_cart(self, **fields: object) -> campaign_pb2.Trigger:
        return campaign_pb2.Trigger(
            event_name="Added To Cart",
            inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=600, **fields),  # type: ignore[arg-type]
        )

    async def test_only_the_people_who_did_not_buy_are_pushed_when_the_window_ends(
        self, shop: Shop
    ) -> None:
        for person in ("buyer", "leaver"):
            await shop.browser(person)
        await shop.live(self.abandoned_cart())
        await shop.track("buyer", "Added To Cart")
        await shop.track("leaver", "Added To Cart")
        shop.clock.advance(seconds=300)
        await shop.track("buyer", "Charged")
        await shop.settle()
        assert (shop.pushes("buyer"), shop.pushes("leaver")) == (0, 0)

        shop.clock.advance(seconds=305)

        await shop.until_pushed({"leaver": 1, "buyer": 0})
        await shop.settle()
        assert shop.pushes("buyer") == 0

    async def test_a_second_event_re_arms_the_wait(self, shop: Shop) -> None:
        await shop.browser("hesitant")
        await shop.live(self.abandoned_cart())
        await shop.track("hesitant", "Added To Cart")
        shop.clock.advance(seconds=400)
        await shop.track("hesitant", "Added To Cart")
        await shop.settle()

        shop.clock.advance(seconds=205)  # 605 s after the first: re-armed, not due
        await shop.settle()
        assert shop.pushes("hesitant") == 0

        shop.clock.advance(seconds=400)  # 605 s after the second
        await shop.until_pushed({"hesitant": 1})

    async def test_keep_first_wait_ignores_the_second_event(self, shop: Shop) -> None:
        await shop.browser("steady")
        await shop.live(self.abandoned_cart(keep_first_wait=True))
        await shop.track("steady", "Added To Cart")
        shop.clock.advance(seconds=400)
        await shop.track("steady", "Added To Cart")
        await shop.settle()

        shop.clock.advance(seconds=205)

        await shop.until_pushed({"steady": 1})
        shop.clock.advance(seconds=600)
        await shop.settle()
        assert shop.pushes("steady") == 1


class TestPersonalizedFromTheEvent:
    """A live campaign's templates read the triggering event: each person's push names
    what that person did, also when the push goes after a wait."""

    def payloads(self, shop: Shop, person: str) -> list[dict[str, object]]:
        found = []
        for endpoint in shop.endpoints.get(person, []):
            for message in shop.simulator.messages(endpoint):
                payload = message.payload()
                assert payload is not None
                found.append(payload)
        return found

    async def test_an_immediate_push_reads_the_event_that_set_it_off(self, shop: Shop) -> None:
        for person in ("ivy", "jon"):
            await shop.browser(person)
        await shop.live(
            campaign_pb2.Trigger(event_name="Viewed Product"),
            notification=common_pb2.Notification(
                title="Still thinking about {{ event.product }}?",
                target_url="{{ event.url }}",
            ),
            utm=campaign_pb2.UtmParameters(source="clarion", medium="push"),
        )

        for person, product, url in (
            ("ivy", "Red shoes", "https://shop.test/p/1"),
            ("jon", "Blue hat", "https://shop.test/p/2?c=x"),
        ):
            await shop.track(person, "Viewed Product", text("product", product), text("url", url))

        await shop.until_pushed({"ivy": 1, "jon": 1})
        got = {
            person: [(p["title"], p["url"]) for p in self.payloads(shop, person)]
            for person in ("ivy", "jon")
        }
        utm = "utm_source=clarion&utm_medium=push"
        assert got == {
            "ivy": [("Still thinking about Red shoes?", f"https://shop.test/p/1?{utm}")],
            "jon": [("Still thinking about Blue hat?", f"https://shop.test/p/2?c=x&{utm}")],
        }

    async def test_a_push_after_the_wait_reads_the_event_that_armed_it(self, shop: Shop) -> None:
        await shop.browser("kim")
        await shop.live(
            campaign_pb2.Trigger(
                event_name="Added To Cart",
                inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=600),
            ),
            notification=common_pb2.Notification(
                title="Your {{ event.item }} is waiting", target_url=SHOP
            ),
        )
        await shop.track("kim", "Added To Cart", text("item", "green scarf"))
        shop.clock.advance(seconds=120)
        # A second cart event re-arms the wait: its item is the one the push names.
        await shop.track("kim", "Added To Cart", text("item", "yellow scarf"))
        await shop.settle()
        shop.clock.advance(seconds=605)

        await shop.until_pushed({"kim": 1})
        assert [p["title"] for p in self.payloads(shop, "kim")] == ["Your yellow scarf is waiting"]


class TestDateReminder:
    async def test_the_reminder_goes_at_its_offset_and_a_later_event_moves_it(
        self, shop: Shop
    ) -> None:
        await shop.browser("traveller")
        await shop.browser("mover")
        await shop.live(
            campaign_pb2.Trigger(
                event_name="Booked",
                date_reminder=campaign_pb2.DateReminder(
                    property="travel_date", offset_seconds=-3600
                ),
            )
        )
        now = shop.clock.now()

        def travel(at: datetime) -> profile_pb2.Property:
            return profile_pb2.Property(
                name="travel_date", value=profile_pb2.PropertyValue(timestamp_value=stamp(at))
            )

        await shop.track("traveller", "Booked", travel(now + timedelta(hours=3)))
        await shop.track("mover", "Booked", travel(now + timedelta(hours=3)))
        await shop.settle()
        await shop.track("mover", "Booked", travel(now + timedelta(hours=5)))  # moved
        await shop.settle()

        shop.clock.advance(seconds=2 * 3600 + 5)  # one hour before the first date

        await shop.until_pushed({"traveller": 1, "mover": 0})
        await shop.settle()
        assert shop.pushes("mover") == 0
        shop.clock.advance(seconds=2 * 3600)
        await shop.until_pushed({"traveller": 1, "mover": 1})


class TestTransactionalSends:
    async def test_listed_profiles_and_subscribers_get_it_and_nobody_else(self, shop: Shop) -> None:
        for person in ("fay", "gus", "hal"):
            await shop.browser(person)
        await shop.browser("fay")
        created = await shop.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(title="Your order shipped", target_url=SHOP)
            ),
            metadata=shop.auth,
            timeout=10,
        )

        sent = await shop.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(
                campaign_id=created.campaign.campaign_id,
                recipients=campaign_service_pb2.Recipients(
                    profile_ids=["fay", "nobody-of-this-site"],
                    subscriber_ids=shop.subscriber_ids["gus"],
                ),
            ),
            metadata=shop.auth,
            timeout=10,
        )

        await shop.until_pushed({"fay": 2, "gus": 1, "hal": 0})

        async def run() -> campaign_pb2.Run:
            response = await shop.campaigns.GetRun(
                campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id), metadata=shop.auth
            )
            return response.run

        done = await eventually(
            run, lambda r: r.state == campaign_pb2.RUN_STATE_DONE, what="run done"
        )
        assert (done.audience, done.progress.sent) == (3, 3)

    @pytest.mark.parametrize(
        ("recipients", "expected_reason"),
        [
            (campaign_service_pb2.Recipients(), "MISSING_RECIPIENTS"),
            (
                campaign_service_pb2.Recipients(
                    profile_ids=[f"p{i}" for i in range(6000)],
                    subscriber_ids=[f"sub_{i}" for i in range(4001)],
                ),
                "TOO_MANY_RECIPIENTS",
            ),
        ],
    )
    async def test_a_bad_list_is_refused_and_starts_no_run(
        self, shop: Shop, recipients: campaign_service_pb2.Recipients, expected_reason: str
    ) -> None:
        created = await shop.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(title="x", target_url=SHOP)
            ),
            metadata=shop.auth,
            timeout=10,
        )

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.campaigns.SendCampaignNow(
                campaign_service_pb2.SendCampaignNowRequest(
                    campaign_id=created.campaign.campaign_id, recipients=recipients
                ),
                metadata=shop.auth,
                timeout=10,
            )

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            expected_reason,
            "recipients",
        )
        assert await shop.runs(created.campaign.campaign_id) == []


class TestOneOffNotifications:
    async def test_a_one_off_reaches_the_listed_people_once_even_when_asked_twice(
        self, shop: Shop
    ) -> None:
        await shop.browser("ivy")
        await shop.browser("jon")
        request = campaign_service_pb2.SendNotificationRequest(
            notification=common_pb2.Notification(
                title="Your order shipped", body="#1234", target_url=SHOP
            ),
            recipients=campaign_service_pb2.Recipients(profile_ids=["ivy"]),
            request_id="order-1234-shipped",
        )

        first = await shop.campaigns.SendNotification(request, metadata=shop.auth, timeout=10)
        again = await shop.campaigns.SendNotification(request, metadata=shop.auth, timeout=10)

        assert again.run.run_id == first.run.run_id
        await shop.until_pushed({"ivy": 1, "jon": 0})
        await shop.settle()
        assert shop.pushes("ivy") == 1
        campaign = await shop.campaigns.GetCampaign(
            campaign_service_pb2.GetCampaignRequest(campaign_id=first.run.campaign_id),
            metadata=shop.auth,
        )
        assert campaign.campaign.name == "Your order shipped"

    async def test_without_recipients_it_is_refused_and_stores_nothing(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.campaigns.SendNotification(
                campaign_service_pb2.SendNotificationRequest(
                    notification=common_pb2.Notification(title="To whom?")
                ),
                metadata=shop.auth,
                timeout=10,
            )

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_RECIPIENTS",
            "recipients",
        )
        listed = await shop.campaigns.ListCampaigns(
            campaign_service_pb2.ListCampaignsRequest(), metadata=shop.auth
        )
        assert list(listed.campaigns) == []


class TestBadTriggers:
    async def test_a_trigger_on_an_event_never_sent_is_kept_with_a_warning(
        self, shop: Shop
    ) -> None:
        await shop.browser("wendy")
        await shop.track("wendy", "Viewed Product")

        def create(trigger: campaign_pb2.Trigger) -> object:
            return shop.campaigns.CreateCampaign(
                campaign_service_pb2.CreateCampaignRequest(
                    notification=common_pb2.Notification(title="Hi", target_url=SHOP), trigger=trigger
                ),
                metadata=shop.auth,
                timeout=10,
            )

        typo = await create(  # type: ignore[misc]
            campaign_pb2.Trigger(
                event_name="Veiwed Product",
                inaction=campaign_pb2.Inaction(event_name="Viewed Product", window_seconds=600),
            )
        )
        known = await create(campaign_pb2.Trigger(event_name="Viewed Product"))  # type: ignore[misc]

        assert typo.campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        assert [(w.reason, w.field) for w in typo.warnings] == [
            ("UNKNOWN_EVENT", "trigger.event_name")
        ]
        assert "Veiwed Product" in typo.warnings[0].message
        assert list(known.warnings) == []

    async def test_a_schedule_and_a_trigger_together_are_refused(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.live(
                campaign_pb2.Trigger(event_name="Added To Cart"),
                schedule=campaign_pb2.Schedule(at=stamp(shop.clock.now() + timedelta(hours=1))),
            )

        assert refusal(raised.value)[:2] == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "SCHEDULE_AND_TRIGGER",
        )

    async def test_a_short_inaction_window_is_refused_naming_the_field(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.live(
                campaign_pb2.Trigger(
                    event_name="Added To Cart",
                    inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=5),
                )
            )

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_WINDOW",
            "trigger.inaction.window_seconds",
        )


class RunWatcher:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    async def campaign(self, **fields: object) -> campaign_pb2.Campaign:
        response = await self.shop.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(title="Good morning", target_url=SHOP),
                **fields,  # type: ignore[arg-type]
            ),
            metadata=self.shop.auth,
            timeout=10,
        )
        return response.campaign

    async def send(self, campaign_id: str) -> str:
        sent = await self.shop.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=self.shop.auth,
            timeout=10,
        )
        return sent.run.run_id

    async def run(self, run_id: str) -> campaign_pb2.Run:
        response = await self.shop.campaigns.GetRun(
            campaign_service_pb2.GetRunRequest(run_id=run_id), metadata=self.shop.auth
        )
        return response.run

    async def until(self, run_id: str, state: int) -> campaign_pb2.Run:
        return await eventually(
            lambda: self.run(run_id), lambda r: r.state == state, what=f"run in state {state}"
        )

    async def outcome(self, run_id: str, person: str) -> tuple[int, int]:
        response = await self.shop.campaigns.GetRunRecipient(
            campaign_service_pb2.GetRunRecipientRequest(
                run_id=run_id, subscriber_id=self.shop.subscriber_ids[person][0]
            ),
            metadata=self.shop.auth,
        )
        return response.recipient.status, response.recipient.reason


def next_utc(clock: FrozenClock, hour: int) -> datetime:
    """The next time it is `hour`:00 UTC on the clock."""
    now = clock.now()
    moment = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment if moment > now else moment + timedelta(days=1)


def move_to(clock: FrozenClock, moment: datetime) -> None:
    clock.advance(seconds=(moment - clock.now()).total_seconds())


ZONES = {
    "berlin": "Europe/Berlin",
    "utc": "UTC",
    "tokyo": "Asia/Tokyo",
    "new_york": "America/New_York",
}
PENDING = campaign_pb2.RECIPIENT_STATUS_PENDING
SENT = campaign_pb2.RECIPIENT_STATUS_SENT
SUPPRESSED = campaign_pb2.RECIPIENT_STATUS_SUPPRESSED


class TestLocalTimeDelivery:
    """At 06:00 UTC a run delivers at 09:00 local: Berlin's 09:00 comes first, then
    UTC's, then New York's; in Tokyo it is 15:00 already."""

    async def people(self, shop: Shop) -> None:
        for person, zone in ZONES.items():
            await shop.browser(person, timezone=zone)

    def at(self, shop: Shop, day: datetime, local: str, zone: str) -> datetime:
        hour, minute = map(int, local.split(":"))
        wall = datetime.combine(
            day.astimezone(ZoneInfo(zone)).date(), time(hour, minute), tzinfo=ZoneInfo(zone)
        )
        return wall.astimezone(UTC)

    async def test_each_recipient_gets_it_at_its_local_time_and_a_passed_one_is_skipped(
        self, shop: Shop
    ) -> None:
        await self.people(shop)
        watch = RunWatcher(shop)
        campaign = await watch.campaign(timing=campaign_pb2.SendTiming(local_time="09:00"))
        start = next_utc(shop.clock, 6)
        move_to(shop.clock, start)

        run_id = await watch.send(campaign.campaign_id)

        run = await watch.until(run_id, campaign_pb2.RUN_STATE_SENDING)
        assert run.audience == 4
        assert await watch.outcome(run_id, "tokyo") == (
            SUPPRESSED,
            common_pb2.DELIVERY_REASON_LOCAL_TIME_PASSED,
        )
        await shop.settle()
        assert {p: shop.pushes(p) for p in ZONES} == dict.fromkeys(ZONES, 0)

        move_to(shop.clock, self.at(shop, start, "09:00", "Europe/Berlin") + timedelta(seconds=1))
        await shop.until_pushed({"berlin": 1, "utc": 0, "tokyo": 0, "new_york": 0})
        move_to(shop.clock, self.at(shop, start, "09:00", "UTC") + timedelta(seconds=1))
        await shop.until_pushed({"berlin": 1, "utc": 1, "tokyo": 0, "new_york": 0})
        assert (await watch.run(run_id)).state == campaign_pb2.RUN_STATE_SENDING
        move_to(
            shop.clock, self.at(shop, start, "09:00", "America/New_York") + timedelta(seconds=1)
        )
        await shop.until_pushed({"berlin": 1, "utc": 1, "tokyo": 0, "new_york": 1})

        done = await watch.until(run_id, campaign_pb2.RUN_STATE_DONE)
        assert (done.progress.sent, done.progress.suppressed) == (3, 1)

    async def test_next_day_if_passed_sends_the_passed_ones_the_next_day(self, shop: Shop) -> None:
        await shop.browser("osaka", timezone="Asia/Tokyo")
        watch = RunWatcher(shop)
        campaign = await watch.campaign(
            timing=campaign_pb2.SendTiming(local_time="09:00", next_day_if_passed=True)
        )
        start = next_utc(shop.clock, 6)  # 15:00 in Tokyo
        move_to(shop.clock, start)

        run_id = await watch.send(campaign.campaign_id)
        await watch.until(run_id, campaign_pb2.RUN_STATE_SENDING)
        move_to(shop.clock, start + timedelta(hours=17, minutes=59))  # 08:59 the next day
        await shop.settle()
        assert shop.pushes("osaka") == 0

        move_to(shop.clock, start + timedelta(hours=18, seconds=1))

        await shop.until_pushed({"osaka": 1})
        await watch.until(run_id, campaign_pb2.RUN_STATE_DONE)

    async def test_a_site_time_zone_serves_subscribers_without_one(self, shop: Shop) -> None:
        await shop.browser("nowhere", timezone="")
        await shop.browser("in_utc", timezone="UTC")
        await shop.sites.UpdateSite(
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(timezone="America/New_York"),
                update_mask=FieldMask(paths=["timezone"]),
            ),
            metadata=shop.auth,
            timeout=10,
        )
        watch = RunWatcher(shop)
        campaign = await watch.campaign(timing=campaign_pb2.SendTiming(local_time="09:00"))
        start = next_utc(shop.clock, 6)
        move_to(shop.clock, start)

        run_id = await watch.send(campaign.campaign_id)
        await watch.until(run_id, campaign_pb2.RUN_STATE_SENDING)
        move_to(shop.clock, start + timedelta(hours=3, seconds=1))  # 09:00 UTC
        await shop.until_pushed({"in_utc": 1, "nowhere": 0})

        move_to(
            shop.clock, self.at(shop, start, "09:00", "America/New_York") + timedelta(seconds=1)
        )
        await shop.until_pushed({"in_utc": 1, "nowhere": 1})

    async def test_an_unknown_site_time_zone_is_refused(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await shop.sites.UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(timezone="Mars/Olympus_Mons"),
                    update_mask=FieldMask(paths=["timezone"]),
                ),
                metadata=shop.auth,
                timeout=10,
            )

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TIMEZONE",
            "timezone",
        )


class TestCutOff:
    async def test_recipients_not_sent_by_the_cut_off_end_suppressed_cut_off(
        self, shop: Shop
    ) -> None:
        await shop.browser("quick", timezone="UTC")
        await shop.browser("stuck", timezone="UTC")
        await shop.browser("late", timezone="America/New_York")
        # The push service keeps telling "stuck" to come back in an hour.
        shop.simulator.set_behaviour(
            shop.endpoints["stuck"][0], Behaviour(status=429, retry_after=3600)
        )
        watch = RunWatcher(shop)
        campaign = await watch.campaign(
            timing=campaign_pb2.SendTiming(local_time="09:00", cut_off_after_seconds=4 * 3600)
        )
        start = next_utc(shop.clock, 6)
        move_to(shop.clock, start)

        run_id = await watch.send(campaign.campaign_id)

        await watch.until(run_id, campaign_pb2.RUN_STATE_SENDING)
        # New York's 09:00 is after the cut-off (10:00 UTC): never sent.
        assert await watch.outcome(run_id, "late") == (
            SUPPRESSED,
            common_pb2.DELIVERY_REASON_CUT_OFF,
        )
        move_to(shop.clock, start + timedelta(hours=3, seconds=1))
        await shop.until_pushed({"quick": 1, "late": 0})
        await eventually(
            lambda: watch.outcome(run_id, "stuck"),
            lambda outcome: outcome == (PENDING, common_pb2.DELIVERY_REASON_PUSH_SERVICE_429),
            what="stuck waiting for its retry",
        )

        move_to(shop.clock, start + timedelta(hours=4, seconds=1))

        done = await watch.until(run_id, campaign_pb2.RUN_STATE_DONE)
        assert await watch.outcome(run_id, "stuck") == (
            SUPPRESSED,
            common_pb2.DELIVERY_REASON_CUT_OFF,
        )
        assert (done.progress.sent, done.progress.suppressed) == (1, 2)
        shop.simulator.set_behaviour(shop.endpoints["stuck"][0], None)

    async def test_a_cut_off_in_the_past_is_refused_naming_the_field(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await RunWatcher(shop).campaign(
                timing=campaign_pb2.SendTiming(
                    cut_off_time=stamp(shop.clock.now() - timedelta(minutes=1))
                )
            )

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_CUT_OFF",
            "timing.cut_off_time",
        )

    async def test_a_malformed_local_time_is_refused_naming_the_field(self, shop: Shop) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await RunWatcher(shop).campaign(timing=campaign_pb2.SendTiming(local_time="9am"))

        assert refusal(raised.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_LOCAL_TIME",
            "timing.local_time",
        )


class TestCancellingACampaign:
    async def test_its_running_run_stops_and_nothing_more_is_sent(self, shop: Shop) -> None:
        await shop.browser("sleeper", timezone="UTC")
        watch = RunWatcher(shop)
        campaign = await watch.campaign(timing=campaign_pb2.SendTiming(local_time="09:00"))
        start = next_utc(shop.clock, 6)
        move_to(shop.clock, start)
        run_id = await watch.send(campaign.campaign_id)
        await watch.until(run_id, campaign_pb2.RUN_STATE_SENDING)

        cancelled = await shop.campaigns.CancelCampaign(
            campaign_service_pb2.CancelCampaignRequest(campaign_id=campaign.campaign_id),
            metadata=shop.auth,
            timeout=10,
        )

        assert cancelled.campaign.state == campaign_pb2.CAMPAIGN_STATE_CANCELLED
        run = await watch.run(run_id)
        assert run.state == campaign_pb2.RUN_STATE_CANCELLED
        assert await watch.outcome(run_id, "sleeper") == (
            SUPPRESSED,
            common_pb2.DELIVERY_REASON_CANCELLED,
        )
        move_to(shop.clock, start + timedelta(hours=3, seconds=1))
        await shop.settle()
        assert shop.pushes("sleeper") == 0


class TestLifecycle:
    async def test_a_one_time_campaign_runs_until_its_run_finishes_then_completes(
        self, shop: Shop
    ) -> None:
        await shop.browser("late_riser", timezone="America/New_York")
        start = next_utc(shop.clock, 6)
        move_to(shop.clock, start)
        watch = RunWatcher(shop)
        campaign = await watch.campaign(
            schedule=campaign_pb2.Schedule(at=stamp(start + timedelta(minutes=1))),
            timing=campaign_pb2.SendTiming(local_time="09:00"),
        )
        assert campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED

        async def state() -> int:
            response = await shop.campaigns.GetCampaign(
                campaign_service_pb2.GetCampaignRequest(campaign_id=campaign.campaign_id),
                metadata=shop.auth,
            )
            return response.campaign.state

        move_to(shop.clock, start + timedelta(minutes=1, seconds=1))
        # Started, and waiting for 09:00 in New York.
        await eventually(state, lambda s: s == campaign_pb2.CAMPAIGN_STATE_RUNNING, what="running")
        listed = await shop.campaigns.ListCampaigns(
            campaign_service_pb2.ListCampaignsRequest(), metadata=shop.auth
        )
        assert [c.state for c in listed.campaigns if c.campaign_id == campaign.campaign_id] == [
            campaign_pb2.CAMPAIGN_STATE_RUNNING
        ]

        move_to(shop.clock, start + timedelta(hours=8, seconds=1))  # 09:00 EST

        await shop.until_pushed({"late_riser": 1})
        await eventually(
            state, lambda s: s == campaign_pb2.CAMPAIGN_STATE_COMPLETED, what="completed"
        )
