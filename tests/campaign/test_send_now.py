"""SendCampaignNow, GetRun and ListRuns through real servers.

The session's campaign server has no reachable delivery: the runs it starts stay
PREPARING with their hand-off pending. `TestWithRealPeers` starts real segment,
delivery and reporting servers (and the push-service simulator) per test, on a
database of their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import create_engine, text

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from clarion.simulator.model import SimulatedSubscription
from services.campaign.admin import CreatedSite, create_site
from services.campaign.domain.campaigns import HANDOFF_WAIT_SECONDS
from services.kit.config import Settings
from services.kit.db import sync_url
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import (
    Metadata,
    Stub,
    closed_port_address,
    eventually,
    field,
    finished,
    get_run,
    internal,
    new_campaign,
    reason,
    send_now,
)
from tests.support.sites import bearer

NewSite = Callable[..., Awaitable[CreatedSite]]
StartService = Callable[..., Awaitable[ManagedServer]]
# SendCampaignNow waits at most HANDOFF_WAIT_SECONDS for delivery; the rest is slack
# for a loaded machine.
PROMPT_SECONDS = HANDOFF_WAIT_SECONDS + 3.0


def stored_runs(settings: Settings, *run_ids: str) -> dict[str, dict[str, object]]:
    """The campaign database's rows for these runs (what a restarted process reads)."""
    engine = create_engine(sync_url(settings.database_url_for("campaign")))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT run_id, payload, handoff_pending FROM campaign_runs")
            ).mappings()
            return {row["run_id"]: dict(row) for row in rows if row["run_id"] in run_ids}
    finally:
        engine.dispose()


