"""A/B variants, audience samples and the conversion goal of a run.

Through DeliveryWorkers over the real store with the fakes of tests/delivery/conftest.py
(SQLite and PostgreSQL): each person gets the variant `policies.variant_of` gives it,
on every browser, with that variant's content (decrypted as the push service would);
a sample keeps exactly the people `policies.in_sample` names in the run; outcomes carry
their variant and profile; the goal goes to reporting with the audience.

Over real gRPC: StartDeliveryRun with variants, a sample and a goal against real
campaign, segment and reporting servers and the simulator; a recording reporting server
that shows what delivery hands over; and bad variants, samples and goals refused with
INVALID_ARGUMENT, nothing stored.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_service_pb2,
)
from clarion.segment.v1 import segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from services.campaign.server import create_server as create_campaign_server
from services.delivery.domain.goals import ConversionGoal
from services.delivery.domain.policies import in_sample, person_key, variant_of
from services.delivery.domain.runs import DeliveryRuns, RunRequest, VariantRequest
from services.delivery.models import DeliveryRecipientRow, DeliveryRunVariantRow, RunState
from services.delivery.server import create_server as create_delivery_server
from services.delivery.server import run_policy_json
from services.delivery.store import DeliveryStore, Member
from services.kit.clock import FrozenClock
from services.kit.errors import error_info
from services.kit.grpcserver import ManagedServer, client_channel
from services.segment.server import create_server as create_segment_server
from tests.delivery.conftest import (
    FAST_DELIVERY,
    FAST_ENCRYPTOR,
    Harness,
    Stack,
    eventually,
    members,
    shared_payload,
    subscription_member,
)
from tests.delivery.test_personalization import received

RECIPIENTS = DeliveryRecipientRow.__table__
VARIANTS = DeliveryRunVariantRow.__table__

SALE_A = shared_payload(title="A: Spring sale")
SALE_B = shared_payload(title="B: Spring sale")


def variant(variant_id: str, weight: int, payload: bytes, **fields: Any) -> VariantRequest:
    """A RunVariant as the adapter hands it to the domain."""
    return VariantRequest(
        variant_id=variant_id,
        weight_percent=weight,
        payload=payload,
        ttl_seconds=3600,
        urgency="normal",
        content=delivery_pb2.RunContent(payload=payload, ttl_seconds=3600, **fields),
    )


def expected_variants(
    audience: Sequence[Member], campaign_id: str, weights: Sequence[tuple[str, int]]
) -> dict[str, str]:
    """Each subscriber's variant as variant_of gives it to its person."""
    return {
        m.subscriber_id: variant_of(person_key(m.profile_id, m.subscriber_id), campaign_id, weights)
        for m in audience
    }


