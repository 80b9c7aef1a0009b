"""CancelRun and GetRunRecipient through real campaign, segment, delivery and reporting
servers and the push-service simulator, each test on a deployment (database) of its own.

A cancel is exact: the run is CANCELLED with its finish time, every recipient ends with
an outcome (sent before the cancel, or suppressed: cancelled), the simulator hears of no
cancelled recipient but those in flight when the cancel landed, and reporting counts
what delivery recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from sqlalchemy import create_engine, text

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.simulator import Behaviour, PushServiceSimulator
from services.campaign.admin import create_site
from services.campaign.domain.outcomes import EXPLANATIONS, explain
from services.campaign.domain.ports import RecipientStatus
from services.kit.config import Settings
from services.kit.db import sync_url
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import (
    Metadata,
    Stub,
    eventually,
    get_run,
    internal,
    new_campaign,
    reason,
    send_now,
)
from tests.campaign.test_send_now import peer_settings, subscribe
from tests.support.sites import bearer

CANCELLED = campaign_pb2.RUN_STATE_CANCELLED


async def start_deployment(start_service, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    for name in ("segment", "reporting", "delivery", "campaign"):
        server: ManagedServer = await start_service(name, settings)
        assert server.address


def delivery_recipients(settings: Settings, run_id: str) -> list[tuple[str, str, str, str]]:
    """(subscriber_id, endpoint, state, reason) of every recipient delivery holds for the run."""
    engine = create_engine(sync_url(settings.database_url_for("delivery")))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT subscriber_id, endpoint, state, reason FROM delivery_recipients "
                    "WHERE run_id = :run_id"
                ),
                {"run_id": run_id},
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


async def cancel(stub: Stub, auth: Metadata, run_id: str) -> campaign_pb2.Run:
    return (await stub.CancelRun(pb.CancelRunRequest(run_id=run_id), metadata=auth, timeout=30)).run


async def why(stub: Stub, auth: Metadata, run_id: str, subscriber_id: str) -> campaign_pb2.RunRecipient:
    response = await stub.GetRunRecipient(
        pb.GetRunRecipientRequest(run_id=run_id, subscriber_id=subscriber_id),
        metadata=auth,
        timeout=30,
    )
    return response.recipient


async def delivery_run(settings: Settings, site_id: str, run_id: str) -> delivery_pb2.DeliveryRun:
    async with client_channel(settings.delivery_address) as channel:
        response = await delivery_service_pb2_grpc.DeliveryServiceStub(channel).GetDeliveryRun(
            delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id),
            metadata=internal(settings, site_id),
            timeout=30,
        )
        return response.delivery_run


async def report(settings: Settings, auth: Metadata, campaign_id: str):  # type: ignore[no-untyped-def]
    async with client_channel(settings.reporting_address) as channel:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        try:
            response = await stub.GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                metadata=auth,
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.report


async def settled(simulator: PushServiceSimulator, endpoints: set[str]) -> Counter[str]:
    """Requests the simulator saw for these endpoints, once no new one came for a second
    (requests in flight at a cancel still arrive and are answered)."""
    last, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while True:
        seen = Counter(
            {e: n for e, n in simulator.stats.requests_per_endpoint.items() if e in endpoints}
        )
        total = sum(seen.values())
        if total != last:
            last, quiet_since = total, time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            return seen
        assert time.monotonic() < deadline, "the simulator kept receiving requests"
        await asyncio.sleep(0.05)


@pytest.mark.slow
class TestCancelWhileSending:
    async def test_a_larger_run_ends_exactly_sent_or_cancelled_and_reporting_agrees(
        self,
        settings_factory: Callable[..., Settings],
        start_service,  # type: ignore[no-untyped-def]
        simulator: PushServiceSimulator,
    ) -> None:
        audience = 2000
        settings = peer_settings(
            settings_factory, delivery_concurrency=16, delivery_workers=2, delivery_chunk_size=250
        )
        await start_deployment(start_service, settings)
        site = await create_site(settings, "Cancel while sending", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        subscriptions = [simulator.mint_subscription() for _ in range(audience)]
        for subscription in subscriptions:
            # A slow push service: the run takes many seconds, the cancel lands mid-send.
            simulator.set_behaviour(subscription.endpoint, Behaviour(delay=0.1))
        await subscribe(settings, site.site_id, subscriptions)

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Stop it")
            started = await send_now(stub, auth, campaign.campaign_id)
            sending = await eventually(
                lambda: get_run(stub, auth, started.run_id),
                lambda run: run.progress.sent >= 100,
                timeout=60,
                what="100 sent",
            )
            assert sending.state in (campaign_pb2.RUN_STATE_PREPARING, campaign_pb2.RUN_STATE_SENDING)

            cancelled = await cancel(stub, auth, started.run_id)
            endpoints = {s.endpoint for s in subscriptions}
            requests = await settled(simulator, endpoints)
            later = await get_run(stub, auth, started.run_id)
            listed = await stub.ListRuns(
                pb.ListRunsRequest(campaign_id=campaign.campaign_id), metadata=auth
            )

        progress = cancelled.progress
        assert cancelled.state == CANCELLED and cancelled.HasField("finish_time")
        assert cancelled.audience == audience
        assert 100 <= progress.sent < audience
        assert (progress.failed, progress.expired) == (0, 0)
        assert progress.sent + progress.suppressed == audience
        # Nothing changes after the cancel: requests in flight then are not recorded.
        assert later == cancelled and list(listed.runs) == [cancelled]
        remote = await delivery_run(settings, site.site_id, started.run_id)
        assert remote.state == delivery_pb2.DELIVERY_RUN_STATE_CANCELLED
        assert remote.progress.pending == 0

        rows = delivery_recipients(settings, started.run_id)
        outcomes = Counter((state, why_) for _, _, state, why_ in rows)
        assert outcomes == Counter(
            {("sent", ""): progress.sent, ("suppressed", "cancelled"): progress.suppressed}
        )
        sent = {endpoint for _, endpoint, state, _ in rows if state == "sent"}
        cancelled_endpoints = {endpoint for _, endpoint, state, _ in rows if state == "suppressed"}
        # Each sent recipient was asked once; of the cancelled ones, at most those in
        # flight when the cancel landed (the delivery process's concurrency).
        assert all(requests[e] == 1 for e in sent)
        reached = [e for e in cancelled_endpoints if requests[e]]
        assert len(reached) <= settings.delivery_concurrency, len(reached)
        assert all(requests[e] <= 1 for e in cancelled_endpoints)

        totals = await eventually(
            lambda: report(settings, auth, campaign.campaign_id),
            lambda r: r is not None and r.sent + r.suppressed == audience,
            timeout=30,
            what="reporting counted every outcome",
        )
        assert (totals.audience, totals.sent, totals.suppressed, totals.failed) == (
            audience,
            progress.sent,
            progress.suppressed,
            0,
        )


@pytest.mark.slow
class TestCancelWhilePreparing:
    async def test_nothing_more_is_queued_and_a_second_cancel_answers_the_same(
        self,
        settings_factory: Callable[..., Settings],
        start_service,  # type: ignore[no-untyped-def]
        simulator: PushServiceSimulator,
    ) -> None:
        audience = 600
        # One subscriber per audience page: preparing takes hundreds of round trips.
        settings = peer_settings(settings_factory, delivery_prepare_page_size=1)
        await start_deployment(start_service, settings)
        site = await create_site(settings, "Cancel while preparing", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        subscriptions = [simulator.mint_subscription() for _ in range(audience)]
        await subscribe(settings, site.site_id, subscriptions)

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Never mind")
            started = await send_now(stub, auth, campaign.campaign_id)
            cancelled = await cancel(stub, auth, started.run_id)
            # Pages the preparer had in hand, or would pull next, are never queued.
            await asyncio.sleep(1.0)
            again = await cancel(stub, auth, started.run_id)
            shown = await get_run(stub, auth, started.run_id)

        assert started.state == campaign_pb2.RUN_STATE_PREPARING
        assert cancelled.state == CANCELLED and cancelled.HasField("finish_time")
        assert cancelled.audience < audience, "the run was fully prepared before the cancel"
        assert again == cancelled == shown
        remote = await delivery_run(settings, site.site_id, started.run_id)
        assert remote.state == delivery_pb2.DELIVERY_RUN_STATE_CANCELLED
        assert not remote.HasField("prepare_time")
        assert (remote.progress.resolved, remote.progress.pending) == (cancelled.audience, 0)
        rows = delivery_recipients(settings, started.run_id)
        assert len(rows) == cancelled.audience
        assert all(state != "pending" for _, _, state, _ in rows)
        p = cancelled.progress
        assert p.sent + p.failed + p.suppressed + p.expired == cancelled.audience
        # Reporting hears the audience resolved before the cancel.
        totals = await eventually(
            lambda: report(settings, auth, campaign.campaign_id),
            lambda r: r is not None and r.sent + r.suppressed == cancelled.audience,
            timeout=30,
            what="reporting counted the cancelled run",
        )
        assert (totals.runs, totals.audience) == (1, cancelled.audience)


@pytest.mark.slow
class TestCancelAndWhy:
    async def test_why_each_recipient_ended_as_it_did(
        self,
        settings_factory: Callable[..., Settings],
        start_service,  # type: ignore[no-untyped-def]
        simulator: PushServiceSimulator,
    ) -> None:
        settings = peer_settings(settings_factory, push_timeout_seconds=5.0)
        await start_deployment(start_service, settings)
        site = await create_site(settings, "Why", "mailto:ops@example.com")
        other = await create_site(settings, "Someone else", "mailto:ops@example.com")
        auth, other_auth = bearer(site.api_key), bearer(other.api_key)
        fine, gone, stuck = (simulator.mint_subscription() for _ in range(3))
        simulator.set_behaviour(gone.endpoint, Behaviour(status=410))
        simulator.set_behaviour(stuck.endpoint, Behaviour(hang=True))
        await subscribe(settings, site.site_id, [fine, gone, stuck])

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Why not")
            run = await send_now(stub, auth, campaign.campaign_id)
            await eventually(
                lambda: get_run(stub, auth, run.run_id),
                lambda r: r.progress.sent == 1 and r.progress.failed == 1,
                timeout=30,
                what="one sent, one gone",
            )
            ids = {endpoint: sid for sid, endpoint, _, _ in delivery_recipients(settings, run.run_id)}
            waiting = await why(stub, auth, run.run_id, ids[stuck.endpoint])
            cancelled = await cancel(stub, auth, run.run_id)
            sent = await why(stub, auth, run.run_id, ids[fine.endpoint])
            failed = await why(stub, auth, run.run_id, ids[gone.endpoint])
            suppressed = await why(stub, auth, run.run_id, ids[stuck.endpoint])
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await why(stub, auth, run.run_id, "sub_not_in_the_audience")
            with pytest.raises(grpc.aio.AioRpcError) as no_run:
                await why(stub, auth, "run_nope", ids[fine.endpoint])
            with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
                await why(stub, other_auth, run.run_id, ids[fine.endpoint])
            with pytest.raises(grpc.aio.AioRpcError) as cancel_theirs:
                await cancel(stub, other_auth, run.run_id)
            unchanged = await get_run(stub, auth, run.run_id)

        assert (waiting.status, waiting.attempts) == (campaign_pb2.RECIPIENT_STATUS_PENDING, 1)
        assert waiting.explanation == "queued and not sent yet"
        assert cancelled.state == CANCELLED
        assert (cancelled.progress.sent, cancelled.progress.failed) == (1, 1)
        assert cancelled.progress.suppressed == 1

        assert (sent.status, sent.reason, sent.attempts) == (
            campaign_pb2.RECIPIENT_STATUS_SENT,
            common_pb2.DELIVERY_REASON_UNSPECIFIED,
            1,
        )
        assert sent.subscriber_id == ids[fine.endpoint] and sent.run_id == run.run_id
        assert sent.HasField("finish_time") and "accepted" in sent.explanation
        assert (failed.status, failed.reason) == (
            campaign_pb2.RECIPIENT_STATUS_FAILED,
            common_pb2.DELIVERY_REASON_PUSH_SERVICE_410,
        )
        assert failed.explanation == (
            "the push service said the subscription is gone; the subscriber was unsubscribed"
        )
        assert (suppressed.status, suppressed.reason) == (
            campaign_pb2.RECIPIENT_STATUS_SUPPRESSED,
            common_pb2.DELIVERY_REASON_CANCELLED,
        )
        assert suppressed.explanation == (
            "the run was cancelled before this subscriber's message was sent"
        )
        assert suppressed.HasField("finish_time")

        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(unknown.value) == "RECIPIENT_NOT_FOUND"
        assert "not in the audience" in (unknown.value.details() or "")
        assert (no_run.value.code(), reason(no_run.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "RUN_NOT_FOUND",
        )
        assert (not_theirs.value.code(), reason(not_theirs.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "RUN_NOT_FOUND",
        )
        assert (cancel_theirs.value.code(), reason(cancel_theirs.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "RUN_NOT_FOUND",
        )
        assert unchanged == cancelled

    async def test_cancelling_a_finished_run_returns_it_unchanged(
        self,
        settings_factory: Callable[..., Settings],
        start_service,  # type: ignore[no-untyped-def]
        simulator: PushServiceSimulator,
    ) -> None:
        settings = peer_settings(settings_factory)
        await start_deployment(start_service, settings)
        site = await create_site(settings, "Already done", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        await subscribe(settings, site.site_id, [simulator.mint_subscription() for _ in range(3)])

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth)
            run = await send_now(stub, auth, campaign.campaign_id)
            done = await eventually(
                lambda: get_run(stub, auth, run.run_id),
                lambda r: r.state == campaign_pb2.RUN_STATE_DONE,
                timeout=30,
                what="run done",
            )
            after = await cancel(stub, auth, run.run_id)

        assert after == done
        assert (after.progress.sent, after.progress.suppressed) == (3, 0)
        remote = await delivery_run(settings, site.site_id, run.run_id)
        assert remote.state == delivery_pb2.DELIVERY_RUN_STATE_DONE


class TestExplanations:
    def test_every_reason_has_its_own_sentence(self) -> None:
        words = {
            name.removeprefix("DELIVERY_REASON_").lower()
            for name in common_pb2.DeliveryReason.keys()  # noqa: SIM118
            if name != "DELIVERY_REASON_UNSPECIFIED"
        }

        assert words == set(EXPLANATIONS)
        sentences = [explain(RecipientStatus.FAILED, word) for word in sorted(words)]
        assert len(set(sentences)) == len(sentences)
        assert all("\n" not in s and s == s.strip() for s in sentences)
