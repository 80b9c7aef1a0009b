"""A variant test's two phases through the real campaign server and its scheduler, on
both databases, with time moved by an injected clock.

Delivery and reporting are small gRPC servers of this file's own: delivery keeps what it
is handed (so a test can read each run's variants, sample and goal exactly as campaign
sent them) and reporting answers GetRunReport with the counts a test gives it, or
UNAVAILABLE. The whole platform's version is tests/e2e/test_variant_test.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2, reporting_service_pb2_grpc
from services.campaign.admin import create_site
from services.campaign.server import create_server
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import closed_port_address, eventually
from tests.support.sites import bearer

Stub = campaign_service_pb2_grpc.CampaignServiceStub
START = datetime(2027, 5, 3, 8, 0, tzinfo=UTC)
WAIT = 600
SCHEDULER_INTERVAL = 0.02
GOAL = common_pb2.ConversionGoal(event_name="Charged", window_seconds=86400)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def variant(variant_id: str, split: int) -> campaign_pb2.Variant:
    return campaign_pb2.Variant(
        variant_id=variant_id,
        split_percent=split,
        notification=common_pb2.Notification(
            title=f"Offer {variant_id}", target_url=f"https://shop.example/{variant_id.lower()}"
        ),
    )


def counts(**per_variant: tuple[int, int, int]) -> list[reporting_pb2.VariantReport]:
    """VariantReports from variant id -> (sent, clicked, conversions)."""
    return [
        reporting_pb2.VariantReport(
            variant_id=v, sent=sent, clicked=clicked, conversions=conversions
        )
        for v, (sent, clicked, conversions) in per_variant.items()
    ]


class RecordingDelivery(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """Takes runs and keeps the first request of each; cancels on request; says the runs
    in `done` are DONE."""

    def __init__(self) -> None:
        self.requests: dict[str, delivery_service_pb2.StartDeliveryRunRequest] = {}
        self.cancelled: set[str] = set()
        self.done: set[str] = set()

    def _run(self, run_id: str) -> delivery_pb2.DeliveryRun:
        run = delivery_pb2.DeliveryRun(
            run_id=run_id, state=delivery_pb2.DELIVERY_RUN_STATE_PREPARING
        )
        if run_id in self.cancelled:
            run.state = delivery_pb2.DELIVERY_RUN_STATE_CANCELLED
            run.finish_time.FromDatetime(START)
        elif run_id in self.done:
            run.state = delivery_pb2.DELIVERY_RUN_STATE_DONE
            run.finish_time.FromDatetime(START)
        return run

    async def StartDeliveryRun(
        self,
        request: delivery_service_pb2.StartDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.StartDeliveryRunResponse:
        self.requests.setdefault(request.run_id, request)
        return delivery_service_pb2.StartDeliveryRunResponse(delivery_run=self._run(request.run_id))

    async def BatchGetDeliveryRuns(
        self,
        request: delivery_service_pb2.BatchGetDeliveryRunsRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.BatchGetDeliveryRunsResponse:
        return delivery_service_pb2.BatchGetDeliveryRunsResponse(
            delivery_runs=[
                self._run(run_id) for run_id in request.run_ids if run_id in self.requests
            ]
        )

    async def CancelDeliveryRun(
        self,
        request: delivery_service_pb2.CancelDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.CancelDeliveryRunResponse:
        self.cancelled.add(request.run_id)
        return delivery_service_pb2.CancelDeliveryRunResponse(
            delivery_run=self._run(request.run_id)
        )


class ScriptedReporting(reporting_service_pb2_grpc.ReportingServiceServicer):
    """GetRunReport answers the per-variant counts set for a run (NOT_FOUND for others),
    or UNAVAILABLE while `down`."""

    def __init__(self) -> None:
        self.reports: dict[str, list[reporting_pb2.VariantReport]] = {}
        self.down = False
        self.calls: list[str] = []

    async def GetRunReport(
        self, request: reporting_service_pb2.GetRunReportRequest, context: grpc.aio.ServicerContext
    ) -> reporting_service_pb2.GetRunReportResponse:
        self.calls.append(request.run_id)
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "reporting is down")
        if request.run_id not in self.reports:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id}")
        return reporting_service_pb2.GetRunReportResponse(
            report=reporting_pb2.RunReport(
                run_id=request.run_id, variants=self.reports[request.run_id]
            )
        )


@asynccontextmanager
async def fake_peers() -> AsyncIterator[tuple[RecordingDelivery, ScriptedReporting, str, str]]:
    delivery, reporting = RecordingDelivery(), ScriptedReporting()
    servers = []
    addresses = []
    for add, servicer in (
        (delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server, delivery),
        (reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server, reporting),
    ):
        server = grpc.aio.server()
        add(servicer, server)  # type: ignore[operator]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    try:
        yield delivery, reporting, addresses[0], addresses[1]
    finally:
        for server in servers:
            await server.stop(None)


@asynccontextmanager
async def campaign_server(settings: Settings, clock: FrozenClock) -> AsyncIterator[ManagedServer]:
    server = await create_server(
        "127.0.0.1:0", settings, clock=clock, scheduler_interval_seconds=SCHEDULER_INTERVAL
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Deployment:
    settings: Settings
    clock: FrozenClock
    stub: Stub
    auth: tuple[tuple[str, str], ...]
    delivery: RecordingDelivery
    reporting: ScriptedReporting
    barriers: list[str] = field(default_factory=list)

    async def create(self, **fields: object) -> campaign_pb2.Campaign:
        fields.setdefault("variants", [variant("A", 50), variant("B", 50)])
        fields.setdefault(
            "variant_test", campaign_pb2.VariantTest(test_percent=20, wait_seconds=WAIT)
        )
        response = await self.stub.CreateCampaign(
            pb.CreateCampaignRequest(name="A/B", **fields),  # type: ignore[arg-type]
            metadata=self.auth,
            timeout=30,
        )
        return response.campaign

    async def send(self, campaign_id: str) -> campaign_pb2.Run:
        response = await self.stub.SendCampaignNow(
            pb.SendCampaignNowRequest(campaign_id=campaign_id), metadata=self.auth, timeout=30
        )
        return response.run

    async def runs(self, campaign_id: str) -> list[campaign_pb2.Run]:
        response = await self.stub.ListRuns(
            pb.ListRunsRequest(campaign_id=campaign_id, page_size=100),
            metadata=self.auth,
            timeout=30,
        )
        return list(reversed(response.runs))  # oldest first

    async def run(self, run_id: str) -> campaign_pb2.Run:
        return (
            await self.stub.GetRun(pb.GetRunRequest(run_id=run_id), metadata=self.auth, timeout=30)
        ).run

    async def handed(self, run_id: str) -> delivery_service_pb2.StartDeliveryRunRequest:
        """What delivery was handed for the run (waiting for the hand-off)."""

        async def probe() -> delivery_service_pb2.StartDeliveryRunRequest | None:
            return self.delivery.requests.get(run_id)

        found = await eventually(
            probe, lambda r: r is not None, timeout=15, what=f"{run_id} handed off"
        )
        assert found is not None
        return found

    async def rest_of(self, test_run_id: str) -> campaign_pb2.Run:
        test = await eventually(
            lambda: self.run(test_run_id),
            lambda run: bool(run.related_run_id),
            timeout=15,
            what=f"the rest of {test_run_id}",
        )
        return await self.run(test.related_run_id)

    async def scheduler_round_at(self, moment: datetime) -> None:
        """Moves the clock to `moment` and waits for a scheduler round that saw it: a
        one-time campaign due then has started its run (the round's rests come first)."""
        barrier = await self.stub.CreateCampaign(
            pb.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title="Barrier", target_url="https://b.example/"
                ),
                schedule=campaign_pb2.Schedule(at=stamp(moment)),
            ),
            metadata=self.auth,
            timeout=30,
        )
        self.clock.advance(seconds=(moment - self.clock.now()).total_seconds())
        await eventually(
            lambda: self.runs(barrier.campaign.campaign_id),
            lambda runs: len(runs) == 1,
            timeout=15,
            what="a scheduler round",
        )


