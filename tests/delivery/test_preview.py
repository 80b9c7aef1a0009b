"""The delivery plan preview (domain/preview.py): per hour, browser and variant, what a run
would send and suppress, from the same decisions the run takes; and, run against the
real store and workers under a moved clock, the plan equals what was sent each hour."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.policies import (
    Policy,
    in_control_group,
    in_sample,
    person_key,
    policy_from_proto,
    variant_of,
)
from services.delivery.domain.preview import plan_delivery
from services.delivery.domain.runs import DeliveryRuns, RunRequest, VariantRequest
from services.delivery.domain.timing import RunTiming
from services.delivery.models import DeliveryRecipientRow, RecipientState
from services.delivery.server import run_policy_json
from services.delivery.store import Member
from tests.delivery.conftest import Harness, members, shared_payload
from tests.delivery.test_policy_enforcement import (  # noqa: F401 - make_harness is a fixture
    MakeHarness,
    audience,
    make_harness,
    states,
)

START = datetime(2027, 1, 15, 6, 30, tzinfo=UTC)
CAMPAIGN = "cmp_preview"


def plan(who: list[Member], policy: Policy | None = None, **given: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "timing": RunTiming(),
        "policy": policy or Policy(),
        "campaign_id": CAMPAIGN,
        "ttl_seconds": 7 * 24 * 3600,
        "now": START,
        "sends_so_far": {},
    }
    values.update(given)
    return plan_delivery(who, **values)  # type: ignore[arg-type]


def zoned(n: int, timezone: str, **kwargs: object) -> list[Member]:
    return [replace(m, timezone=timezone) for m in members(n, **kwargs)]  # type: ignore[arg-type]


class TestThePlan:
    def test_without_policies_everyone_is_sent_in_the_first_hour(self) -> None:
        made = plan(members(40))
        assert made.sent_per_hour() == {START.replace(minute=0): 40}
        assert made.totals() == (40, Counter())

    def test_the_control_group_is_the_one_the_run_holds_out(self) -> None:
        who = members(400, profile_id=lambda i: f"p{i}")
        made = plan(who, Policy(control_group_percent=25))
        held = sum(in_control_group(person_key(m.profile_id, ""), CAMPAIGN, 25) for m in who)
        assert made.totals() == (400 - held, Counter({"control_group": held}))

    def test_quiet_hours_move_each_zone_to_its_morning(self) -> None:
        who = zoned(10, "Europe/Berlin") + zoned(10, "America/New_York") + zoned(10, "UTC")
        quiet = Policy(quiet_start=time(22), quiet_end=time(8), quiet_delay=True)
        made = plan(who, quiet)
        # 08:00 in Berlin is 07:00 UTC in January; in New York 13:00 UTC; in UTC 08:00.
        assert made.sent_per_hour() == {
            datetime(2027, 1, 15, 7, tzinfo=UTC): 10,
            datetime(2027, 1, 15, 8, tzinfo=UTC): 10,
            datetime(2027, 1, 15, 13, tzinfo=UTC): 10,
        }
        discarding = plan(who, replace(quiet, quiet_delay=False))
        assert discarding.totals() == (0, Counter({"dnd": 30}))

    def test_the_throttle_spreads_sends_over_the_hours(self) -> None:
        made = plan(members(1000), Policy(campaign_max_per_minute=10))
        # 06:30-06:59 is 30 minutes (300 sends), then 600 an hour.
        assert made.sent_per_hour() == {
            datetime(2027, 1, 15, 6, tzinfo=UTC): 300,
            datetime(2027, 1, 15, 7, tzinfo=UTC): 600,
            datetime(2027, 1, 15, 8, tzinfo=UTC): 100,
        }

    def test_a_throttled_send_past_its_ttl_expires(self) -> None:
        made = plan(members(1000), Policy(campaign_max_per_minute=10), ttl_seconds=1800)
        assert made.totals() == (300, Counter({"expired_ttl": 700}))

    def test_the_cap_counts_what_was_sent_before_and_what_the_plan_sends(self) -> None:
        who = members(6, profile_id=lambda i: f"p{i // 3}")  # two people, three browsers
        capped = Policy(cap_per_day=2)
        before = {"p:p0": {START.date(): 2}}
        made = plan(who, capped, sends_so_far=before)
        # p0 already had its two today; p1 gets two of its three browsers.
        assert made.totals() == (2, Counter({"frequency_cap": 4}))

    def test_local_time_passed_and_cut_off_are_counted_when_queued(self) -> None:
        who = zoned(5, "Asia/Tokyo") + zoned(5, "Europe/Paris")
        timing = RunTiming(local_time=time(9), cut_off_time=START + timedelta(hours=1))
        made = plan(who, timing=timing)
        # 09:00 had passed in Tokyo (15:30 there); Paris' 09:00 (08:00 UTC) is past the
        # 07:30 cut-off.
        assert made.totals() == (0, Counter({"local_time_passed": 5, "cut_off": 5}))


class TestSamplesAndVariants:
    def test_people_outside_the_sample_are_not_in_the_plan(self) -> None:
        who = members(300, profile_id=lambda i: f"p{i // 2}")
        made = plan(who, sample=(2500, 7500))
        inside = [m for m in who if in_sample(person_key(m.profile_id, ""), CAMPAIGN, 2500, 7500)]
        assert 0 < len(inside) < len(who)
        # Both browsers of a person are in, or neither.
        assert {m.profile_id for m in inside}.isdisjoint(
            {m.profile_id for m in who if m not in inside}
        )
        assert made.audience == len(inside)
        assert made.totals() == (len(inside), Counter())

    def test_the_samples_of_a_test_and_its_rest_make_the_whole_audience(self) -> None:
        who = members(200, profile_id=lambda i: f"p{i}")
        test, rest = plan(who, sample=(0, 1000)), plan(who, sample=(1000, 10_000))
        assert test.audience + rest.audience == 200
        assert test.totals()[0] + rest.totals()[0] == 200

    def test_each_person_is_planned_in_its_variant_the_held_out_too(self) -> None:
        who = members(400, profile_id=lambda i: f"p{i // 2}")
        split = [("A", 20), ("B", 30), ("C", 50)]
        made = plan(who, Policy(control_group_percent=10), variants=split)
        expected: dict[str, Counter[str]] = {}
        for m in who:
            key = person_key(m.profile_id, "")
            outcome = "control_group" if in_control_group(key, CAMPAIGN, 10) else "sent"
            expected.setdefault(variant_of(key, CAMPAIGN, split), Counter())[outcome] += 1
        found: dict[str, Counter[str]] = {}
        for (_, _, variant), cell in made.cells.items():
            found.setdefault(variant, Counter())["sent"] += cell.sent
            found[variant].update(cell.suppressed)
        assert found == expected
        assert set(found) == {"A", "B", "C"}


POLICY = delivery_pb2.RunPolicy(
    cap_per_day=1,
    quiet_start="22:00",
    quiet_end="08:00",
    quiet_delay=True,
    campaign_max_per_minute=7,
    control_group_percent=20,
)


def audience_of_three_zones() -> list[Member]:
    return (
        zoned(40, "Europe/Berlin", profile_id=lambda i: f"b{i // 2}")
        + zoned(40, "America/New_York", profile_id=lambda i: f"n{i}")
        + zoned(40, "UTC", profile_id=lambda i: f"u{i}")
    )


async def run_minute_by_minute(
    harness: Harness, site_id: str, request: RunRequest, hours: int = 8
) -> Counter[datetime]:
    """Starts the run and drives it a minute at a time; the pushes posted in each hour."""
    await DeliveryRuns(harness.store, harness.clock).start(site_id, request)
    harness.workers.run_started()
    sent_per_hour: Counter[datetime] = Counter()
    end = harness.clock.now() + timedelta(hours=hours)
    while harness.clock.now() < end:
        before = sum(harness.transport.posts.values())
        await harness.deliver()
        sent = sum(harness.transport.posts.values()) - before
        if sent:
            sent_per_hour[harness.clock.now().replace(minute=0, second=0, microsecond=0)] += sent
        harness.clock.advance(seconds=60)
    return sent_per_hour


async def outcomes_per_variant(engine, run_id: str) -> Counter[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    table = DeliveryRecipientRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.variant, table.c.state, table.c.reason).where(table.c.run_id == run_id)
        )
        return Counter((variant, state, reason) for variant, state, reason in rows)


def planned_per_variant(made) -> Counter[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    found: Counter[tuple[str, str, str]] = Counter()
    for (_, _, variant), cell in made.cells.items():
        if cell.sent:
            found[(variant, RecipientState.SENT.value, "")] += cell.sent
        for reason, count in cell.suppressed.items():
            found[(variant, RecipientState.SUPPRESSED.value, reason)] += count
    return found


def run_request(**fields: object) -> RunRequest:
    run_id = f"run_{uuid.uuid4().hex}"
    values: dict[str, object] = {
        "run_id": run_id,
        "campaign_id": CAMPAIGN,
        "payload": shared_payload(run_id=run_id),
        "ttl_seconds": 7 * 24 * 3600,
        "urgency": "normal",
        "subscriber_ids": [],
        "policy": run_policy_json(POLICY),
    }
    values.update(fields)
    return RunRequest(**values)  # type: ignore[arg-type]


class TestThePlanIsWhatTheRunDoes:
    async def test_sent_per_hour_and_every_suppression_match_a_run_under_a_moved_clock(
        self, make_harness: MakeHarness, engine  # noqa: F811 - the fixture imported above
    ) -> None:  # type: ignore[no-untyped-def]
        who = audience_of_three_zones()
        policy = policy_from_proto(POLICY)
        expected = plan(who, policy)
        harness = await make_harness(START)
        site_id = audience(harness, who)
        request = run_request()

        sent_per_hour = await run_minute_by_minute(harness, site_id, request)

        assert dict(sorted(sent_per_hour.items())) == expected.sent_per_hour()
        sent, suppressed = expected.totals()
        observed = await states(engine, request.run_id)
        assert observed == Counter(
            {(RecipientState.SENT.value, ""): sent}
            | {(RecipientState.SUPPRESSED.value, r): n for r, n in suppressed.items()}
        )

    async def test_with_a_sample_and_variants_too(
        self, make_harness: MakeHarness, engine  # noqa: F811 - the fixture imported above
    ) -> None:  # type: ignore[no-untyped-def]
        who = audience_of_three_zones()
        split = [("A", 40), ("B", 60)]
        expected = plan(who, policy_from_proto(POLICY), sample=(0, 6000), variants=split)
        harness = await make_harness(START)
        site_id = audience(harness, who)
        request = run_request(
            sample=delivery_pb2.AudienceSample(start_basis_points=0, end_basis_points=6000),
            variants=[
                VariantRequest(
                    variant_id=variant_id,
                    weight_percent=weight,
                    payload=shared_payload(title=variant_id),
                    ttl_seconds=7 * 24 * 3600,
                    urgency="normal",
                    content=delivery_pb2.RunContent(
                        payload=shared_payload(title=variant_id), ttl_seconds=7 * 24 * 3600
                    ),
                )
                for variant_id, weight in split
            ],
        )

        sent_per_hour = await run_minute_by_minute(harness, site_id, request)

        assert 0 < expected.audience < len(who)
        assert dict(sorted(sent_per_hour.items())) == expected.sent_per_hour()
        planned = planned_per_variant(expected)
        assert {variant for variant, _, _ in planned} == {"A", "B"}
        assert await outcomes_per_variant(engine, request.run_id) == planned
