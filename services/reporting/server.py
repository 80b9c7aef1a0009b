"""The reporting gRPC adapters (ReportingService, public; ReportingInternalService, for
Clarion's own services): proto <-> domain translation and the server factory, which
also starts the conversion follower (services.reporting.domain.conversions)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.reporting.adapters.segment_feed import GrpcEventFeed
from services.reporting.domain.conversions import SETTLE, ConversionFollower
from services.reporting.domain.reports import (
    CampaignReport,
    ConversionGoalInput,
    EngagementInput,
    OutcomeInput,
    Reporting,
    RunReport,
    VariantReport,
)
from services.reporting.store import DeliveryStatus, EngagementKind, ReportingStore
from services.siteclient import remote_site_resolver

log = get_logger(__name__)

# How often the conversion follower reads the goal events that came: part of the time
# from an event to its conversion in the reports (with SETTLE).
CONVERSION_INTERVAL_SECONDS = 1.0

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


def _variants_to_proto(variants: tuple[VariantReport, ...]) -> list[reporting_pb2.VariantReport]:
    return [
        reporting_pb2.VariantReport(
            variant_id=v.variant_id,
            sent=v.sent,
            viewed=v.viewed,
            clicked=v.clicked,
            click_through_rate=v.click_through_rate,
            conversions=v.conversions,
            conversion_rate=v.conversion_rate,
            revenue=v.revenue,
        )
        for v in variants
    ]


def _run_report_to_proto(report: RunReport) -> reporting_pb2.RunReport:
    return reporting_pb2.RunReport(
        run_id=report.run_id,
        campaign_id=report.campaign_id,
        audience=report.audience,
        sent=report.sent,
        failed=report.failed,
        suppressed=report.suppressed,
        expired=report.expired,
        viewed=report.viewed,
        clicked=report.clicked,
        click_through_rate=report.click_through_rate,
        conversions=report.conversions,
        conversion_rate=report.conversion_rate,
        revenue=report.revenue,
        variants=_variants_to_proto(report.variants),
        test=report.test,
    )


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
        conversions=report.conversions,
        conversion_rate=report.conversion_rate,
        revenue=report.revenue,
        variants=_variants_to_proto(report.variants),
        control_group=report.control_group,
        control_group_conversions=report.control_group_conversions,
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

    async def GetRunReport(
        self,
        request: reporting_service_pb2.GetRunReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_service_pb2.GetRunReportResponse:
        report = await self._reporting.run_report(required_site_id(), request.run_id)
        return reporting_service_pb2.GetRunReportResponse(report=_run_report_to_proto(report))


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
        goal = None
        if request.HasField("conversion_goal"):
            goal = ConversionGoalInput(
                event_name=request.conversion_goal.event_name,
                window_seconds=request.conversion_goal.window_seconds,
                revenue_property=request.conversion_goal.revenue_property,
            )
        await self._reporting.record_run_audience(
            required_site_id(),
            request.run_id,
            request.campaign_id,
            request.audience,
            test=request.test,
            goal=goal,
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
                    variant=outcome.variant,
                    profile_id=outcome.profile_id,
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
    conversion_interval_seconds: float = CONVERSION_INTERVAL_SECONDS,
    conversion_settle: timedelta = SETTLE,
) -> ManagedServer:
    """Migrates reporting's database and binds (does not start) its gRPC server; the
    conversion follower starts and stops with it."""
    engine = await open_service_database("reporting", settings)
    peers = peers or Peers(settings)
    resolver = site_resolver or remote_site_resolver(peers)
    clock = clock or SystemClock()
    store = ReportingStore(engine)
    reporting = Reporting(store, clock)
    follower = ConversionFollower(store, clock, GrpcEventFeed(peers), settle=conversion_settle)
    follower_loop = PeriodicLoop(
        "reporting-conversions",
        follower.run_once,
        conversion_interval_seconds,
        failure="crediting conversions failed; will retry",
    )
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
        on_start=[follower_loop.start],
        on_stop=[follower_loop.stop],
    )


class PeriodicLoop:
    """Calls `work` every `interval_seconds` until stopped; a failure is logged and the
    next round tries again."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        interval_seconds: float,
        *,
        failure: str,
    ) -> None:
        self._name = name
        self._work = work
        self._interval = interval_seconds
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self._work()
            except Exception:
                log.exception(self._failure)
            await asyncio.sleep(self._interval)