async def list_runs(
    stub: Stub, auth: Metadata, campaign_id: str, page_size: int = 0
) -> list[pb.ListRunsResponse]:
    pages, token = [], ""
    while True:
        page = await stub.ListRuns(
            pb.ListRunsRequest(campaign_id=campaign_id, page_size=page_size, page_token=token),
            metadata=auth,
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


class TestSendCampaignNowWithDeliveryDown:
    async def test_answers_at_once_with_a_preparing_run(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        started = time.monotonic()
        run = await send_now(campaigns_stub, auth, campaign.campaign_id)
        elapsed = time.monotonic() - started

        assert elapsed < PROMPT_SECONDS
        assert run.run_id.startswith("run_")
        assert run.campaign_id == campaign.campaign_id
        assert run.state == campaign_pb2.RUN_STATE_PREPARING
        assert (run.audience, run.progress.queued, run.failure_reason) == (0, 0, "")
        assert run.create_time.seconds > 0 and not run.HasField("finish_time")
        assert await get_run(campaigns_stub, auth, run.run_id) == run

    async def test_the_same_request_id_returns_the_same_run(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        first = await send_now(campaigns_stub, auth, campaign.campaign_id, request_id="send-1")
        repeat = await send_now(campaigns_stub, auth, campaign.campaign_id, request_id="send-1")

        assert repeat.run_id == first.run_id
        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id)
        assert [r.run_id for p in pages for r in p.runs] == [first.run_id]

    async def test_other_or_no_request_ids_start_new_runs(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        other = await new_campaign(campaigns_stub, auth)

        runs = [
            await send_now(campaigns_stub, auth, campaign.campaign_id, request_id="a"),
            await send_now(campaigns_stub, auth, campaign.campaign_id, request_id="b"),
            await send_now(campaigns_stub, auth, campaign.campaign_id),
            await send_now(campaigns_stub, auth, campaign.campaign_id),
            # A request id is the campaign's own: another campaign may use it too.
            await send_now(campaigns_stub, auth, other.campaign_id, request_id="a"),
        ]

        assert len({r.run_id for r in runs}) == 5

    async def test_a_request_id_over_128_characters_starts_nothing(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await send_now(campaigns_stub, auth, campaign.campaign_id, request_id="r" * 129)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_REQUEST_ID"
        assert field(raised.value) == "request_id"
        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id)
        assert list(pages[0].runs) == []

    async def test_another_site_cannot_send_the_campaign(
        self, campaigns_stub: Stub, auth: Metadata, new_site: NewSite
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        other = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await send_now(campaigns_stub, bearer(other.api_key), campaign.campaign_id)

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"
        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id)
        assert list(pages[0].runs) == []

    async def test_a_missing_campaign_id_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await send_now(campaigns_stub, auth, "")

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "MISSING_CAMPAIGN_ID"

    async def test_the_run_keeps_the_content_it_started_with(
        self, campaigns_stub: Stub, auth: Metadata, campaign_settings: Settings
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth, title="Before")
        before = await send_now(campaigns_stub, auth, campaign.campaign_id)

        await campaigns_stub.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign=campaign_pb2.Campaign(
                    campaign_id=campaign.campaign_id,
                    notification=common_pb2.Notification(title="After"),
                ),
                update_mask=FieldMask(paths=["notification.title"]),
            ),
            metadata=auth,
        )
        after = await send_now(campaigns_stub, auth, campaign.campaign_id)

        rows = stored_runs(campaign_settings, before.run_id, after.run_id)
        assert json.loads(rows[before.run_id]["payload"])["title"] == "Before"  # type: ignore[arg-type]
        assert json.loads(rows[after.run_id]["payload"])["title"] == "After"  # type: ignore[arg-type]
        # Delivery never confirmed either: the hand-off loop still owes them to it.
        assert rows[before.run_id]["handoff_pending"] and rows[after.run_id]["handoff_pending"]


class TestGetRun:
    async def test_an_unknown_run_is_not_found(self, campaigns_stub: Stub, auth: Metadata) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await get_run(campaigns_stub, auth, "run_missing")

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "RUN_NOT_FOUND"

    async def test_another_sites_run_is_not_found(
        self, campaigns_stub: Stub, auth: Metadata, new_site: NewSite
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        run = await send_now(campaigns_stub, auth, campaign.campaign_id)
        other = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await get_run(campaigns_stub, bearer(other.api_key), run.run_id)

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "RUN_NOT_FOUND"

    async def test_a_missing_run_id_is_invalid(self, campaigns_stub: Stub, auth: Metadata) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await get_run(campaigns_stub, auth, "")

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "MISSING_RUN_ID"
        assert field(raised.value) == "run_id"


class TestListRuns:
    async def test_pages_through_the_runs_newest_first(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        other = await new_campaign(campaigns_stub, auth)
        started = [
            (await send_now(campaigns_stub, auth, campaign.campaign_id)).run_id for _ in range(5)
        ]
        await send_now(campaigns_stub, auth, other.campaign_id)

        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id, page_size=2)

        assert [len(page.runs) for page in pages] == [2, 2, 1]
        assert [r.run_id for page in pages for r in page.runs] == started[::-1]
        assert {r.campaign_id for page in pages for r in page.runs} == {campaign.campaign_id}
        assert all(r.state == campaign_pb2.RUN_STATE_PREPARING for p in pages for r in p.runs)

    async def test_a_full_last_page_ends_with_an_empty_token(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        for _ in range(2):
            await send_now(campaigns_stub, auth, campaign.campaign_id)

        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id, page_size=2)

        assert [len(page.runs) for page in pages] == [2]

    async def test_a_campaign_without_runs_lists_none(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        pages = await list_runs(campaigns_stub, auth, campaign.campaign_id)

        assert [list(page.runs) for page in pages] == [[]]

    async def test_another_sites_campaign_is_not_found(
        self, campaigns_stub: Stub, auth: Metadata, new_site: NewSite
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        await send_now(campaigns_stub, auth, campaign.campaign_id)
        other = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await list_runs(campaigns_stub, bearer(other.api_key), campaign.campaign_id)

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"

    @pytest.mark.parametrize("token", ["not-a-token", "eyJ4IjoxfQ", "%%%"])
    async def test_a_malformed_token_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata, token: str
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.ListRuns(
                pb.ListRunsRequest(campaign_id=campaign.campaign_id, page_token=token),
                metadata=auth,
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_PAGE_TOKEN"
        assert field(raised.value) == "page_token"

    async def test_a_negative_page_size_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.ListRuns(
                pb.ListRunsRequest(campaign_id=campaign.campaign_id, page_size=-1), metadata=auth
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_PAGE_SIZE"


# With real peers -------------------------------------------------------------------


def peer_settings(settings_factory: Callable[..., Settings], **overrides: object) -> Settings:
    """A deployment of its own (fresh database), quick to poll and to give up on a push."""
    values: dict[str, object] = {
        "delivery_poll_seconds": 0.05,
        "push_timeout_seconds": 2.0,
        "push_max_attempts": 1,
        "rpc_timeout_seconds": 5.0,
    }
    return settings_factory(**(values | overrides))


async def subscribe(
    settings: Settings, site_id: str, subscriptions: list[SimulatedSubscription]
) -> None:
    """Registers simulated browsers with segment (internal token: no campaign needed)."""
    async with client_channel(settings.segment_address) as channel:
        segment = segment_service_pb2_grpc.SegmentServiceStub(channel)
        for start in range(0, len(subscriptions), 1000):
            await segment.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_CHROME,
                            timezone="UTC",
                        )
                        for s in subscriptions[start : start + 1000]
                    ]
                ),
                metadata=internal(settings, site_id),
                timeout=60,
            )


async def wait_until_finished(stub: Stub, auth: Metadata, run_id: str) -> campaign_pb2.Run:
    return await eventually(
        lambda: get_run(stub, auth, run_id),
        finished,
        timeout=90,
        interval=0.1,
        what=f"run {run_id} finished",
    )


def received(
    simulator: PushServiceSimulator, subscriptions: list[SimulatedSubscription], run_id: str
) -> list[dict[str, object]]:
    """The decrypted payloads of `run_id` the simulated browsers got."""
    payloads = []
    for subscription in subscriptions:
        for message in simulator.messages(subscription.endpoint):
            payload = message.payload()
            if payload is not None and payload.get("run_id") == run_id:
                payloads.append(payload)
    return payloads


async def serve_delivery_stand_in(
    servicer: delivery_service_pb2_grpc.DeliveryServiceServicer,
) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server on a free port answering DeliveryService with `servicer`."""
    server = grpc.aio.server()
    delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


class HangingDelivery(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """A delivery that takes StartDeliveryRun calls and never answers them."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def StartDeliveryRun(
        self,
        request: delivery_service_pb2.StartDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.StartDeliveryRunResponse:
        self.started.append(request.run_id)
        await asyncio.Event().wait()  # until the call is cancelled
        raise AssertionError("unreachable")


class SilentDelivery(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """A delivery that takes runs and then answers nothing about them: a process that
    accepts calls and does not answer (starting, stopped, overloaded)."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def StartDeliveryRun(
        self,
        request: delivery_service_pb2.StartDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.StartDeliveryRunResponse:
        return delivery_service_pb2.StartDeliveryRunResponse(
            delivery_run=delivery_pb2.DeliveryRun(
                run_id=request.run_id, state=delivery_pb2.DELIVERY_RUN_STATE_PREPARING
            )
        )

    async def BatchGetDeliveryRuns(
        self,
        request: delivery_service_pb2.BatchGetDeliveryRunsRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.BatchGetDeliveryRunsResponse:
        self.asked.append(list(request.run_ids))
        await asyncio.Event().wait()  # until the call is cancelled
        raise AssertionError("unreachable")


class TestGetRunWhileDeliveryDoesNotAnswer:
    async def test_answers_the_last_known_progress_before_the_callers_deadline(
        self, settings_factory: Callable[..., Settings], start_service: StartService
    ) -> None:
        silent = SilentDelivery()
        silent_server, silent_port = await serve_delivery_stand_in(silent)
        try:
            # Peer calls may take 30 s: longer than the caller below waits.
            settings = peer_settings(
                settings_factory,
                delivery_address=f"127.0.0.1:{silent_port}",
                rpc_timeout_seconds=30.0,
            )
            for name in ("segment", "reporting", "campaign"):
                await start_service(name, settings)
            site = await create_site(settings, "Silent", "mailto:ops@example.com")
            auth = bearer(site.api_key)
            async with client_channel(settings.campaign_address) as channel:
                stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                campaign = await new_campaign(stub, auth, title="Quiet")
                # SendCampaignNow asks delivery how the run is going too: a short wait.
                run = await send_now(stub, auth, campaign.campaign_id, timeout=3)
                started = time.monotonic()
                shown = await get_run(stub, auth, run.run_id, timeout=3)
                elapsed = time.monotonic() - started
        finally:
            await silent_server.stop(0)

        # Delivery was asked, did not answer, and the caller got the run as last stored
        # (not DEADLINE_EXCEEDED) before its 3 s were up.
        assert silent.asked[-1] == [run.run_id]
        assert elapsed < 3
        assert shown.run_id == run.run_id
        assert shown.state == campaign_pb2.RUN_STATE_PREPARING


@pytest.mark.slow
class TestWithRealPeers:
    async def test_answers_preparing_before_the_audience_is_queued_then_sends_it_all(
        self,
        settings_factory: Callable[..., Settings],
        start_service: StartService,
        simulator: PushServiceSimulator,
    ) -> None:
        # Small audience pages: preparing the audience takes many round trips.
        settings = peer_settings(settings_factory, delivery_prepare_page_size=50)
        for name in ("segment", "reporting", "delivery", "campaign"):
            await start_service(name, settings)
        site = await create_site(settings, "Real peers", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        subscriptions = [simulator.mint_subscription() for _ in range(1000)]
        await subscribe(settings, site.site_id, subscriptions)

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Big send")
            started = time.monotonic()
            run = await send_now(stub, auth, campaign.campaign_id)
            elapsed = time.monotonic() - started

            assert elapsed < PROMPT_SECONDS
            assert run.state == campaign_pb2.RUN_STATE_PREPARING, run.failure_reason
            assert run.progress.queued < len(subscriptions)
            done = await wait_until_finished(stub, auth, run.run_id)
            listed = await stub.ListRuns(
                pb.ListRunsRequest(campaign_id=campaign.campaign_id), metadata=auth
            )

        assert done.state == campaign_pb2.RUN_STATE_DONE, done.failure_reason
        assert (done.audience, done.progress.sent) == (len(subscriptions), len(subscriptions))
        assert done.HasField("finish_time")
        assert [r.run_id for r in listed.runs] == [run.run_id]
        assert listed.runs[0].progress == done.progress
        assert len(received(simulator, subscriptions, run.run_id)) == len(subscriptions)

    async def test_a_run_started_while_delivery_is_down_is_sent_when_it_comes_up(
        self,
        settings_factory: Callable[..., Settings],
        start_service: StartService,
        simulator: PushServiceSimulator,
    ) -> None:
        delivery_address = closed_port_address()
        settings = peer_settings(settings_factory, delivery_address=delivery_address)
        for name in ("segment", "reporting", "campaign"):
            await start_service(name, settings)
        site = await create_site(settings, "Delivery late", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        subscriptions = [simulator.mint_subscription() for _ in range(5)]
        await subscribe(settings, site.site_id, subscriptions)

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Old title")
            started = time.monotonic()
            run = await send_now(stub, auth, campaign.campaign_id)
            elapsed = time.monotonic() - started
            # Changed after the run started: the run still sends what it started with.
            await stub.UpdateCampaign(
                pb.UpdateCampaignRequest(
                    campaign=campaign_pb2.Campaign(
                        campaign_id=campaign.campaign_id,
                        notification=common_pb2.Notification(title="New title"),
                    ),
                    update_mask=FieldMask(paths=["notification.title"]),
                ),
                metadata=auth,
            )
            waiting = await get_run(stub, auth, run.run_id)

            await start_service("delivery", settings, address=delivery_address)
            done = await wait_until_finished(stub, auth, run.run_id)

        assert elapsed < PROMPT_SECONDS
        assert run.state == waiting.state == campaign_pb2.RUN_STATE_PREPARING
        assert done.state == campaign_pb2.RUN_STATE_DONE, done.failure_reason
        assert done.progress.sent == len(subscriptions)
        payloads = received(simulator, subscriptions, run.run_id)
        assert [p["title"] for p in payloads] == ["Old title"] * len(subscriptions)

    async def test_a_run_of_a_killed_campaign_process_is_handed_over_once_after_restart(
        self,
        settings_factory: Callable[..., Settings],
        start_service: StartService,
        simulator: PushServiceSimulator,
    ) -> None:
        settings = peer_settings(settings_factory)
        hanging = HangingDelivery()
        hanging_server, hanging_port = await serve_delivery_stand_in(hanging)
        try:
            for name in ("segment", "reporting"):
                await start_service(name, settings)
            # The first campaign process: same database, but its delivery never answers.
            doomed_settings = settings.model_copy(
                update={"delivery_address": f"127.0.0.1:{hanging_port}"}
            )
            doomed = await start_service("campaign", doomed_settings)
            site = await create_site(settings, "Killed", "mailto:ops@example.com")
            auth = bearer(site.api_key)
            subscriptions = [simulator.mint_subscription() for _ in range(5)]
            await subscribe(settings, site.site_id, subscriptions)
            async with client_channel(doomed.address) as channel:
                stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                campaign = await new_campaign(stub, auth, title="Survivor")
                started = time.monotonic()
                run = await send_now(stub, auth, campaign.campaign_id)
                elapsed = time.monotonic() - started

            # Killed right after answering: delivery never confirmed the run.
            await doomed.stop(grace=0)
            assert run.run_id in hanging.started
            assert stored_runs(settings, run.run_id)[run.run_id]["handoff_pending"]

            await start_service("delivery", settings)
            await start_service("campaign", settings)  # the new process
            async with client_channel(settings.campaign_address) as channel:
                stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
                done = await wait_until_finished(stub, auth, run.run_id)
        finally:
            await hanging_server.stop(0)

        assert elapsed < PROMPT_SECONDS
        assert run.state == campaign_pb2.RUN_STATE_PREPARING
        assert done.state == campaign_pb2.RUN_STATE_DONE, done.failure_reason
        assert (done.audience, done.progress.sent) == (len(subscriptions), len(subscriptions))
        # Exactly once: one delivery run, one push per browser.
        async with client_channel(settings.delivery_address) as channel:
            delivery = delivery_service_pb2_grpc.DeliveryServiceStub(channel)
            delivery_run = (
                await delivery.GetDeliveryRun(
                    delivery_service_pb2.GetDeliveryRunRequest(run_id=run.run_id),
                    metadata=internal(settings, site.site_id),
                )
            ).delivery_run
        assert delivery_run.campaign_id == campaign.campaign_id
        payloads = received(simulator, subscriptions, run.run_id)
        assert sorted(str(p["subscriber_id"]) for p in payloads) == sorted(
            {str(p["subscriber_id"]) for p in payloads}
        )
        assert len(payloads) == len(subscriptions)
        assert {p["title"] for p in payloads} == {"Survivor"}
        assert not stored_runs(settings, run.run_id)[run.run_id]["handoff_pending"]