@pytest.fixture
def deployment_settings(settings_factory: Callable[..., Settings]) -> Settings:
    # A database of its own: the scheduler looks at every run in it.
    return settings_factory(segment_address=closed_port_address(), rpc_timeout_seconds=5.0)


@pytest.fixture
async def deployment(deployment_settings: Settings) -> AsyncIterator[Deployment]:
    clock = FrozenClock(START)
    async with fake_peers() as (delivery, reporting, delivery_address, reporting_address):
        deployment_settings.delivery_address = delivery_address
        deployment_settings.reporting_address = reporting_address
        async with campaign_server(deployment_settings, clock) as server:
            site = await create_site(deployment_settings, "A/B shop", "mailto:ops@shop.test")
            async with client_channel(server.address) as channel:
                yield Deployment(
                    deployment_settings,
                    clock,
                    Stub(channel),
                    bearer(site.api_key),
                    delivery,
                    reporting,
                )


def weights(request: delivery_service_pb2.StartDeliveryRunRequest) -> list[tuple[str, int]]:
    return [(v.variant_id, v.weight_percent) for v in request.variants]


def sample(request: delivery_service_pb2.StartDeliveryRunRequest) -> tuple[int, int]:
    given = request.audience.sample
    return (given.start_basis_points, given.end_basis_points)


