"""The inputs that used to break a service (INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED) now get a
clear INVALID_ARGUMENT naming the field, on each database, and store nothing."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from clarion.campaign.v1 import campaign_service_pb2 as cs
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2
from clarion.reporting.v1 import reporting_service_pb2 as rs
from clarion.segment.v1 import segment_internal_service_pb2 as sis
from clarion.segment.v1 import segment_service_pb2 as ss
from services.campaign.admin import CreatedSite, create_site
from services.kit.auth import internal_metadata
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel

Metadata = tuple[tuple[str, str], ...]


async def call(
    stack: EmbeddedStack, service: str, method: str, request: Any, metadata: Metadata
) -> Any:
    """A unary call by full method name; returns the response or the AioRpcError."""
    server = service.split(".")[1]
    async with client_channel(stack.address(server)) as channel:
        stub = channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
        )
        try:
            return await stub(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error


def refused(answer: Any, field: str, reason: str = "INVALID_FIELD") -> None:
    assert isinstance(answer, grpc.aio.AioRpcError), f"accepted: {answer!r}"
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT, (answer.code(), answer.details())
    info = error_info(answer)
    assert info is not None
    assert (info.reason, info.metadata["field"]) == (reason, field), (info, answer.details())
    assert field in answer.details()
    assert len(answer.details()) < 300


@pytest.fixture(scope="module")
async def site(stack: EmbeddedStack) -> CreatedSite:
    return await create_site(stack.settings, "Bad input", "mailto:ops@example.com")


def key(site: CreatedSite) -> Metadata:
    return (("authorization", f"Bearer {site.api_key}"),)


def internal(stack: EmbeddedStack, site: CreatedSite) -> Metadata:
    return internal_metadata(stack.settings.internal_token_value, site.site_id)


CAMPAIGN = "clarion.campaign.v1.CampaignService"
SEGMENT = "clarion.segment.v1.SegmentService"
SEGMENT_INTERNAL = "clarion.segment.v1.SegmentInternalService"
REPORTING = "clarion.reporting.v1.ReportingService"
REPORTING_INTERNAL = "clarion.reporting.v1.ReportingInternalService"


class TestNulInText:
    @pytest.mark.parametrize(
        ("service", "method", "request_", "field"),
        [
            (CAMPAIGN, "GetCampaign", cs.GetCampaignRequest(campaign_id="cmp\x00x"), "campaign_id"),
            (CAMPAIGN, "SendCampaignNow", cs.SendCampaignNowRequest(campaign_id="\x00"), "campaign_id"),
            (CAMPAIGN, "GetRun", cs.GetRunRequest(run_id="run_\x00"), "run_id"),
            (SEGMENT, "GetSubscriber", ss.GetSubscriberRequest(subscriber_id="s\x00"), "subscriber_id"),
            (
                SEGMENT,
                "UnsubscribeSubscriber",
                ss.UnsubscribeSubscriberRequest(subscriber_id="sub_1", reason="gone\x00"),
                "reason",
            ),
            (REPORTING, "GetCampaignReport", rs.GetCampaignReportRequest(campaign_id="c\x00"), "campaign_id"),
        ],
    )
    async def test_is_refused_naming_the_field(
        self, stack: EmbeddedStack, site: CreatedSite, service: str, method: str, request_: Any, field: str
    ) -> None:
        answer = await call(stack, service, method, request_, key(site))
        refused(answer, field, "INVALID_REASON" if field == "reason" else "INVALID_FIELD")

    async def test_a_campaign_named_with_nul_is_not_stored(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        before = await call(stack, CAMPAIGN, "ListCampaigns", cs.ListCampaignsRequest(), key(site))
        answer = await call(
            stack,
            CAMPAIGN,
            "CreateCampaign",
            cs.CreateCampaignRequest(
                name="a\x00b", notification=common_pb2.Notification(title="t", body="b")
            ),
            key(site),
        )
        refused(answer, "name")
        after = await call(stack, CAMPAIGN, "ListCampaigns", cs.ListCampaignsRequest(), key(site))
        assert after == before

    async def test_an_engagement_event_with_nul_in_its_button_is_refused(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        event = reporting_pb2.EngagementEvent(
            run_id="run_1", campaign_id="cmp_1", subscriber_id="sub_1",
            kind=common_pb2.ENGAGEMENT_KIND_CLICKED, button="b\x00",
        )  # fmt: skip
        answer = await call(
            stack, REPORTING_INTERNAL, "RecordEngagementEvents",
            ris.RecordEngagementEventsRequest(events=[event]), internal(stack, site),
        )  # fmt: skip
        refused(answer, "events[0].button")


class TestTimestampsOutOfRange:
    @pytest.mark.parametrize(
        ("moment", "problem"),
        [
            (timestamp_pb2.Timestamp(seconds=253402300800), "years 1 and 9999"),
            (timestamp_pb2.Timestamp(seconds=0, nanos=-1), "nanos"),
            (timestamp_pb2.Timestamp(seconds=-62135596801), "years 1 and 9999"),
        ],
    )
    async def test_an_outcome_time_out_of_range_is_refused(
        self, stack: EmbeddedStack, site: CreatedSite, moment: timestamp_pb2.Timestamp, problem: str
    ) -> None:
        outcome = reporting_pb2.DeliveryOutcome(
            run_id="run_1", campaign_id="cmp_1", subscriber_id="sub_1",
            status=common_pb2.DELIVERY_STATUS_SENT, occur_time=moment,
        )  # fmt: skip
        answer = await call(
            stack, REPORTING_INTERNAL, "RecordDeliveryOutcomes",
            ris.RecordDeliveryOutcomesRequest(outcomes=[outcome]), internal(stack, site),
        )  # fmt: skip
        refused(answer, "outcomes[0].occur_time")
        assert problem in answer.details()

    async def test_an_audience_snapshot_time_out_of_range_is_refused(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        answer = await call(
            stack, SEGMENT_INTERNAL, "ListAudienceMembers",
            sis.ListAudienceMembersRequest(snapshot_time=timestamp_pb2.Timestamp(seconds=2**40)),
            internal(stack, site),
        )  # fmt: skip
        refused(answer, "snapshot_time")


class TestBrokenUrls:
    async def test_a_campaign_link_that_does_not_parse_is_refused(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        answer = await call(
            stack, CAMPAIGN, "CreateCampaign",
            cs.CreateCampaignRequest(
                notification=common_pb2.Notification(title="t", body="b", target_url="https://[")
            ),
            key(site),
        )  # fmt: skip
        refused(answer, "notification.target_url", "INVALID_URL")

    async def test_a_push_endpoint_that_does_not_parse_is_refused(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        request = ss.RegisterSubscriberRequest(
            push_subscription=common_pb2.PushSubscription(
                endpoint="https://[", p256dh=b"\x04" + b"\x01" * 64, auth=b"\x02" * 16
            ),
            browser=common_pb2.BROWSER_CHROME,
        )
        answer = await call(stack, SEGMENT, "RegisterSubscriber", request, key(site))
        assert isinstance(answer, grpc.aio.AioRpcError)
        assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT, answer.details()


class TestReportSums:
    async def test_an_audience_too_large_to_sum_is_refused_and_the_report_still_answers(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        for run, audience in (("run_a", 1_000_000_000), ("run_b", 2**62)):
            answer = await call(
                stack, REPORTING_INTERNAL, "RecordRunAudience",
                ris.RecordRunAudienceRequest(run_id=run, campaign_id="cmp_sum", audience=audience),
                internal(stack, site),
            )  # fmt: skip
        refused(answer, "audience")
        report = await call(
            stack, REPORTING, "GetCampaignReport",
            rs.GetCampaignReportRequest(campaign_id="cmp_sum"), key(site),
        )  # fmt: skip
        assert not isinstance(report, grpc.aio.AioRpcError), report.details()


class TestUndecodableBodies:
    async def test_without_credentials_the_caller_learns_only_that(
        self, stack: EmbeddedStack
    ) -> None:
        answer = await call(stack, CAMPAIGN, "GetCampaign", b"\xff\xff\xff", ())
        assert answer.code() == grpc.StatusCode.UNAUTHENTICATED

    async def test_with_a_key_it_is_invalid_argument(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        answer = await call(stack, CAMPAIGN, "GetCampaign", b"\xff\xff\xff", key(site))
        assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(answer).reason == "UNDECODABLE_REQUEST"
        assert "GetCampaignRequest" in answer.details()


class TestHugeIds:
    async def test_an_8000_character_id_gets_the_real_error_with_a_short_message(
        self, stack: EmbeddedStack, site: CreatedSite
    ) -> None:
        answer = await call(
            stack, CAMPAIGN, "GetCampaign", cs.GetCampaignRequest(campaign_id="c" * 8200), key(site)
        )
        refused(answer, "campaign_id")
        assert "8200" in answer.details()
