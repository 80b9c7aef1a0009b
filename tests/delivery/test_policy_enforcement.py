"""A run's delivery policies (RunPolicy) enforced by DeliveryWorkers over the real store,
with the in-memory fakes of tests/delivery/conftest.py and a FrozenClock, on SQLite and
PostgreSQL: frequency caps per person on its local days (given back when a push ends
without being sent), do-not-disturb hours at queue time and at send time, the throttle
per campaign and per site per minute, the control group; and StartDeliveryRun refusing
a bad policy over gRPC."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.policies import in_control_group, person_key
from services.delivery.domain.rules import PushAnswer
from services.delivery.domain.runs import DeliveryRuns, RunRequest
from services.delivery.models import DeliveryRecipientRow, RecipientState, RunState
from services.delivery.server import run_policy_json
from services.delivery.store import DeliveryStore, Member
from services.kit.clock import FrozenClock
from services.kit.errors import error_info
from tests.delivery.conftest import Harness, Stack, harness_settings, members, shared_payload

RECIPIENTS = DeliveryRecipientRow.__table__
SENT = RecipientState.SENT
FAILED = RecipientState.FAILED
SUPPRESSED = RecipientState.SUPPRESSED
EXPIRED = RecipientState.EXPIRED
DAY = 24 * 3600

MakeHarness = Callable[[datetime], Awaitable[Harness]]


@pytest.fixture
async def make_harness(
    store: DeliveryStore, settings_factory, private_database_url: str
) -> AsyncIterator[MakeHarness]:  # type: ignore[no-untyped-def]
    """One delivery "process" whose clock starts at the given instant. Retry-After is
    honoured up to 10 minutes, so a retry can be placed inside a quiet window."""
    made: list[Harness] = []
    settings = harness_settings(
        settings_factory, database_url=private_database_url, push_retry_max_seconds=600.0
    )

    async def make(start: datetime) -> Harness:
        harness = Harness(store, settings, FrozenClock(start))
        await harness.workers.open()
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.workers.close()


def people(
    n: int, *, profile_id: Callable[[int], str] = lambda i: "", timezone: str = "UTC"
) -> list[Member]:
    """`n` members (subscribers) in `timezone`; member i of profile `profile_id(i)`."""
    return [replace(m, timezone=timezone) for m in members(n, profile_id=profile_id)]


async def start(
    harness: Harness,
    site_id: str,
    policy: delivery_pb2.RunPolicy,
    *,
    campaign_id: str | None = None,
    ttl_seconds: int = DAY,
    subscriber_ids: Sequence[str] = (),
) -> str:
    """Starts a run of the site's audience (registered with the fake segment once, by
    `audience`) with `policy`, as StartDeliveryRun does; returns its id."""
    run_id = f"run_{uuid.uuid4().hex}"
    await DeliveryRuns(harness.store, harness.clock).start(
        site_id,
        RunRequest(
            run_id=run_id,
            campaign_id=campaign_id or f"cmp_{uuid.uuid4().hex[:12]}",
            payload=shared_payload(run_id=run_id),
            ttl_seconds=ttl_seconds,
            urgency="normal",
            subscriber_ids=list(subscriber_ids),
            policy=run_policy_json(policy),
        ),
    )
    harness.workers.run_started()
    return run_id


def audience(harness: Harness, who: Sequence[Member]) -> str:
    """A new site whose subscribers (in the fake segment) are `who`; returns its id."""
    site_id = f"site_{uuid.uuid4().hex}"
    harness.audience.sites[site_id] = list(who)
    return site_id


async def outcomes(engine: AsyncEngine, run_id: str) -> dict[str, tuple[str, str, int]]:
    """(state, reason, attempts) of each of the run's recipients, by subscriber id."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                RECIPIENTS.c.subscriber_id,
                RECIPIENTS.c.state,
                RECIPIENTS.c.reason,
                RECIPIENTS.c.attempts,
            ).where(RECIPIENTS.c.run_id == run_id)
        )
        return {sid: (state, reason, attempts) for sid, state, reason, attempts in rows}