async def stored_variants(engine: AsyncEngine, run_id: str) -> dict[str, str]:
    """The variant each recipient of the run was queued with, by subscriber id."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(RECIPIENTS.c.subscriber_id, RECIPIENTS.c.variant).where(
                RECIPIENTS.c.run_id == run_id
            )
        )
        return dict(rows.all())


class TestVariants:
    async def test_each_person_gets_its_variants_content_in_about_the_split(
        self, harness: Harness, simulator: PushServiceSimulator, engine: AsyncEngine
    ) -> None:
        subs = [simulator.mint_subscription() for _ in range(200)]
        # 160 people on one browser, 20 on two: 180 people, 200 recipients.
        tag = uuid.uuid4().hex[:8]
        audience = [
            replace(
                subscription_member(sub, f"sub_{tag}_{i:03d}"),
                profile_id=f"person-{tag}-{i}" if i < 160 else f"twice-{tag}-{(i - 160) // 2}",
            )
            for i, sub in enumerate(subs)
        ]
        weights = [("A", 30), ("B", 70)]
        site_id, run_id = await harness.start_run(
            audience,
            campaign_id="cmp_spring",
            variants=[variant("A", 30, SALE_A), variant("B", 70, SALE_B)],
        )

        await harness.deliver()

        expected = expected_variants(audience, "cmp_spring", weights)
        got = {}
        for member, sub in zip(audience, subs, strict=True):
            [(payload, _)] = received(harness, sub)
            assert payload["subscriber_id"] == member.subscriber_id
            got[member.subscriber_id] = payload["title"].partition(":")[0]
        assert got == expected
        # Both browsers of a person get the same variant.
        by_person: dict[str, set[str]] = {}
        for m in audience:
            by_person.setdefault(m.profile_id, set()).add(got[m.subscriber_id])
        assert all(len(chosen) == 1 for chosen in by_person.values())
        # 180 people at 30 %: the standard deviation is 6.1, so this bound is 4 of them.
        people_a = sum(chosen == {"A"} for chosen in by_person.values())
        assert 30 <= people_a <= 78, people_a
        assert await stored_variants(engine, run_id) == expected
        reported = {
            o.subscriber_id: (o.state, o.variant, o.profile_id) for o in harness.sink.outcomes
        }
        assert reported == {
            m.subscriber_id: ("sent", expected[m.subscriber_id], m.profile_id) for m in audience
        }
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE

    async def test_each_variant_renders_its_own_templates_and_browser_payloads(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        subs = [simulator.mint_subscription() for _ in range(16)]
        audience = [
            replace(
                subscription_member(sub, f"sub_{i:02d}"),
                profile_id=f"user-{i}",
                browser=common_pb2.BROWSER_SAFARI if i % 2 else common_pb2.BROWSER_CHROME,
                profile_properties={"first_name": f"Name{i}"},
            )
            for i, sub in enumerate(subs)
        ]
        greeting = shared_payload(
            title="Hi {{ profile.first_name }}", icon="https://cdn.test/a.png"
        )
        plain = shared_payload(title="Sale", icon="https://cdn.test/b.png")
        plain_safari = shared_payload(title="Sale")
        weights = [("hello", 50), ("plain", 50)]
        expected = expected_variants(audience, "cmp_render", weights)
        # The ids are fixed: each variant has recipients on each browser here.
        assert {(expected[m.subscriber_id], m.browser) for m in audience} == {
            (v, b)
            for v in ("hello", "plain")
            for b in (common_pb2.BROWSER_CHROME, common_pb2.BROWSER_SAFARI)
        }
        await harness.start_run(
            audience,
            campaign_id="cmp_render",
            variants=[
                variant("hello", 50, greeting, profile_properties=["first_name"]),
                variant(
                    "plain",
                    50,
                    plain,
                    browser_payloads=[
                        delivery_pb2.BrowserPayload(
                            browser=common_pb2.BROWSER_SAFARI, payload=plain_safari
                        )
                    ],
                ),
            ],
        )

        await harness.deliver()

        # Segment is asked for what any variant reads.
        assert set(harness.audience.properties_asked) == {("first_name",)}
        for i, (member, sub) in enumerate(zip(audience, subs, strict=True)):
            [(payload, _)] = received(harness, sub)
            safari = member.browser == common_pb2.BROWSER_SAFARI
            if expected[member.subscriber_id] == "hello":
                assert (payload["title"], payload["icon"]) == (
                    f"Hi Name{i}",
                    "https://cdn.test/a.png",
                )
            else:
                assert payload["title"] == "Sale"
                assert payload.get("icon") == (None if safari else "https://cdn.test/b.png")

    async def test_one_variant_of_weight_100_goes_to_everyone_as_that_variant(
        self, harness: Harness, simulator: PushServiceSimulator, engine: AsyncEngine
    ) -> None:
        subs = [simulator.mint_subscription() for _ in range(5)]
        audience = [subscription_member(sub, f"sub_{i}") for i, sub in enumerate(subs)]
        site_id, run_id = await harness.start_run(audience, variants=[variant("B", 100, SALE_B)])

        await harness.deliver()

        assert [received(harness, sub)[0][0]["title"] for sub in subs] == ["B: Spring sale"] * 5
        assert set((await stored_variants(engine, run_id)).values()) == {"B"}
        assert {(o.state, o.variant) for o in harness.sink.outcomes} == {("sent", "B")}
        view = await harness.store.recipient(site_id, run_id, "sub_0")
        assert view is not None and view.variant == "B"

    async def test_recipients_suppressed_when_queued_keep_their_variant(
        self, harness: Harness, engine: AsyncEngine
    ) -> None:
        audience = members(60, profile_id=lambda i: f"person-{i}", unsubscribed=[0, 1, 2])
        weights = [("A", 50), ("B", 50)]
        site_id, run_id = await harness.start_run(
            audience,
            campaign_id="cmp_held",
            variants=[variant("A", 50, SALE_A), variant("B", 50, SALE_B)],
            policy=run_policy_json(delivery_pb2.RunPolicy(control_group_percent=50)),
        )

        await harness.deliver()

        expected = expected_variants(audience, "cmp_held", weights)
        reported = {o.subscriber_id: (o.reason, o.variant) for o in harness.sink.outcomes}
        assert {sid: v for sid, (_, v) in reported.items()} == expected
        reasons = Counter(reason for reason, _ in reported.values())
        assert reasons["control_group"] > 0 and reasons["unsubscribed"] > 0 and reasons[""] > 0
        assert await stored_variants(engine, run_id) == expected


class TestSample:
    async def test_only_the_people_in_the_sample_are_in_the_run(self, harness: Harness) -> None:
        everyone = members(
            300,
            profile_id=lambda i: f"pair-{i // 2}" if i < 100 else "",
            unsubscribed=range(0, 300, 10),
        )
        site_id, run_id = await harness.start_run(
            everyone,
            campaign_id="cmp_sample",
            sample=delivery_pb2.AudienceSample(start_basis_points=2500, end_basis_points=5000),
        )

        await harness.deliver()

        inside = {
            m.subscriber_id
            for m in everyone
            if in_sample(person_key(m.profile_id, m.subscriber_id), "cmp_sample", 2500, 5000)
        }
        gone = {m.subscriber_id for m in everyone if m.unsubscribed}
        assert 40 < len(inside) < 110 and inside & gone and gone - inside
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None
        assert (run.state, run.resolved, run.queued) == (
            RunState.DONE,
            len(inside),
            len(inside - gone),
        )
        counts = (await harness.store.run_counts(site_id, [run_id]))[run_id]
        assert (counts.sent, counts.suppressed) == (len(inside - gone), len(inside & gone))
        endpoints = {m.endpoint for m in everyone if m.subscriber_id in inside - gone}
        assert set(harness.transport.posts) == endpoints
        assert {o.subscriber_id for o in harness.sink.outcomes} == inside
        assert harness.sink.audiences == [(site_id, run_id, len(inside))]
        outside = next(m.subscriber_id for m in everyone if m.subscriber_id not in inside)
        assert await harness.store.recipient(site_id, run_id, outside) is None

    async def test_two_complementary_samples_cover_the_audience_once(
        self, harness: Harness
    ) -> None:
        everyone = members(240, profile_id=lambda i: f"trio-{i // 3}" if i < 120 else "")
        sample = delivery_pb2.AudienceSample
        site_id, first = await harness.start_run(
            everyone,
            campaign_id="cmp_halves",
            sample=sample(start_basis_points=0, end_basis_points=3333),
        )
        _, rest = await harness.start_run(
            [],
            site_id=site_id,
            campaign_id="cmp_halves",
            sample=sample(start_basis_points=3333, end_basis_points=10_000),
        )

        await harness.deliver()

        runs: dict[str, set[str]] = {first: set(), rest: set()}
        for outcome in harness.sink.outcomes:
            runs[outcome.run_id].add(outcome.subscriber_id)
        assert runs[first] and runs[rest]
        assert not runs[first] & runs[rest]
        assert runs[first] | runs[rest] == {m.subscriber_id for m in everyone}
        assert sum(harness.transport.posts.values()) == 240
        # A person's browsers are all in one of the two.
        for m in everyone[:120]:
            trio = {s.subscriber_id for s in everyone if s.profile_id == m.profile_id}
            assert trio <= runs[first] or trio <= runs[rest]


class TestConversionGoal:
    async def test_the_goal_goes_to_reporting_with_the_audience(self, harness: Harness) -> None:
        goal = common_pb2.ConversionGoal(
            event_name="Charged", window_seconds=86_400, revenue_property="amount"
        )
        _, with_goal = await harness.start_run(members(3), conversion_goal=goal)
        _, without = await harness.start_run(members(2))

        await harness.deliver()

        assert harness.sink.goals == {
            with_goal: ConversionGoal("Charged", 86_400, "amount"),
            without: None,
        }


class TestKeptOnce:
    async def test_a_retried_start_keeps_the_first_variants_sample_and_goal(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        runs = DeliveryRuns(store, FrozenClock())
        first = RunRequest(
            run_id=f"run_{uuid.uuid4().hex}",
            campaign_id="cmp_1",
            payload=b"",
            ttl_seconds=0,
            urgency=None,
            subscriber_ids=[],
            variants=[variant("A", 40, SALE_A), variant("B", 60, SALE_B)],
            sample=delivery_pb2.AudienceSample(start_basis_points=0, end_basis_points=2000),
            conversion_goal=common_pb2.ConversionGoal(event_name="Signup", window_seconds=3600),
        )

        started, created = await runs.start("site_1", first)
        again, created_again = await runs.start(
            "site_1",
            replace(first, variants=[variant("C", 100, SALE_A)], sample=None, conversion_goal=None),
        )

        assert (created, created_again) == (True, False)
        assert again.run == started.run
        run = started.run
        assert (run.payload, run.ttl_seconds, run.urgency) == (SALE_A, 3600, "normal")
        assert run.sample == (0, 2000)
        assert run.conversion_goal == '{"event_name":"Signup","window_seconds":3600}'
        kept = await store.run_variants("site_1", first.run_id)
        assert [(v.variant_id, v.weight_percent, v.payload) for v in kept] == [
            ("A", 40, SALE_A),
            ("B", 60, SALE_B),
        ]
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(func.count()).select_from(VARIANTS).where(VARIANTS.c.run_id == first.run_id)
            )
            assert rows.scalar_one() == 2


# Over gRPC.


def run_variant(
    variant_id: str, weight: int, payload: bytes, **fields: Any
) -> delivery_pb2.RunVariant:
    return delivery_pb2.RunVariant(
        variant_id=variant_id,
        weight_percent=weight,
        content=delivery_pb2.RunContent(
            payload=payload, ttl_seconds=3600, urgency=common_pb2.URGENCY_HIGH, **fields
        ),
    )


TWO_VARIANTS = [run_variant("A", 50, SALE_A), run_variant("B", 50, SALE_B)]
GOAL = common_pb2.ConversionGoal(
    event_name="Charged", window_seconds=7200, revenue_property="amount"
)


class TestOverGrpc:
    async def test_each_subscriber_gets_its_variant_and_reporting_takes_the_outcomes(
        self, stack: Stack
    ) -> None:
        site = await stack.new_site()
        people = ["ann", "ann", "bob", "", "", "", ""]
        subscribers = [await stack.subscriber(site, profile_id=p) for p in people]
        campaign_id = f"cmp_{uuid.uuid4().hex}"

        run = await stack.start_run(
            site,
            campaign_id=campaign_id,
            content=None,
            variants=TWO_VARIANTS,
            conversion_goal=GOAL,
        )
        finished = await stack.wait_finished(site, run.run_id)

        assert (finished.progress.resolved, finished.progress.sent) == (7, 7)
        weights = [("A", 50), ("B", 50)]
        for profile_id, (subscriber_id, sub) in zip(people, subscribers, strict=True):
            chosen = variant_of(person_key(profile_id, subscriber_id), campaign_id, weights)
            [message] = stack.simulator.messages(sub.endpoint)
            assert message.payload()["title"] == f"{chosen}: Spring sale"
            outcome = await stack.outcome(site, run.run_id, subscriber_id)
            assert (outcome.status, outcome.variant) == (common_pb2.DELIVERY_STATUS_SENT, chosen)
        ann = [
            stack.simulator.messages(sub.endpoint)[0].payload()["title"]
            for _, sub in subscribers[:2]
        ]
        assert ann[0] == ann[1]

        async def reported() -> bool:
            report = (
                await stack.reporting.GetCampaignReport(
                    reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                    metadata=site.metadata,
                )
            ).report
            return (report.sent, report.audience) == (7, 7)

        # Reporting took every outcome, variant and profile included.
        await eventually(reported, what="reporting heard the 7 outcomes and the audience")

    async def test_a_sample_is_counted_in_the_runs_progress(self, stack: Stack) -> None:
        site = await stack.new_site()
        subscribers = [await stack.subscriber(site) for _ in range(20)]
        campaign_id = f"cmp_{uuid.uuid4().hex}"
        inside = {
            sid for sid, _ in subscribers if in_sample(person_key("", sid), campaign_id, 0, 5000)
        }
        assert 0 < len(inside) < 20

        run = await stack.start_run(
            site,
            campaign_id=campaign_id,
            audience=delivery_pb2.RunAudience(
                sample=delivery_pb2.AudienceSample(start_basis_points=0, end_basis_points=5000)
            ),
        )
        finished = await stack.wait_finished(site, run.run_id)

        progress = finished.progress
        assert (progress.resolved, progress.queued, progress.sent) == (len(inside),) * 3
        for subscriber_id, sub in subscribers:
            assert len(stack.simulator.messages(sub.endpoint)) == (subscriber_id in inside)
        outside = next(sid for sid, _ in subscribers if sid not in inside)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.outcome(site, run.run_id, outside)
        assert error_info(caught.value).reason == "RECIPIENT_NOT_QUEUED"

    @pytest.mark.parametrize(
        ("overrides", "reason", "field"),
        [
            ({"variants": [run_variant("A", 60, SALE_A), run_variant("B", 30, SALE_B)]},
             "INVALID_VARIANT_SPLIT", "variants"),
            ({"variants": [run_variant("A", 0, SALE_A), run_variant("B", 100, SALE_B)]},
             "INVALID_VARIANT_SPLIT", "variants[0].weight_percent"),
            ({"variants": [run_variant("A", 101, SALE_A)]},
             "INVALID_VARIANT_SPLIT", "variants[0].weight_percent"),
            ({"variants": [run_variant("A", 50, SALE_A), run_variant("A", 50, SALE_B)]},
             "INVALID_VARIANT", "variants[1].variant_id"),
            ({"variants": [run_variant("", 100, SALE_A)]},
             "INVALID_VARIANT", "variants[0].variant_id"),
            ({"variants": [run_variant("a b", 100, SALE_A)]},
             "INVALID_VARIANT", "variants[0].variant_id"),
            ({"variants": [run_variant("x" * 17, 100, SALE_A)]},
             "INVALID_VARIANT", "variants[0].variant_id"),
            ({"variants": [run_variant(f"v{i}", 16, SALE_A) for i in range(6)]},
             "TOO_MANY_VARIANTS", "variants"),
            ({"variants": [run_variant("A", 50, SALE_A), run_variant("B", 50, b"[1]")]},
             "INVALID_PAYLOAD", "variants[1].content.payload"),
            ({"variants": [run_variant("A", 50, SALE_A),
                           run_variant("B", 50, shared_payload(title="{{ nope }}"))]},
             "UNKNOWN_VARIABLE", "variants[1].content.payload"),
            ({"variants": [run_variant("A", 50, SALE_A),
                           run_variant("B", 50, SALE_B, topic="x.y")]},
             "INVALID_TOPIC", "variants[1].content.topic"),
            ({"variants": [run_variant("A", 50, SALE_A),
                           delivery_pb2.RunVariant(variant_id="B", weight_percent=50,
                                                   content=delivery_pb2.RunContent(payload=SALE_B))]},
             "INVALID_TTL", "variants[1].content.ttl_seconds"),
            ({"variants": [run_variant("A", 50, SALE_A),
                           delivery_pb2.RunVariant(variant_id="B", weight_percent=50,
                                                   content=delivery_pb2.RunContent(
                                                       payload=SALE_B, ttl_seconds=60,
                                                       urgency=common_pb2.URGENCY_HIGH))]},
             "INVALID_VARIANT", "variants[1].content.ttl_seconds"),
            ({"variants": [run_variant("A", 50, SALE_A), run_variant("B", 50, SALE_B, topic="b")]},
             "INVALID_VARIANT", "variants[1].content.topic"),
            ({"audience": delivery_pb2.RunAudience(sample=delivery_pb2.AudienceSample())},
             "INVALID_SAMPLE", "audience.sample.end_basis_points"),
            ({"audience": delivery_pb2.RunAudience(sample=delivery_pb2.AudienceSample(
                start_basis_points=5000, end_basis_points=5000))},
             "INVALID_SAMPLE", "audience.sample.end_basis_points"),
            ({"audience": delivery_pb2.RunAudience(sample=delivery_pb2.AudienceSample(
                start_basis_points=6000, end_basis_points=2000))},
             "INVALID_SAMPLE", "audience.sample.end_basis_points"),
            ({"audience": delivery_pb2.RunAudience(sample=delivery_pb2.AudienceSample(
                start_basis_points=0, end_basis_points=10_001))},
             "INVALID_SAMPLE", "audience.sample.end_basis_points"),
            ({"conversion_goal": common_pb2.ConversionGoal(window_seconds=3600)},
             "INVALID_CONVERSION_GOAL", "conversion_goal.event_name"),
            ({"conversion_goal": common_pb2.ConversionGoal(event_name="Buy\nNow",
                                                           window_seconds=3600)},
             "INVALID_CONVERSION_GOAL", "conversion_goal.event_name"),
            ({"conversion_goal": common_pb2.ConversionGoal(event_name="Charged")},
             "INVALID_CONVERSION_GOAL", "conversion_goal.window_seconds"),
            ({"conversion_goal": common_pb2.ConversionGoal(event_name="Charged",
                                                           window_seconds=59)},
             "INVALID_CONVERSION_GOAL", "conversion_goal.window_seconds"),
            ({"conversion_goal": common_pb2.ConversionGoal(event_name="Charged",
                                                           window_seconds=2_592_001)},
             "INVALID_CONVERSION_GOAL", "conversion_goal.window_seconds"),
            ({"conversion_goal": common_pb2.ConversionGoal(event_name="Charged",
                                                           window_seconds=60,
                                                           revenue_property="a\tb")},
             "INVALID_CONVERSION_GOAL", "conversion_goal.revenue_property"),
        ],
    )  # fmt: skip
    async def test_is_refused_and_nothing_is_stored(
        self, stack: Stack, overrides: dict[str, Any], reason: str, field: str
    ) -> None:
        site = await stack.new_site()
        if "variants" in overrides:
            overrides = {**overrides, "content": None}
        start = stack.start_request(**overrides)

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.delivery.StartDeliveryRun(start, metadata=stack.internal(site))

        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(caught.value)
        assert (info.reason, info.metadata["field"]) == (reason, field)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stack.get_run(site, start.run_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# What reporting is handed: a reporting server that records every request.


class RecordingReporting(reporting_internal_service_pb2_grpc.ReportingInternalServiceServicer):
    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.audiences: list[reporting_internal_service_pb2.RecordRunAudienceRequest] = []

    async def RecordDeliveryOutcomes(self, request, context):  # type: ignore[no-untyped-def]
        self.outcomes += request.outcomes
        return reporting_internal_service_pb2.RecordDeliveryOutcomesResponse()

    async def RecordRunAudience(self, request, context):  # type: ignore[no-untyped-def]
        self.audiences.append(request)
        return reporting_internal_service_pb2.RecordRunAudienceResponse()


@pytest.fixture(scope="module")
async def recorded(
    settings_factory, simulator: PushServiceSimulator
) -> AsyncIterator[tuple[Stack, RecordingReporting]]:  # type: ignore[no-untyped-def]
    """Real campaign, segment and delivery servers whose reporting records what it is
    told."""
    settings = settings_factory(encryptor=FAST_ENCRYPTOR, **FAST_DELIVERY)
    reporting = RecordingReporting()
    recorder = grpc.aio.server()
    reporting_internal_service_pb2_grpc.add_ReportingInternalServiceServicer_to_server(
        reporting, recorder
    )
    settings.reporting_address = f"127.0.0.1:{recorder.add_insecure_port('127.0.0.1:0')}"
    await recorder.start()
    servers: dict[str, ManagedServer] = {
        "campaign": await create_campaign_server("127.0.0.1:0", settings),
        "segment": await create_segment_server("127.0.0.1:0", settings),
        "delivery": await create_delivery_server("127.0.0.1:0", settings),
    }
    for name, server in servers.items():
        setattr(settings, f"{name}_address", server.address)
    for server in servers.values():
        await server.start()
    channels = {name: client_channel(server.address) for name, server in servers.items()}
    try:
        yield (
            Stack(
                settings=settings,
                delivery=delivery_service_pb2_grpc.DeliveryServiceStub(channels["delivery"]),
                segment=segment_service_pb2_grpc.SegmentServiceStub(channels["segment"]),
                reporting=None,  # type: ignore[arg-type]
                simulator=simulator,
                channels=channels,
            ),
            reporting,
        )
    finally:
        for channel in channels.values():
            await channel.close()
        for name in ("delivery", "campaign", "segment"):
            await servers[name].stop()
        await recorder.stop(None)


class TestWhatReportingHears:
    async def test_outcomes_carry_variant_and_profile_and_the_audience_its_goal(
        self, recorded: tuple[Stack, RecordingReporting]
    ) -> None:
        stack, reporting = recorded
        site = await stack.new_site()
        people = ["ann", "ann", "", "bob"]
        subscribers = [await stack.subscriber(site, profile_id=p) for p in people]
        campaign_id = f"cmp_{uuid.uuid4().hex}"

        run = await stack.start_run(
            site, campaign_id=campaign_id, content=None, variants=TWO_VARIANTS, conversion_goal=GOAL
        )
        plain = await stack.start_run(site, campaign_id=campaign_id)
        await stack.wait_finished(site, run.run_id)
        await stack.wait_finished(site, plain.run_id)

        def heard(run_id: str) -> list[Any]:
            return [o for o in reporting.outcomes if o.run_id == run_id]

        await eventually(
            lambda: (
                len(heard(run.run_id)) == 4
                and len(heard(plain.run_id)) == 4
                and {a.run_id for a in reporting.audiences} >= {run.run_id, plain.run_id}
            ),
            what="reporting heard both runs",
        )
        weights = [("A", 50), ("B", 50)]
        expected = {
            sid: (variant_of(person_key(p, sid), campaign_id, weights), p)
            for p, (sid, _) in zip(people, subscribers, strict=True)
        }
        assert {o.subscriber_id: (o.variant, o.profile_id) for o in heard(run.run_id)} == expected
        assert {o.subscriber_id: (o.variant, o.profile_id) for o in heard(plain.run_id)} == {
            sid: ("", p) for sid, (_, p) in expected.items()
        }
        audiences = {a.run_id: a for a in reporting.audiences}
        assert audiences[run.run_id].audience == 4
        assert audiences[run.run_id].conversion_goal == GOAL
        assert not audiences[plain.run_id].HasField("conversion_goal")
