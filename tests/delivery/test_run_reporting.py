"""A run as reporting hears of it, and each recipient's attempt history.

- Reporting hears of a run at its start, with its conversion goal and description,
  before any of its outcomes (and again with its audience once that is known), even
  when reporting is down at the start: the run still goes, and the outbox relays the
  start first once reporting is back.
- Every request made to a recipient's push service is kept with the recipient (time,
  HTTP status, what it meant, the push service's host; the last 20), with the time it
  was queued, and GetRecipientOutcome returns them.

Harness tests drive the workers step by step on a frozen clock; stack tests run real
campaign, segment, reporting and delivery servers and the push-service simulator.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
    reporting_service_pb2,
    webhook_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from clarion.segment.v1 import profile_pb2, segment_service_pb2
from clarion.simulator import PushServiceSimulator
from clarion.simulator.model import Behaviour
from services.delivery.domain.descriptions import RunDescription
from services.delivery.domain.goals import ConversionGoal
from services.delivery.domain.rules import PushAnswer
from services.delivery.domain.runs import DeliveryRuns, RunRequest
from services.kit.db import create_sync_engine_for
from services.kit.errors import InvalidArgument
from services.reporting.settings import ReportingSettings
from tests.delivery.conftest import (
    FAST_DELIVERY,
    FAST_ENCRYPTOR,
    FakeSink,
    Harness,
    Stack,
    eventually,
    harness_settings,
    members,
    running_stack,
    shared_payload,
)
from tests.reporting.webhook_receiver import WebhookReceiver

GOAL = common_pb2.ConversionGoal(event_name="Purchase", window_seconds=3600)
DESCRIPTION = common_pb2.RunDescription(
    notification_title="Hello {{ profile.name }}",
    utm_source="clarion",
    utm_medium="push",
    utm_campaign="spring-sale",
    utm_content="hero",
    utm_term="shoes",
)


def described() -> dict[str, object]:
    return {"conversion_goal": GOAL, "description": DESCRIPTION}


@pytest.fixture(scope="module")
async def webhook_stack(
    settings_factory,  # type: ignore[no-untyped-def]
    simulator: PushServiceSimulator,
) -> AsyncIterator[Stack]:
    """The services as conftest's `stack` runs them, with reporting allowed to send
    webhooks to 127.0.0.1 (CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)."""
    settings = settings_factory(encryptor=FAST_ENCRYPTOR, **FAST_DELIVERY)
    reporting_settings = ReportingSettings(
        **{**settings.model_dump(), "webhook_allow_private_addresses": True}
    )
    async with running_stack(settings, simulator, reporting_settings=reporting_settings) as running:
        yield running


class TestReportingHearsOfARunAtItsStart:
    async def test_the_start_carries_the_goal_and_description_before_the_audience_is_known(
        self, harness: Harness
    ) -> None:
        site_id, run_id = await harness.start_run(members(25), **described())

        # Not prepared yet: reporting already knows the run, its goal and description.
        await harness.workers.drain_outbox()

        assert harness.sink.starts == [(site_id, run_id)]
        assert harness.sink.audiences == []
        assert harness.sink.goals[run_id] == ConversionGoal("Purchase", 3600)
        assert harness.sink.descriptions[run_id] == RunDescription(
            "Hello {{ profile.name }}", "clarion", "push", "spring-sale", "hero", "shoes"
        )

        await harness.deliver()

        assert harness.sink.audiences == [(site_id, run_id, 25)]
        assert harness.sink.heard[0] == ("start", run_id)
        assert len(harness.sink.per_subscriber(run_id)) == 25
        # The audience record repeats the goal and description.
        assert harness.sink.descriptions[run_id] is not None
        assert harness.sink.goals[run_id] == ConversionGoal("Purchase", 3600)

    async def test_a_run_without_goal_or_description_is_recorded_at_its_start_too(
        self, harness: Harness
    ) -> None:
        site_id, run_id = await harness.start_run(members(3))

        await harness.deliver()

        assert harness.sink.heard[0] == ("start", run_id)
        assert (harness.sink.goals[run_id], harness.sink.descriptions[run_id]) == (None, None)
        assert harness.sink.audiences == [(site_id, run_id, 3)]

    async def test_the_run_goes_while_reporting_is_down_and_its_start_is_heard_first_later(
        self, harness: Harness
    ) -> None:
        harness.sink.down = True
        audience = members(30)
        site_id, run_id = await harness.start_run(audience, **described())

        await harness.deliver()

        assert sum(harness.transport.posts.values()) == 30  # sent all the same
        assert harness.sink.heard == []

        harness.sink.down = False
        harness.clock.advance(seconds=120)
        await harness.workers.drain_outbox()

        kinds = [kind for kind, run in harness.sink.heard if run == run_id]
        assert kinds[0] == "start"
        assert kinds.count("start") == 1 and kinds.count("audience") == 1
        assert harness.sink.per_subscriber(run_id) == {m.subscriber_id: 1 for m in audience}
        assert harness.sink.goals[run_id] == ConversionGoal("Purchase", 3600)

    async def test_nothing_of_a_run_is_relayed_while_its_start_is_refused(
        self, harness: Harness
    ) -> None:
        sink = StartRefusingSink()
        process = harness.sibling(sink=sink)
        await process.workers.open()
        try:
            audience = members(12)
            _, run_id = await process.start_run(audience, **described())
            await process.deliver()

            # Outcomes and the audience are accepted by reporting, but not before the start.
            assert sink.heard == []

            sink.refuse_starts = False
            process.clock.advance(seconds=120)
            await process.workers.drain_outbox()

            assert sink.heard[0] == ("start", run_id)
            assert sink.per_subscriber(run_id) == {m.subscriber_id: 1 for m in audience}
        finally:
            await process.workers.close()

    async def test_a_description_over_its_limits_is_refused(self, harness: Harness) -> None:
        runs = DeliveryRuns(harness.store, harness.clock)

        def request(description: common_pb2.RunDescription) -> RunRequest:
            return RunRequest(
                run_id="run_too_long",
                campaign_id="cmp_1",
                payload=shared_payload(),
                ttl_seconds=3600,
                urgency="high",
                subscriber_ids=["sub_1"],
                description=description,
            )

        for description, field in (
            (common_pb2.RunDescription(notification_title="x" * 1025), "notification_title"),
            (common_pb2.RunDescription(utm_source="s" * 129), "utm_source"),
            (
                common_pb2.RunDescription(
                    variant_titles=[common_pb2.VariantTitle(variant_id="A B")]
                ),
                "variant_titles[0].variant_id",
            ),
        ):
            with pytest.raises(InvalidArgument) as raised:
                await runs.start("site_1", request(description))
            assert raised.value.reason == "INVALID_RUN_DESCRIPTION"
            assert raised.value.metadata["field"] == f"description.{field}"
        assert await harness.store.get_run("site_1", "run_too_long") is None


class StartRefusingSink(FakeSink):
    """Reporting refusing a run's start (audience None) while taking everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_starts = True

    async def record_audience(self, site_id, run_id, campaign_id, audience, **more):  # type: ignore[no-untyped-def, override]
        if audience is None and self.refuse_starts:
            raise ConnectionError("reporting refused the start")
        await super().record_audience(site_id, run_id, campaign_id, audience, **more)