async def states(engine: AsyncEngine, run_id: str) -> Counter[tuple[str, str]]:
    """How many of the run's recipients are in each (state, reason)."""
    found = await outcomes(engine, run_id)
    return Counter((state, reason) for state, reason, _ in found.values())


async def only(engine: AsyncEngine, run_id: str) -> tuple[str, str, int]:
    [found] = (await outcomes(engine, run_id)).values()
    return found


async def run_state(harness: Harness, site_id: str, run_id: str) -> RunState:
    run = await harness.store.get_run(site_id, run_id)
    assert run is not None
    return run.state


def posts(harness: Harness) -> int:
    return sum(harness.transport.posts.values())


def at(text: str) -> datetime:
    """An instant given in UTC, 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def now(harness: Harness) -> float:
    return harness.clock.now().timestamp()


# Frequency caps.


class TestDailyCap:
    async def test_the_run_past_the_cap_is_suppressed_until_the_persons_next_day(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 10:00 UTC is 19:00 in Tokyo: Tokyo's next day begins at 15:00 UTC, UTC's at 24:00.
        harness = await make_harness(at("2027-03-10 10:00"))
        tokyo = people(1, profile_id=lambda i: "ann", timezone="Asia/Tokyo")
        london = people(1, profile_id=lambda i: "bob", timezone="")
        site_id = audience(harness, tokyo + london)
        policy = delivery_pb2.RunPolicy(cap_per_day=2)

        runs = []
        for _ in range(3):
            runs.append(await start(harness, site_id, policy))
            await harness.deliver()
            harness.clock.advance(minutes=30)

        for run_id in runs[:2]:
            assert await states(engine, run_id) == Counter({(SENT, ""): 2})
        assert await states(engine, runs[2]) == Counter({(SUPPRESSED, "frequency_cap"): 2})
        assert harness.transport.posts == Counter({tokyo[0].endpoint: 2, london[0].endpoint: 2})
        assert await run_state(harness, site_id, runs[2]) is RunState.DONE

        # 15:00 UTC: midnight in Tokyo, still the same day for the one without a zone
        # (the policy's default: UTC).
        harness.clock.advance(seconds=at("2027-03-10 15:00").timestamp() - now(harness))
        next_day = await start(harness, site_id, policy)
        await harness.deliver()
        found = await outcomes(engine, next_day)
        assert found[tokyo[0].subscriber_id][:2] == (SENT, "")
        assert found[london[0].subscriber_id][:2] == (SUPPRESSED, "frequency_cap")

    async def test_a_default_timezone_sets_the_day_of_people_without_one(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 14:30"))
        site_id = audience(harness, people(1, profile_id=lambda i: "ann", timezone=""))
        policy = delivery_pb2.RunPolicy(cap_per_day=1, default_timezone="Asia/Tokyo")
        first = await start(harness, site_id, policy)
        await harness.deliver()
        harness.clock.advance(minutes=20)  # 14:50 UTC: 23:50 in Tokyo
        capped = await start(harness, site_id, policy)
        await harness.deliver()
        harness.clock.advance(minutes=10)  # 15:00 UTC: Tokyo's next day
        next_day = await start(harness, site_id, policy)
        await harness.deliver()

        assert (await only(engine, first))[:2] == (SENT, "")
        assert (await only(engine, capped))[:2] == (SUPPRESSED, "frequency_cap")
        assert (await only(engine, next_day))[:2] == (SENT, "")

    async def test_five_browsers_of_one_profile_get_the_cap_and_no_more(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        browsers = people(5, profile_id=lambda i: "ann")
        site_id = audience(harness, browsers)
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(cap_per_day=3))

        await harness.deliver()

        assert await states(engine, run_id) == Counter(
            {(SENT, ""): 3, (SUPPRESSED, "frequency_cap"): 2}
        )
        assert posts(harness) == 3
        assert await run_state(harness, site_id, run_id) is RunState.DONE
        assert len(harness.sink.per_subscriber(run_id)) == 5  # every outcome reported

    async def test_subscribers_without_a_profile_are_people_of_their_own(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        site_id = audience(harness, people(4))
        policy = delivery_pb2.RunPolicy(cap_per_day=1)
        first = await start(harness, site_id, policy)
        await harness.deliver()
        second = await start(harness, site_id, policy)
        await harness.deliver()

        assert await states(engine, first) == Counter({(SENT, ""): 4})
        assert await states(engine, second) == Counter({(SUPPRESSED, "frequency_cap"): 4})

    async def test_a_retried_push_is_counted_once(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        [member] = people(1, profile_id=lambda i: "ann")
        site_id = audience(harness, [member])
        policy = delivery_pb2.RunPolicy(cap_per_day=2)
        harness.transport.script(member.endpoint, PushAnswer(status=429, retry_after="30"))

        first = await start(harness, site_id, policy)
        await harness.deliver()
        assert await only(engine, first) == ("pending", "push_service_429", 1)
        harness.clock.advance(seconds=30)
        await harness.deliver()
        assert await only(engine, first) == (SENT, "", 2)

        second = await start(harness, site_id, policy)
        await harness.deliver()
        third = await start(harness, site_id, policy)
        await harness.deliver()
        assert (await only(engine, second))[:2] == (SENT, "")
        assert (await only(engine, third))[:2] == (SUPPRESSED, "frequency_cap")
        assert harness.transport.posts[member.endpoint] == 3  # 429, 201, 201

    async def test_the_cap_counts_across_campaigns(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        site_id = audience(harness, people(1, profile_id=lambda i: "ann"))
        policy = delivery_pb2.RunPolicy(cap_per_day=1)
        first = await start(harness, site_id, policy, campaign_id="cmp_spring")
        await harness.deliver()
        second = await start(harness, site_id, policy, campaign_id="cmp_summer")
        await harness.deliver()
        other_site = audience(harness, people(1, profile_id=lambda i: "ann"))
        elsewhere = await start(harness, other_site, policy, campaign_id="cmp_spring")
        await harness.deliver()

        assert (await only(engine, first))[:2] == (SENT, "")
        assert (await only(engine, second))[:2] == (SUPPRESSED, "frequency_cap")
        # Another site's "ann" is another person.
        assert (await only(engine, elsewhere))[:2] == (SENT, "")


class TestWeeklyCap:
    async def test_seven_local_days_count_and_the_eighth_frees_the_first(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-01 10:00"))
        site_id = audience(harness, people(1, profile_id=lambda i: "ann"))
        policy = delivery_pb2.RunPolicy(cap_per_week=3)

        results = []
        for _ in range(9):
            run_id = await start(harness, site_id, policy)
            await harness.deliver()
            results.append((await only(engine, run_id))[:2])
            harness.clock.advance(days=1)

        capped = (SUPPRESSED, "frequency_cap")
        sent = (SENT, "")
        # Days 0-2 sent; 3-6 capped; day 7's week is days 1-7 (two sends): sent; day 8's
        # is days 2-8 (days 2 and 7): sent.
        assert results == [sent, sent, sent, capped, capped, capped, capped, sent, sent]

    async def test_the_daily_and_the_weekly_cap_both_hold(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-01 10:00"))
        site_id = audience(harness, people(3, profile_id=lambda i: "ann"))
        policy = delivery_pb2.RunPolicy(cap_per_day=2, cap_per_week=3)
        today = await start(harness, site_id, policy)
        await harness.deliver()
        harness.clock.advance(days=1)
        tomorrow = await start(harness, site_id, policy)
        await harness.deliver()

        assert await states(engine, today) == Counter(
            {(SENT, ""): 2, (SUPPRESSED, "frequency_cap"): 1}
        )
        assert await states(engine, tomorrow) == Counter(
            {(SENT, ""): 1, (SUPPRESSED, "frequency_cap"): 2}
        )


class TestCapGivenBack:
    """The caps count pushes sent: one that ends failed, expired or otherwise unsent
    after its send was counted gives it back."""

    @pytest.mark.parametrize(
        ("status", "reason"), [(400, "push_service_4xx"), (410, "push_service_410")]
    )
    async def test_a_failed_push_does_not_use_up_the_cap(
        self, make_harness: MakeHarness, engine: AsyncEngine, status: int, reason: str
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        [member] = people(1, profile_id=lambda i: "ann")
        site_id = audience(harness, [member])
        policy = delivery_pb2.RunPolicy(cap_per_day=1)
        harness.transport.script(member.endpoint, PushAnswer(status=status))

        failed = await start(harness, site_id, policy)
        await harness.deliver()
        sent = await start(harness, site_id, policy)
        await harness.deliver()
        capped = await start(harness, site_id, policy)
        await harness.deliver()

        assert (await only(engine, failed))[:2] == (FAILED, reason)
        assert (await only(engine, sent))[:2] == (SENT, "")
        assert (await only(engine, capped))[:2] == (SUPPRESSED, "frequency_cap")

    async def test_a_failed_browser_lets_another_browser_of_the_profile_through_later(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        browsers = people(3, profile_id=lambda i: "ann")
        site_id = audience(harness, browsers)
        policy = delivery_pb2.RunPolicy(cap_per_day=2)
        harness.transport.script(browsers[0].endpoint, PushAnswer(status=410))

        first = await start(harness, site_id, policy)
        await harness.deliver()
        assert await states(engine, first) == Counter(
            {(FAILED, "push_service_410"): 1, (SENT, ""): 1, (SUPPRESSED, "frequency_cap"): 1}
        )
        second = await start(harness, site_id, policy)
        await harness.deliver()
        # One send of two is left today (the failed one was given back).
        assert await states(engine, second) == Counter(
            {(SENT, ""): 1, (SUPPRESSED, "frequency_cap"): 2}
        )

    async def test_a_push_that_expires_while_retried_does_not_use_up_the_cap(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        [member] = people(1, profile_id=lambda i: "ann")
        site_id = audience(harness, [member])
        policy = delivery_pb2.RunPolicy(cap_per_day=1)
        harness.transport.script(member.endpoint, PushAnswer(status=503))

        expired = await start(harness, site_id, policy, ttl_seconds=60)
        await harness.deliver()
        harness.clock.advance(seconds=61)
        await harness.deliver()
        assert (await only(engine, expired))[:2] == (EXPIRED, "expired_ttl")

        sent = await start(harness, site_id, policy)
        await harness.deliver()
        assert (await only(engine, sent))[:2] == (SENT, "")

    async def test_a_retry_whose_subscriber_unsubscribed_gives_its_send_back(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        gone, other = people(2, profile_id=lambda i: "ann")
        site_id = audience(harness, [gone, other])
        policy = delivery_pb2.RunPolicy(cap_per_day=1)
        harness.transport.script(gone.endpoint, PushAnswer(status=429, retry_after="30"))

        first = await start(harness, site_id, policy)
        await harness.deliver()
        harness.audience.inactive.add(gone.subscriber_id)
        harness.clock.advance(seconds=30)
        await harness.deliver()
        found = await outcomes(engine, first)
        assert found[gone.subscriber_id][:2] == (SUPPRESSED, "unsubscribed")
        assert found[other.subscriber_id][:2] == (SUPPRESSED, "frequency_cap")

        second = await start(harness, site_id, policy)
        await harness.deliver()
        assert (await outcomes(engine, second))[other.subscriber_id][:2] == (SENT, "")

    async def test_a_retry_discarded_in_the_quiet_hours_gives_its_send_back(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 10:59:50 UTC is 11:59:50 in Berlin; the retry 30 s later is inside 12:00-14:00.
        harness = await make_harness(at("2027-01-12 10:59:50"))
        [member] = people(1, profile_id=lambda i: "ann", timezone="Europe/Berlin")
        site_id = audience(harness, [member])
        policy = delivery_pb2.RunPolicy(cap_per_day=1, quiet_start="12:00", quiet_end="14:00")
        harness.transport.script(member.endpoint, PushAnswer(status=429, retry_after="30"))

        discarded = await start(harness, site_id, policy)
        await harness.deliver()
        harness.clock.advance(seconds=30)
        await harness.deliver()
        assert await only(engine, discarded) == (SUPPRESSED, "dnd", 1)

        harness.clock.advance(hours=2)  # 14:00:20 in Berlin: the same day, after the window
        sent = await start(harness, site_id, policy)
        await harness.deliver()
        assert (await only(engine, sent))[:2] == (SENT, "")


class TestCapWithThrottle:
    async def test_a_send_the_throttle_defers_is_counted_once(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        site_id = audience(harness, people(2, profile_id=lambda i: "ann"))
        policy = delivery_pb2.RunPolicy(cap_per_day=2, campaign_max_per_minute=1)
        run_id = await start(harness, site_id, policy)

        await harness.deliver()
        assert await states(engine, run_id) == Counter({(SENT, ""): 1, ("pending", ""): 1})
        harness.clock.advance(minutes=1)
        await harness.deliver()
        assert await states(engine, run_id) == Counter({(SENT, ""): 2})

        # Both of today's sends are used: another campaign's run is capped.
        capped = await start(harness, site_id, delivery_pb2.RunPolicy(cap_per_day=2))
        await harness.deliver()
        assert await states(engine, capped) == Counter({(SUPPRESSED, "frequency_cap"): 2})


# Do-not-disturb hours.


NIGHT = {"quiet_start": "22:00", "quiet_end": "08:00"}


class TestQuietHours:
    async def test_a_push_due_in_the_night_waits_for_its_end(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 22:00 UTC in January is 23:00 in Berlin (UTC+1); 08:00 there is 07:00 UTC.
        harness = await make_harness(at("2027-01-12 22:00"))
        [member] = people(1, timezone="Europe/Berlin")
        site_id = audience(harness, [member])
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT, quiet_delay=True))

        await harness.deliver()
        view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
        assert view is not None and view.state is RecipientState.PENDING
        assert view.due_time == at("2027-01-13 07:00")
        assert posts(harness) == 0

        harness.clock.advance(seconds=at("2027-01-13 06:59:59").timestamp() - now(harness))
        assert await harness.send_all() == 0  # not claimed before its time
        harness.clock.advance(seconds=1)
        await harness.deliver()
        assert await only(engine, run_id) == (SENT, "", 1)
        assert await run_state(harness, site_id, run_id) is RunState.DONE

    async def test_or_is_discarded(self, make_harness: MakeHarness, engine: AsyncEngine) -> None:
        harness = await make_harness(at("2027-01-12 22:00"))
        site_id = audience(harness, people(1, timezone="Europe/Berlin"))
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT))

        await harness.deliver()

        assert await only(engine, run_id) == (SUPPRESSED, "dnd", 0)
        assert posts(harness) == 0
        assert await run_state(harness, site_id, run_id) is RunState.DONE

    async def test_outside_the_window_it_goes_at_once(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-01-12 07:00"))  # 08:00 in Berlin
        site_id = audience(harness, people(1, timezone="Europe/Berlin"))
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT))
        await harness.deliver()
        assert await only(engine, run_id) == (SENT, "", 1)

    async def test_the_night_the_clocks_go_back_ends_at_eight_local(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # Sunday 31 October 2027, Berlin goes from UTC+2 to UTC+1 at 03:00 local. 23:00
        # on the Saturday is 21:00 UTC; 08:00 on the Sunday is 07:00 UTC, not 06:00.
        harness = await make_harness(at("2027-10-30 21:00"))
        [member] = people(1, timezone="Europe/Berlin")
        site_id = audience(harness, [member])
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT, quiet_delay=True))

        await harness.deliver()
        view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
        assert view is not None and view.due_time == at("2027-10-31 07:00")
        harness.clock.advance(seconds=at("2027-10-31 06:00").timestamp() - now(harness))
        await harness.deliver()
        assert posts(harness) == 0  # 07:00 in Berlin
        harness.clock.advance(hours=1)
        await harness.deliver()
        assert await only(engine, run_id) == (SENT, "", 1)

    async def test_a_recipient_without_a_zone_takes_the_default(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 21:30 UTC: 22:30 in Berlin (quiet), 21:30 in UTC (not yet).
        harness = await make_harness(at("2027-01-12 21:30"))
        zoneless = people(1, timezone="")
        in_utc = people(1, timezone="UTC")
        site_id = audience(harness, zoneless + in_utc)
        run_id = await start(
            harness, site_id, delivery_pb2.RunPolicy(**NIGHT, default_timezone="Europe/Berlin")
        )

        await harness.deliver()

        found = await outcomes(engine, run_id)
        assert found[zoneless[0].subscriber_id] == (SUPPRESSED, "dnd", 0)
        assert found[in_utc[0].subscriber_id] == (SENT, "", 1)

    async def test_without_a_default_no_zone_is_utc(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-01-12 21:30"))
        site_id = audience(harness, people(1, timezone=""))
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT))
        await harness.deliver()
        assert await only(engine, run_id) == (SENT, "", 1)

    async def test_a_window_within_the_day(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 11:30 UTC is 12:30 in Berlin: inside 12:00-14:00, which ends at 13:00 UTC.
        harness = await make_harness(at("2027-01-12 11:30"))
        [member] = people(1, timezone="Europe/Berlin")
        site_id = audience(harness, [member])
        lunch = {"quiet_start": "12:00", "quiet_end": "14:00"}
        delayed = await start(harness, site_id, delivery_pb2.RunPolicy(**lunch, quiet_delay=True))
        discarded = await start(harness, site_id, delivery_pb2.RunPolicy(**lunch))

        await harness.deliver()
        assert await only(engine, discarded) == (SUPPRESSED, "dnd", 0)
        view = await harness.store.recipient(site_id, delayed, member.subscriber_id)
        assert view is not None and view.due_time == at("2027-01-12 13:00")
        assert posts(harness) == 0

        harness.clock.advance(minutes=90)  # 14:00 in Berlin: the window's end is open
        await harness.deliver()
        assert await only(engine, delayed) == (SENT, "", 1)
        after = await start(harness, site_id, delivery_pb2.RunPolicy(**lunch))
        await harness.deliver()
        assert await only(engine, after) == (SENT, "", 1)

    async def test_a_retry_due_inside_the_window_is_held_to_its_end(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 20:59:50 UTC is 21:59:50 in Berlin; the push service asks for 30 s.
        harness = await make_harness(at("2027-01-12 20:59:50"))
        [member] = people(1, timezone="Europe/Berlin")
        site_id = audience(harness, [member])
        harness.transport.script(member.endpoint, PushAnswer(status=429, retry_after="30"))
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(**NIGHT, quiet_delay=True))

        await harness.deliver()
        harness.clock.advance(seconds=30)  # 22:00:20 in Berlin
        await harness.deliver()
        view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
        assert view is not None and view.state is RecipientState.PENDING
        assert view.not_before == at("2027-01-13 07:00")
        assert harness.transport.posts[member.endpoint] == 1

        harness.clock.advance(seconds=at("2027-01-13 07:00").timestamp() - now(harness))
        await harness.deliver()
        assert await only(engine, run_id) == (SENT, "", 2)

    async def test_a_throttled_send_pushed_into_the_window_waits_for_its_end(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        # 20:59 UTC is 21:59 in Berlin: one goes now, the throttle moves the other to 22:00.
        harness = await make_harness(at("2027-01-12 20:59"))
        site_id = audience(harness, people(2, timezone="Europe/Berlin"))
        policy = delivery_pb2.RunPolicy(**NIGHT, quiet_delay=True, campaign_max_per_minute=1)
        run_id = await start(harness, site_id, policy)

        await harness.deliver()
        harness.clock.advance(minutes=1)
        await harness.deliver()
        assert posts(harness) == 1
        assert await states(engine, run_id) == Counter({(SENT, ""): 1, ("pending", ""): 1})

        harness.clock.advance(seconds=at("2027-01-13 07:00").timestamp() - now(harness))
        await harness.deliver()
        assert await states(engine, run_id) == Counter({(SENT, ""): 2})


# Throttle.


class TestThrottle:
    async def test_a_campaign_sends_at_most_its_limit_a_minute(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        site_id = audience(harness, people(25))
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(campaign_max_per_minute=10))

        per_minute = []
        for _ in range(4):
            before = posts(harness)
            await harness.deliver()
            harness.clock.advance(seconds=59)
            await harness.deliver()  # the rest of the minute sends nothing more
            per_minute.append(posts(harness) - before)
            harness.clock.advance(seconds=1)

        assert per_minute == [10, 10, 5, 0]
        assert await states(engine, run_id) == Counter({(SENT, ""): 25})
        assert await run_state(harness, site_id, run_id) is RunState.DONE
        assert harness.transport.posts == Counter({e: 1 for e in harness.transport.posts})

    async def test_the_site_limit_is_shared_by_its_campaigns_and_processes(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        first = await make_harness(at("2027-03-10 10:00"))
        # Another delivery process on the same database (its own memory, its own sends).
        second = first.sibling(audience=first.audience)
        await second.workers.open()
        try:
            spring, summer = people(15), people(15)
            site_id = audience(first, spring + summer)
            policy = delivery_pb2.RunPolicy(site_max_per_minute=10)
            runs = [
                await start(
                    first,
                    site_id,
                    policy,
                    campaign_id=campaign_id,
                    subscriber_ids=[m.subscriber_id for m in listed],
                )
                for campaign_id, listed in (("cmp_spring", spring), ("cmp_summer", summer))
            ]
            await first.prepare_all()

            per_minute = []
            for _ in range(4):
                before = posts(first) + posts(second)
                # The processes take turns at the chunks due.
                while await first.workers.send_once("a") | await second.workers.send_once("b"):
                    pass
                per_minute.append(posts(first) + posts(second) - before)
                first.clock.advance(minutes=1)
        finally:
            await second.workers.close()

        assert per_minute == [10, 10, 10, 0]
        assert posts(first) and posts(second)
        for run_id in runs:
            assert await states(engine, run_id) == Counter({(SENT, ""): 15})

    async def test_a_campaign_limit_under_the_site_limit(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        spring, summer = people(12), people(12)
        site_id = audience(harness, spring + summer)
        await start(
            harness,
            site_id,
            delivery_pb2.RunPolicy(campaign_max_per_minute=4, site_max_per_minute=10),
            campaign_id="cmp_spring",
            subscriber_ids=[m.subscriber_id for m in spring],
        )
        await start(
            harness,
            site_id,
            delivery_pb2.RunPolicy(site_max_per_minute=10),
            campaign_id="cmp_summer",
            subscriber_ids=[m.subscriber_id for m in summer],
        )
        spring_endpoints = {m.endpoint for m in spring}

        minutes = []
        for _ in range(5):
            before = Counter(harness.transport.posts)
            await harness.deliver()
            sent = harness.transport.posts - before
            minutes.append(
                (sum(sent.values()), sum(n for e, n in sent.items() if e in spring_endpoints))
            )
            harness.clock.advance(minutes=1)

        # Which run's chunk is claimed first decides how a minute is shared; neither
        # limit is ever passed, and each is reached.
        assert all(total <= 10 and ours <= 4 for total, ours in minutes), minutes
        assert max(total for total, _ in minutes) == 10
        assert max(ours for _, ours in minutes) == 4
        assert (sum(t for t, _ in minutes), sum(o for _, o in minutes)) == (24, 12)


# Control group.


class TestControlGroup:
    async def test_about_the_percentage_is_held_out_the_same_people_every_run(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        everyone = people(400, profile_id=lambda i: f"person-{i}")
        site_id = audience(harness, everyone)
        policy = delivery_pb2.RunPolicy(control_group_percent=50)
        profile = {m.subscriber_id: m.profile_id for m in everyone}

        async def held_out(run_id: str) -> set[str]:
            found = await outcomes(engine, run_id)
            assert len(found) == 400
            held = {sid for sid, (state, reason, _) in found.items() if reason == "control_group"}
            assert all(found[sid] == (SUPPRESSED, "control_group", 0) for sid in held)
            assert all(found[sid] == (SENT, "", 1) for sid in found.keys() - held)
            return held

        first = await start(harness, site_id, policy, campaign_id="cmp_spring")
        await harness.deliver()
        held = await held_out(first)
        # 400 draws at 50 %: the standard deviation is 10, so this bound is 5 of them.
        assert 150 <= len(held) <= 250
        expected = {
            sid
            for sid, p in profile.items()
            if in_control_group(person_key(p, ""), "cmp_spring", 50)
        }
        assert held == expected
        assert posts(harness) == 400 - len(held)

        again = await start(harness, site_id, policy, campaign_id="cmp_spring")
        other = await start(harness, site_id, policy, campaign_id="cmp_summer")
        await harness.deliver()
        assert await held_out(again) == held
        assert await held_out(other) != held  # another campaign holds out other people

    async def test_all_browsers_of_a_profile_are_in_or_out_together(
        self, make_harness: MakeHarness, engine: AsyncEngine
    ) -> None:
        harness = await make_harness(at("2027-03-10 10:00"))
        everyone = people(60, profile_id=lambda i: f"person-{i // 3}")
        site_id = audience(harness, everyone)
        run_id = await start(harness, site_id, delivery_pb2.RunPolicy(control_group_percent=50))
        await harness.deliver()

        found = await outcomes(engine, run_id)
        by_profile: dict[str, set[str]] = {}
        for m in everyone:
            by_profile.setdefault(m.profile_id, set()).add(found[m.subscriber_id][1])
        assert all(len(reasons) == 1 for reasons in by_profile.values())
        assert {next(iter(r)) for r in by_profile.values()} == {"", "control_group"}


# StartDeliveryRun.


class TestBadPolicy:
    @pytest.mark.parametrize(
        ("policy", "reason", "field"),
        [
            ({"quiet_start": "22:00"}, "INVALID_QUIET_HOURS", "policy.quiet_end"),
            ({"quiet_end": "08:00"}, "INVALID_QUIET_HOURS", "policy.quiet_start"),
            (
                {"quiet_start": "24:00", "quiet_end": "08:00"},
                "INVALID_QUIET_HOURS",
                "policy.quiet_start",
            ),
            (
                {"quiet_start": "22:00", "quiet_end": "8:00"},
                "INVALID_QUIET_HOURS",
                "policy.quiet_end",
            ),
            (
                {"quiet_start": "22:00", "quiet_end": "22:00"},
                "INVALID_QUIET_HOURS",
                "policy.quiet_end",
            ),
            (
                {"quiet_start": "22:00:00", "quiet_end": "08:00"},
                "INVALID_QUIET_HOURS",
                "policy.quiet_start",
            ),
            ({"default_timezone": "Mars/Olympus"}, "INVALID_TIMEZONE", "policy.default_timezone"),
            ({"cap_per_day": -1}, "INVALID_FREQUENCY_CAP", "policy.cap_per_day"),
            ({"cap_per_week": 7001}, "INVALID_FREQUENCY_CAP", "policy.cap_per_week"),
            ({"campaign_max_per_minute": -5}, "INVALID_THROTTLE", "policy.campaign_max_per_minute"),
            ({"site_max_per_minute": -1}, "INVALID_THROTTLE", "policy.site_max_per_minute"),
            (
                {"control_group_percent": 51},
                "INVALID_CONTROL_GROUP",
                "policy.control_group_percent",
            ),
        ],
    )
    async def test_is_refused_and_nothing_is_stored(
        self, stack: Stack, policy: dict[str, Any], reason: str, field: str
    ) -> None:
        site = await stack.new_site()
        request = stack.start_request(policy=delivery_pb2.RunPolicy(**policy))

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.delivery.StartDeliveryRun(request, metadata=stack.internal(site))

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(caught.value)
        assert (info.reason, info.metadata["field"]) == (reason, field)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stack.get_run(site, request.run_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND  # nothing stored

    async def test_a_good_policy_is_taken(self, stack: Stack) -> None:
        site = await stack.new_site()
        policy = delivery_pb2.RunPolicy(
            cap_per_day=3,
            cap_per_week=10,
            quiet_start="22:00",
            quiet_end="08:00",
            quiet_delay=True,
            campaign_max_per_minute=100,
            site_max_per_minute=1000,
            control_group_percent=10,
            default_timezone="Europe/Berlin",
        )
        run = await stack.start_run(site, policy=policy)
        assert (await stack.get_run(site, run.run_id)).run_id == run.run_id
