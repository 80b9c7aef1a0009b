"""A run's audience selector (a saved segment or an ad-hoc definition): delivery keeps it
with the run, asks for it on every audience page (under the run id), also after a
restart, and fails the run AUDIENCE_REFUSED when segment refuses it; on SQLite and on
PostgreSQL. The gRPC adapter is checked against a scripted SegmentInternalService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import grpc
import pytest

from clarion.segment.v1 import (
    profile_pb2,
    segment_internal_service_pb2,
    segment_internal_service_pb2_grpc,
    segment_pb2,
)
from services.delivery.adapters.grpc_peers import GrpcAudience
from services.delivery.domain.ports import PeerUnavailable
from services.delivery.domain.runs import DeliveryRuns, RunRequest
from services.delivery.models import RunFailure, RunState
from services.delivery.store import DeliveryStore
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.peers import Peers
from tests.delivery.conftest import (
    Harness,
    eventually,
    harness_settings,
    members,
    shared_payload,
)

IN_PARIS = segment_pb2.AudienceSelector(
    definition=segment_pb2.SegmentDefinition(
        condition=segment_pb2.Condition(
            property=segment_pb2.PropertyCondition(
                name="city",
                operator=segment_pb2.PROPERTY_OPERATOR_EQUALS,
                values=[profile_pb2.PropertyValue(string_value="Paris")],
            )
        )
    )
)
SAVED = segment_pb2.AudienceSelector(segment_id="seg_0123456789abcdef0123456789abcdef")


async def run_of(harness: Harness, site_id: str, run_id: str):  # type: ignore[no-untyped-def]
    run = await harness.store.get_run(site_id, run_id)
    assert run is not None
    return run


class TestTheRunKeepsItsSelector:
    async def test_the_selector_is_stored_and_sent_with_every_page(self, harness: Harness) -> None:
        page_size = harness.settings.delivery_prepare_page_size
        selector = IN_PARIS.SerializeToString()
        site_id, run_id = await harness.start_run(members(page_size * 3 + 1), selector=selector)

        assert (await run_of(harness, site_id, run_id)).selector == selector
        await harness.deliver()

        assert len(harness.audience.selectors_asked) == 4
        assert set(harness.audience.selectors_asked) == {(selector, run_id)}
        assert (await run_of(harness, site_id, run_id)).state is RunState.DONE

    async def test_a_restarted_preparation_resumes_with_the_selector(
        self, harness: Harness
    ) -> None:
        page_size = harness.settings.delivery_prepare_page_size
        selector = SAVED.SerializeToString()
        harness.audience.pages_before_trouble = 2  # then it hangs
        site_id, run_id = await harness.start_run(members(page_size * 5), selector=selector)

        preparing = asyncio.create_task(harness.workers.prepare_once())
        await eventually(harness.audience.hanging.is_set, what="two pages queued")
        preparing.cancel()  # the process dies holding the lease
        with pytest.raises(asyncio.CancelledError):
            await preparing

        second = harness.sibling()  # a new process: only the database carries the run
        second.audience.sites = harness.audience.sites
        harness.clock.advance(seconds=harness.settings.delivery_lease_seconds + 1)
        assert await second.workers.prepare_once()

        assert second.audience.tokens_asked[0] == str(2 * page_size)
        assert set(second.audience.selectors_asked) == {(selector, run_id)}
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved) == (RunState.SENDING, page_size * 5)

    async def test_a_run_without_a_selector_asks_for_every_subscriber(
        self, harness: Harness
    ) -> None:
        site_id, run_id = await harness.start_run(members(3))
        await harness.deliver()
        assert harness.audience.selectors_asked == [(b"", run_id)]
        assert (await run_of(harness, site_id, run_id)).selector == b""

    async def test_a_test_send_ignores_the_selector(self, harness: Harness) -> None:
        audience = members(5)
        site_id, run_id = await harness.start_run(
            audience,
            subscriber_ids=[audience[0].subscriber_id],
            selector=SAVED.SerializeToString(),
        )
        await harness.deliver()
        assert (await run_of(harness, site_id, run_id)).selector == b""
        assert harness.audience.selectors_asked == [(b"", run_id)]
        assert (await run_of(harness, site_id, run_id)).resolved == 1


class ScriptedSegment(segment_internal_service_pb2_grpc.SegmentInternalServiceServicer):
    """ListAudienceMembers that records each request and answers as scripted: one page
    of nobody, or `refuse` = (code, details)."""

    def __init__(self) -> None:
        self.requests: list[segment_internal_service_pb2.ListAudienceMembersRequest] = []
        self.refuse: tuple[grpc.StatusCode, str] | None = None

    async def ListAudienceMembers(
        self,
        request: segment_internal_service_pb2.ListAudienceMembersRequest,
        context: grpc.aio.ServicerContext,
    ) -> segment_internal_service_pb2.ListAudienceMembersResponse:
        self.requests.append(request)
        if self.refuse is not None:
            await context.abort(*self.refuse)
        return segment_internal_service_pb2.ListAudienceMembersResponse()


@pytest.fixture
async def segment() -> AsyncIterator[tuple[ScriptedSegment, str]]:
    server = grpc.aio.server()
    scripted = ScriptedSegment()
    segment_internal_service_pb2_grpc.add_SegmentInternalServiceServicer_to_server(
        scripted, server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield scripted, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def grpc_audience(
    segment: tuple[ScriptedSegment, str], settings_factory: Callable[..., Settings]
) -> AsyncIterator[GrpcAudience]:
    peers = Peers(settings_factory(segment_address=segment[1], rpc_timeout_seconds=5.0))
    yield GrpcAudience(peers)
    await peers.close()


class TestListAudienceMembers:
    async def test_the_selector_and_the_run_id_go_with_the_request(
        self, segment: tuple[ScriptedSegment, str], grpc_audience: GrpcAudience
    ) -> None:
        scripted, _ = segment
        await grpc_audience.audience_page(
            "site_1",
            datetime.now(UTC),
            [],
            "token",
            100,
            selector=IN_PARIS.SerializeToString(),
            audience_key="run_1",
        )
        (request,) = scripted.requests
        assert request.audience == IN_PARIS
        assert (request.audience_key, request.page_token) == ("run_1", "token")

    async def test_no_selector_sends_no_audience(
        self, segment: tuple[ScriptedSegment, str], grpc_audience: GrpcAudience
    ) -> None:
        scripted, _ = segment
        await grpc_audience.audience_page("site_1", datetime.now(UTC), [], "", 100, audience_key="run_1")
        (request,) = scripted.requests
        assert not request.HasField("audience")
        assert request.audience_key == ""

    @pytest.mark.parametrize(
        ("code", "selector", "says"),
        [
            (grpc.StatusCode.NOT_FOUND, SAVED, "segment 'seg_0123456789abcdef0123456789abcdef' was not found"),
            (grpc.StatusCode.INVALID_ARGUMENT, IN_PARIS, "the audience definition was refused"),
            (grpc.StatusCode.INVALID_ARGUMENT, SAVED, "the segment's definition was refused"),
        ],
    )
    async def test_a_refused_audience_is_permanent_and_says_why(
        self,
        segment: tuple[ScriptedSegment, str],
        grpc_audience: GrpcAudience,
        code: grpc.StatusCode,
        selector: segment_pb2.AudienceSelector,
        says: str,
    ) -> None:
        scripted, _ = segment
        scripted.refuse = (code, "scripted refusal")
        with pytest.raises(PeerUnavailable) as raised:
            await grpc_audience.audience_page(
                "site_1",
                datetime.now(UTC),
                [],
                "",
                100,
                selector=selector.SerializeToString(),
                audience_key="run_1",
            )
        assert raised.value.permanent
        assert says in str(raised.value)
        assert "scripted refusal" in str(raised.value)

    async def test_a_deleted_segment_fails_the_run_audience_refused(
        self,
        store: DeliveryStore,
        settings_factory: Callable[..., Settings],
        segment: tuple[ScriptedSegment, str],
        grpc_audience: GrpcAudience,
    ) -> None:
        scripted, _ = segment
        scripted.refuse = (grpc.StatusCode.NOT_FOUND, "there is no segment")
        harness = Harness(
            store, harness_settings(settings_factory), FrozenClock(), audience=grpc_audience  # type: ignore[arg-type]
        )
        await harness.workers.open()
        try:
            site_id, run_id = "site_1", "run_deleted_segment"
            await DeliveryRuns(store, harness.clock).start(
                site_id,
                RunRequest(
                    run_id=run_id,
                    campaign_id="cmp_1",
                    payload=shared_payload(run_id=run_id),
                    ttl_seconds=3600,
                    urgency="normal",
                    subscriber_ids=[],
                    selector=SAVED.SerializeToString(),
                ),
            )
            await harness.deliver()
        finally:
            await harness.workers.close()

        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.failure) == (RunState.FAILED, RunFailure.AUDIENCE_REFUSED)
        assert "was not found" in run.failure_message
        assert [r.audience_key for r in scripted.requests] == [run_id]