class TestAttemptHistory:
    async def test_a_503_then_a_201_are_two_attempts(self, harness: Harness) -> None:
        [member] = members(1)
        harness.transport.script(member.endpoint, PushAnswer(status=503))
        site_id, run_id = await harness.start_run([member])
        queued_at = harness.clock.now()

        await harness.deliver()
        harness.clock.advance(seconds=30)
        await harness.deliver()

        view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
        assert view is not None and view.attempts == 2
        assert [(a.http_status, a.reason, a.push_service) for a in view.attempt_history] == [
            (503, "push_service_5xx", "push.test"),
            (201, "", "push.test"),
        ]
        first, second = view.attempt_history
        assert first.attempt_time == queued_at
        assert second.attempt_time == queued_at + timedelta(seconds=30)
        assert view.queue_time == queued_at

    async def test_a_timeout_is_an_attempt_without_a_status(self, harness: Harness) -> None:
        [member] = members(1)
        harness.transport.script(member.endpoint, PushAnswer(error=None))
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()
        harness.clock.advance(seconds=30)
        await harness.deliver()

        view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
        assert view is not None
        assert [(a.http_status, a.reason) for a in view.attempt_history] == [
            (0, "connection_error"),
            (201, ""),
        ]

    async def test_only_the_last_twenty_attempts_are_kept(
        self, harness: Harness, settings_factory
    ) -> None:  # type: ignore[no-untyped-def]
        process = Harness(
            harness.store, harness_settings(settings_factory, push_max_attempts=24), harness.clock
        )
        await process.workers.open()
        try:
            [member] = members(1)
            process.transport.script(
                member.endpoint, *[PushAnswer(status=500 + n) for n in range(23)]
            )
            site_id, run_id = await process.start_run([member])
            for _ in range(24):
                await process.deliver()
                process.clock.advance(seconds=120)

            view = await process.store.recipient(site_id, run_id, member.subscriber_id)
            assert view is not None and view.attempts == 24
            statuses = [a.http_status for a in view.attempt_history]
            assert statuses == [500 + n for n in range(4, 23)] + [201]
        finally:
            await process.workers.close()


