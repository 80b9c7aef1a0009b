"""The reporting gRPC adapters (ReportingService, public; ReportingInternalService, for
Clarion's own services): proto <-> domain translation and the server factory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
    reporting_service_pb2,
    reporting_service_pb2_grpc,
)
from services.kit.auth import SiteResolver, required_site_id
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, build_service_server, open_service_database
from services.kit.peers import Peers
from services.reporting.domain import CampaignReport, EngagementInput, OutcomeInput, Reporting
from services.reporting.store import DeliveryStatus, EngagementKind, ReportingStore
from services.siteclient import remote_site_resolver

SERVICE_FULL_NAME = reporting_service_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name
# Only Clarion's own services record: delivery what it sent, the gateway what a browser
# proved with its engagement token. A site's API key cannot forge either.
INTERNAL_SERVICE_FULL_NAME = reporting_internal_service_pb2.DESCRIPTOR.services_by_name[
    "ReportingInternalService"
].full_name

_STATUSES = {
    common_pb2.DELIVERY_STATUS_SENT: DeliveryStatus.SENT,
    common_pb2.DELIVERY_STATUS_FAILED: DeliveryStatus.FAILED,
    common_pb2.DELIVERY_STATUS_SUPPRESSED: DeliveryStatus.SUPPRESSED,
    common_pb2.DELIVERY_STATUS_EXPIRED: DeliveryStatus.EXPIRED,
}
_KINDS = {
    common_pb2.ENGAGEMENT_KIND_VIEWED: EngagementKind.VIEWED,
    common_pb2.ENGAGEMENT_KIND_CLICKED: EngagementKind.CLICKED,
    common_pb2.ENGAGEMENT_KIND_CLOSED: EngagementKind.CLOSED,
}
# In storage and reports a reason is its name after the prefix, in lower case
# (DELIVERY_REASON_PUSH_SERVICE_410 is "push_service_410"); UNSPECIFIED is "".
_REASONS: dict[int, str] = {
    value: ""
    if value == common_pb2.DELIVERY_REASON_UNSPECIFIED
    else name.removeprefix("DELIVERY_REASON_").lower()
    for name, value in common_pb2.DeliveryReason.items()
}
_BROWSERS = {
    value: name.removeprefix("BROWSER_").lower()
    for name, value in common_pb2.Browser.items()
    if value != common_pb2.BROWSER_UNSPECIFIED
}


def _time_or_none(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def _report_to_proto(report: CampaignReport) -> reporting_pb2.CampaignReport:
    proto = reporting_pb2.CampaignReport(
        campaign_id=report.campaign_id,
        audience=report.audience,
        sent=report.sent,
        failed=report.failed,
        suppressed=report.suppressed,
        expired=report.expired,
        viewed=report.viewed,
        clicked=report.clicked,
        closed=report.closed,
        click_through_rate=report.click_through_rate,
        runs=report.runs,
    )
    if report.last_sent_time is not None:
        timestamp = Timestamp()
        timestamp.FromDatetime(report.last_sent_time)
        proto.last_sent_time.CopyFrom(timestamp)
    return proto


class ReportingServicer(reporting_service_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reporting: Reporting) -> None:
        self._reporting = reporting

    async def GetCampaignReport(
        self,
        request: reporting_service_pb2.GetCampaignReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_service_pb2.GetCampaignReportResponse:
        report = await self._reporting.campaign_report(required_site_id(), request.campaign_id)
        return reporting_service_pb2.GetCampaignReportResponse(report=_report_to_proto(report))


class ReportingInternalServicer(
    reporting_internal_service_pb2_grpc.ReportingInternalServiceServicer
):
    def __init__(self, reporting: Reporting) -> None:
        self._reporting = reporting

    async def RecordRunAudience(
        self,
        request: reporting_internal_service_pb2.RecordRunAudienceRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_internal_service_pb2.RecordRunAudienceResponse:
        await self._reporting.record_run_audience(
            required_site_id(),
            request.run_id,
            request.campaign_id,
            request.audience,
            test=request.test,
        )
        return reporting_internal_service_pb2.RecordRunAudienceResponse()

    async def RecordDeliveryOutcomes(
        self,
        request: reporting_internal_service_pb2.RecordDeliveryOutcomesRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_internal_service_pb2.RecordDeliveryOutcomesResponse:
        # Delivery sends thousands per call sharing a few times: each converted once.
        times: dict[tuple[int, int], datetime] = {}
        outcomes = []
        for outcome in request.outcomes:
            occur_time = None
            if outcome.HasField("occur_time"):
                stamp = outcome.occur_time
                key = (stamp.seconds, stamp.nanos)
                occur_time = times.get(key)
                if occur_time is None:
                    occur_time = times[key] = stamp.ToDatetime(tzinfo=UTC)
            outcomes.append(
                OutcomeInput(
                    run_id=outcome.run_id,
                    campaign_id=outcome.campaign_id,
                    subscriber_id=outcome.subscriber_id,
                    status=_STATUSES.get(outcome.status),
                    reason=_REASONS.get(outcome.reason),
                    browser=_BROWSERS.get(outcome.browser, ""),
                    occur_time=occur_time,
                    test=outcome.test,
                )
            )
        recorded = await self._reporting.record_delivery_outcomes(required_site_id(), outcomes)
        return reporting_internal_service_pb2.RecordDeliveryOutcomesResponse(recorded=recorded)

    async def RecordEngagementEvents(
        self,
        request: reporting_internal_service_pb2.RecordEngagementEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_internal_service_pb2.RecordEngagementEventsResponse:
        events = [
            EngagementInput(
                run_id=event.run_id,
                campaign_id=event.campaign_id,
                subscriber_id=event.subscriber_id,
                kind=_KINDS.get(event.kind),
                button=event.button,
                occur_time=_time_or_none(event, "occur_time"),
            )
            for event in request.events
        ]
        recorded = await self._reporting.record_engagement_events(required_site_id(), events)
        return reporting_internal_service_pb2.RecordEngagementEventsResponse(recorded=recorded)


async def create_server(
    address: str,
    settings: Settings,
    *,
    clock: Clock | None = None,
    site_resolver: SiteResolver | None = None,
    peers: Peers | None = None,
) -> ManagedServer:
    """Migrates reporting's database and binds (does not start) its gRPC server."""
    engine = await open_service_database("reporting", settings)
    peers = peers or Peers(settings)
    resolver = site_resolver or remote_site_resolver(peers)
    reporting = Reporting(ReportingStore(engine), clock or SystemClock())
    public = ReportingServicer(reporting)
    internal = ReportingInternalServicer(reporting)
    return build_service_server(
        address,
        settings,
        register=[
            lambda server: reporting_service_pb2_grpc.add_ReportingServiceServicer_to_server(
                public, server
            ),
            lambda server: (
                reporting_internal_service_pb2_grpc.add_ReportingInternalServiceServicer_to_server(
                    internal, server
                )
            ),
        ],
        service_names=[SERVICE_FULL_NAME, INTERNAL_SERVICE_FULL_NAME],
        engine=engine,
        peers=peers,
        site_resolver=resolver,
        internal_services=[INTERNAL_SERVICE_FULL_NAME],
    )