class TestTheTestRun:
    async def test_goes_to_its_share_with_every_variant_and_the_goal(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create(conversion_goal=GOAL)

        run = await deployment.send(campaign.campaign_id)
        handed = await deployment.handed(run.run_id)

        assert run.phase == campaign_pb2.RUN_PHASE_VARIANT_TEST
        assert run.rest_time.ToDatetime(UTC) == START + timedelta(seconds=WAIT)
        assert not handed.HasField("content")
        assert weights(handed) == [("A", 50), ("B", 50)]
        assert [json.loads(v.content.payload)["title"] for v in handed.variants] == [
            "Offer A",
            "Offer B",
        ]
        assert sample(handed) == (0, 2000)
        assert handed.conversion_goal == GOAL

    async def test_a_scheduled_occurrence_starts_a_test_run_too(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create(
            schedule=campaign_pb2.Schedule(at=stamp(START + timedelta(minutes=5)))
        )

        await deployment.scheduler_round_at(START + timedelta(minutes=5))
        [run] = await deployment.runs(campaign.campaign_id)

        assert run.phase == campaign_pb2.RUN_PHASE_VARIANT_TEST
        assert run.rest_time.ToDatetime(UTC) == START + timedelta(minutes=5, seconds=WAIT)
        assert sample(await deployment.handed(run.run_id)) == (0, 2000)

    async def test_a_completed_schedule_runs_until_its_rest_has_gone(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create(
            schedule=campaign_pb2.Schedule(at=stamp(START + timedelta(minutes=5)))
        )
        await deployment.scheduler_round_at(START + timedelta(minutes=5))
        [test] = await deployment.runs(campaign.campaign_id)
        await deployment.handed(test.run_id)

        async def state() -> int:
            response = await deployment.stub.GetCampaign(
                pb.GetCampaignRequest(campaign_id=campaign.campaign_id),
                metadata=deployment.auth,
                timeout=30,
            )
            return response.campaign.state

        # The test run has finished sending; its rest is still to come.
        deployment.delivery.done.add(test.run_id)
        assert (await deployment.run(test.run_id)).HasField("finish_time")
        assert await state() == campaign_pb2.CAMPAIGN_STATE_RUNNING
        deployment.clock.advance(seconds=WAIT)
        rest = await deployment.rest_of(test.run_id)
        assert await state() == campaign_pb2.CAMPAIGN_STATE_RUNNING
        deployment.delivery.done.add(rest.run_id)
        assert await state() == campaign_pb2.CAMPAIGN_STATE_COMPLETED

    async def test_a_test_send_names_its_variant_or_takes_the_split(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create()

        only_b = await deployment.stub.SendTestCampaign(
            pb.SendTestCampaignRequest(campaign_id=campaign.campaign_id, variant_id="B"),
            metadata=deployment.auth,
            timeout=30,
        )
        split = await deployment.stub.SendTestCampaign(
            pb.SendTestCampaignRequest(campaign_id=campaign.campaign_id),
            metadata=deployment.auth,
            timeout=30,
        )

        handed_b = await deployment.handed(only_b.run.run_id)
        handed_split = await deployment.handed(split.run.run_id)
        assert (weights(handed_b), weights(handed_split)) == ([("B", 100)], [("A", 50), ("B", 50)])
        assert json.loads(handed_b.variants[0].content.payload)["title"] == "Offer B"
        assert not handed_b.audience.HasField("sample") and not handed_split.audience.HasField(
            "sample"
        )
        assert only_b.run.phase == split.run.phase == campaign_pb2.RUN_PHASE_UNSPECIFIED


class TestTheRest:
    async def test_a_significant_winner_goes_to_the_rest_of_the_audience(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create(conversion_goal=GOAL)
        test = await deployment.send(campaign.campaign_id)
        # B: 20 % of 100 clicked, A: 5 %: p = 0.125, sqrt(0.125 * 0.875 * 0.02) = 0.046771,
        # z = 0.15 / 0.046771 = 3.2071.
        deployment.reporting.reports[test.run_id] = counts(A=(100, 5, 0), B=(100, 20, 0))

        await deployment.scheduler_round_at(START + timedelta(seconds=WAIT - 1))
        assert deployment.reporting.calls == []
        assert len(await deployment.runs(campaign.campaign_id)) == 1

        deployment.clock.advance(seconds=1)
        rest = await deployment.rest_of(test.run_id)
        handed = await deployment.handed(rest.run_id)
        shown_test = await deployment.run(test.run_id)
        listed = await deployment.runs(campaign.campaign_id)

        assert (rest.phase, rest.related_run_id, shown_test.related_run_id) == (
            campaign_pb2.RUN_PHASE_VARIANT_REST,
            test.run_id,
            rest.run_id,
        )
        decision = rest.variant_decision
        assert (decision.winner_variant_id, decision.significant, decision.metric) == (
            "B",
            True,
            campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
        )
        assert decision.z_score == pytest.approx(3.2071, abs=1e-4)
        assert [(r.variant_id, r.sent, r.successes, r.rate) for r in decision.results] == [
            ("A", 100, 5, 0.05),
            ("B", 100, 20, 0.2),
        ]
        assert decision.decide_time.ToDatetime(UTC) == START + timedelta(seconds=WAIT)
        assert weights(handed) == [("B", 100)]
        payload = json.loads(handed.variants[0].content.payload)
        assert payload.pop("site_id").startswith("site_")  # the deployment's one site
        assert payload == {
            "title": "Offer B",
            "url": "https://shop.example/b",
            "campaign_id": campaign.campaign_id,
            "run_id": rest.run_id,
            "version": 1,
        }
        assert sample(handed) == (2000, 10000)
        assert handed.conversion_goal == GOAL
        assert [r.run_id for r in listed] == [test.run_id, rest.run_id]
        assert listed[1].variant_decision == decision
        assert not rest.HasField("rest_time")

    async def test_without_a_significant_difference_the_rest_gets_the_split(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create(variants=[variant("A", 30), variant("B", 70)])
        test = await deployment.send(campaign.campaign_id)
        # 14 % against 10 % of 100 each: z = 0.8704.
        deployment.reporting.reports[test.run_id] = counts(A=(100, 10, 0), B=(100, 14, 0))

        deployment.clock.advance(seconds=WAIT)
        rest = await deployment.rest_of(test.run_id)

        decision = rest.variant_decision
        assert (decision.winner_variant_id, decision.significant) == ("", False)
        assert decision.z_score == pytest.approx(0.8704, abs=1e-4)
        assert weights(await deployment.handed(rest.run_id)) == [("A", 30), ("B", 70)]

    async def test_by_conversion_rate_the_conversions_decide(self, deployment: Deployment) -> None:
        by_conversions = campaign_pb2.VariantTest(
            test_percent=10, wait_seconds=WAIT, metric=campaign_pb2.WINNER_METRIC_CONVERSION_RATE
        )
        campaign = await deployment.create(variant_test=by_conversions, conversion_goal=GOAL)
        test = await deployment.send(campaign.campaign_id)
        # A is clicked more, B converts more.
        deployment.reporting.reports[test.run_id] = counts(A=(1000, 200, 50), B=(1000, 50, 80))

        deployment.clock.advance(seconds=WAIT)
        rest = await deployment.rest_of(test.run_id)

        decision = rest.variant_decision
        assert (decision.winner_variant_id, decision.metric) == (
            "B",
            campaign_pb2.WINNER_METRIC_CONVERSION_RATE,
        )
        assert decision.z_score == pytest.approx(2.7211, abs=1e-4)
        assert sample(await deployment.handed(rest.run_id)) == (1000, 10000)

    async def test_a_report_reporting_does_not_have_is_no_winner(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create()
        test = await deployment.send(campaign.campaign_id)

        deployment.clock.advance(seconds=WAIT)
        rest = await deployment.rest_of(test.run_id)

        assert [(r.variant_id, r.sent) for r in rest.variant_decision.results] == [
            ("A", 0),
            ("B", 0),
        ]
        assert rest.variant_decision.winner_variant_id == ""

    async def test_waits_while_reporting_cannot_answer_and_is_not_lost(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create()
        test = await deployment.send(campaign.campaign_id)
        deployment.reporting.reports[test.run_id] = counts(A=(100, 5, 0), B=(100, 20, 0))
        deployment.reporting.down = True

        await deployment.scheduler_round_at(START + timedelta(seconds=WAIT))
        asked = len(deployment.reporting.calls)
        # Backing off: the next rounds of this second do not ask again.
        await deployment.scheduler_round_at(START + timedelta(seconds=WAIT, microseconds=1))

        assert asked >= 1 and len(deployment.reporting.calls) == asked
        assert len(await deployment.runs(campaign.campaign_id)) == 1
        assert (await deployment.run(test.run_id)).rest_time.ToDatetime(UTC) == START + timedelta(
            seconds=WAIT
        )

        deployment.reporting.down = False
        deployment.clock.advance(seconds=300)
        rest = await deployment.rest_of(test.run_id)

        assert rest.variant_decision.winner_variant_id == "B"
        assert [r.run_id for r in await deployment.runs(campaign.campaign_id)] == [
            test.run_id,
            rest.run_id,
        ]

    async def test_a_cancelled_test_run_has_no_rest(self, deployment: Deployment) -> None:
        campaign = await deployment.create()
        test = await deployment.send(campaign.campaign_id)
        await deployment.handed(test.run_id)

        cancelled = await deployment.stub.CancelRun(
            pb.CancelRunRequest(run_id=test.run_id), metadata=deployment.auth, timeout=30
        )
        await deployment.scheduler_round_at(START + timedelta(seconds=WAIT + 1))

        assert cancelled.run.state == campaign_pb2.RUN_STATE_CANCELLED
        shown = await deployment.run(test.run_id)
        assert (shown.phase, shown.HasField("rest_time"), shown.related_run_id) == (
            campaign_pb2.RUN_PHASE_VARIANT_TEST,
            False,
            "",
        )
        assert [r.run_id for r in await deployment.runs(campaign.campaign_id)] == [test.run_id]
        assert deployment.reporting.calls == []

    async def test_cancelling_the_campaign_cancels_a_pending_rest(
        self, deployment: Deployment
    ) -> None:
        campaign = await deployment.create()
        test = await deployment.send(campaign.campaign_id)
        await deployment.handed(test.run_id)

        await deployment.stub.CancelCampaign(
            pb.CancelCampaignRequest(campaign_id=campaign.campaign_id),
            metadata=deployment.auth,
            timeout=30,
        )
        await deployment.scheduler_round_at(START + timedelta(seconds=WAIT + 1))

        assert [r.run_id for r in await deployment.runs(campaign.campaign_id)] == [test.run_id]
        assert not (await deployment.run(test.run_id)).HasField("rest_time")
        assert deployment.reporting.calls == []


class TestExactlyOnce:
    async def test_two_replicas_after_a_restart_start_the_rest_once(
        self, deployment_settings: Settings
    ) -> None:
        clock = FrozenClock(START)
        async with fake_peers() as (delivery, reporting, delivery_address, reporting_address):
            deployment_settings.delivery_address = delivery_address
            deployment_settings.reporting_address = reporting_address
            site = await create_site(deployment_settings, "A/B replicas", "mailto:ops@shop.test")
            auth = bearer(site.api_key)
            # The process that starts the test stops before its rest is due.
            async with campaign_server(deployment_settings, clock) as first:
                async with client_channel(first.address) as channel:
                    stub = Stub(channel)
                    created = await stub.CreateCampaign(
                        pb.CreateCampaignRequest(
                            variants=[variant("A", 50), variant("B", 50)],
                            variant_test=campaign_pb2.VariantTest(
                                test_percent=20, wait_seconds=WAIT
                            ),
                        ),
                        metadata=auth,
                        timeout=30,
                    )
                    campaign_id = created.campaign.campaign_id
                    test = (
                        await stub.SendCampaignNow(
                            pb.SendCampaignNowRequest(campaign_id=campaign_id),
                            metadata=auth,
                            timeout=30,
                        )
                    ).run
            reporting.reports[test.run_id] = counts(A=(100, 5, 0), B=(100, 20, 0))
            # Two new replicas on the same database, the same clock.
            async with (
                campaign_server(deployment_settings, clock) as one,
                campaign_server(deployment_settings, clock) as _second_replica,
                client_channel(one.address) as channel,
            ):
                stub = Stub(channel)
                clock.advance(seconds=WAIT)

                async def runs() -> list[campaign_pb2.Run]:
                    listed = await stub.ListRuns(
                        pb.ListRunsRequest(campaign_id=campaign_id), metadata=auth, timeout=30
                    )
                    return list(listed.runs)

                found = await eventually(
                    runs, lambda r: len(r) >= 2, timeout=15, what="the rest run"
                )
                # More rounds of both replicas change nothing.
                clock.advance(seconds=1)
                barrier = await stub.CreateCampaign(
                    pb.CreateCampaignRequest(
                        notification=common_pb2.Notification(
                            title="B", target_url="https://b.example/"
                        ),
                        schedule=campaign_pb2.Schedule(
                            at=stamp(clock.now() + timedelta(seconds=1))
                        ),
                    ),
                    metadata=auth,
                    timeout=30,
                )
                clock.advance(seconds=1)
                barrier_runs = await eventually(
                    lambda: stub.ListRuns(
                        pb.ListRunsRequest(campaign_id=barrier.campaign.campaign_id),
                        metadata=auth,
                        timeout=30,
                    ),
                    lambda listed: len(listed.runs) == 1,
                    timeout=15,
                    what="a scheduler round",
                )
                # A run is listed before its start reaches delivery (the start is relayed
                # after the run is stored): wait for the barrier's to arrive too.
                barrier_run_id = barrier_runs.runs[0].run_id

                async def handed() -> set[str]:
                    return set(delivery.requests)

                await eventually(
                    handed,
                    lambda ids: barrier_run_id in ids,
                    timeout=15,
                    what="the barrier's run handed to delivery",
                )
                after = await runs()

        assert len(found) == len(after) == 2
        rest_id = next(r.run_id for r in after if r.run_id != test.run_id)
        assert {r.run_id for r in after if r.phase == campaign_pb2.RUN_PHASE_VARIANT_REST} == {
            rest_id
        }
        # Delivery was handed exactly the two runs of this campaign (and the barrier's).
        assert {test.run_id, rest_id} <= set(delivery.requests)
        assert len(delivery.requests) == 3