class TestThroughTheServices:
    async def test_get_recipient_outcome_shows_a_503_then_a_201(self, stack: Stack) -> None:
        site = await stack.new_site()
        subscriber_id, sub = await stack.subscriber(site)
        stack.simulator.set_behaviour(sub.endpoint, Behaviour(status=503, times=1))
        run = await stack.start_run(
            site, audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id])
        )

        await stack.wait_finished(site, run.run_id)
        outcome = await stack.outcome(site, run.run_id, subscriber_id)

        assert outcome.status == common_pb2.DELIVERY_STATUS_SENT
        assert [(a.http_status, a.reason, a.push_service) for a in outcome.attempt_history] == [
            (503, common_pb2.DELIVERY_REASON_PUSH_SERVICE_5XX, "127.0.0.1"),
            (201, common_pb2.DELIVERY_REASON_UNSPECIFIED, "127.0.0.1"),
        ]
        first, second = (a.attempt_time.ToDatetime() for a in outcome.attempt_history)
        assert outcome.queue_time.ToDatetime() <= first < second

    async def test_a_webhook_for_the_first_recipient_carries_the_description(
        self, webhook_stack: Stack
    ) -> None:
        stack = webhook_stack
        site = await stack.new_site()
        receiver = WebhookReceiver()
        await receiver.start()
        try:
            path = receiver.new_path()
            webhooks = webhook_service_pb2_grpc.WebhookServiceStub(stack.channels["reporting"])
            await webhooks.CreateWebhookEndpoint(
                webhook_service_pb2.CreateWebhookEndpointRequest(
                    url=receiver.url(path), event_types=[webhook_pb2.WEBHOOK_EVENT_TYPE_VIEW]
                ),
                metadata=site.metadata,
            )
            subscriber_id, _ = await stack.subscriber(site)
            run = await stack.start_run(
                site,
                audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id]),
                **described(),
            )
            await stack.wait_finished(site, run.run_id)

            # As the gateway records the browser's view of the push.
            internal = reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
                stack.channels["reporting"]
            )
            await internal.RecordEngagementEvents(
                reporting_internal_service_pb2.RecordEngagementEventsRequest(
                    events=[
                        reporting_pb2.EngagementEvent(
                            run_id=run.run_id,
                            campaign_id=run.campaign_id,
                            subscriber_id=subscriber_id,
                            kind=common_pb2.ENGAGEMENT_KIND_VIEWED,
                        )
                    ]
                ),
                metadata=stack.internal(site),
            )

            [received] = await receiver.wait_for(path, 1, timeout=20.0)
            body = json.loads(received.body)
            assert body["reference_id"] == run.run_id
            assert body["notification_title"] == "Hello {{ profile.name }}"
            assert (body["utm_source"], body["utm_campaign"], body["utm_term"]) == (
                "clarion",
                "spring-sale",
                "shoes",
            )
        finally:
            await receiver.stop()

    async def test_a_conversion_of_the_first_recipient_is_credited_by_the_goal(
        self, webhook_stack: Stack
    ) -> None:
        stack = webhook_stack
        site = await stack.new_site()
        profile_id = f"prof_{uuid.uuid4().hex[:8]}"
        subscriber_id, _ = await stack.subscriber(site, profile_id)
        run = await stack.start_run(
            site,
            audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id]),
            **described(),
        )
        await stack.wait_finished(site, run.run_id)

        def following() -> bool:
            """Reporting's follower reads the site's "Purchase" events (from the feed's
            end when it first sees a goal of that name, so only after that may it buy)."""
            engine = create_sync_engine_for(stack.settings.database_url_for("reporting"))
            try:
                with engine.connect() as connection:
                    return (
                        connection.execute(
                            text(
                                "SELECT 1 FROM reporting_feed_cursors WHERE site_id = :site_id "
                                "AND event_name = 'Purchase'"
                            ),
                            {"site_id": site.site_id},
                        ).first()
                        is not None
                    )
            finally:
                engine.dispose()

        await eventually(following, what="reporting following the goal's events")
        # The person buys after the push: segment keeps the event, reporting follows it.
        occur_time = Timestamp()
        occur_time.GetCurrentTime()
        tracked = await stack.segment.TrackEvents(
            segment_service_pb2.TrackEventsRequest(
                events=[
                    profile_pb2.Event(
                        event_id=f"evt_{uuid.uuid4().hex}",
                        name="Purchase",
                        profile_id=profile_id,
                        occur_time=occur_time,
                    )
                ]
            ),
            metadata=site.metadata,
        )
        assert [r.ok for r in tracked.results] == [True]

        async def converted() -> bool:
            response = await stack.reporting.GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id=run.campaign_id),
                metadata=site.metadata,
            )
            return response.report.conversions == 1

        # Segment's events settle for 5 s before reporting reads them.
        await eventually(converted, timeout=30.0, what="the conversion credited")
