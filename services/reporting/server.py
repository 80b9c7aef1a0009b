"""The reporting gRPC adapters (ReportingService and WebhookService, public;
ReportingInternalService, for Clarion's own services): proto <-> domain translation and
the server factory, which also starts the conversion follower
(services.reporting.domain.conversions) and the webhook dispatcher
(services.reporting.domain.webhooks)."""

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
    webhook_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from services.kit.auth import SiteResolver, required_site_id
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, build_service_server, open_service_database
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.reporting.adapters.segment_feed import GrpcEventFeed
from services.reporting.adapters.webhook_sender import WebhookSender
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
from services.reporting.domain.webhooks import (
    DispatcherLoop,
    WebhookDispatcher,
    Webhooks,
    WebhookTransport,
)
from services.reporting.settings import reporting_settings
from services.reporting.store import (
    DeadLetterRecord,
    DeliveryStatus,
    DescriptionRecord,
    EndpointRecord,
    EngagementKind,
    ReportingStore,
    WebhookEndpointState,
    WebhookEventType,
)
from services.siteclient import remote_site_resolver

log = get_logger(__name__)

# How often the conversion follower reads the goal events that came: part of the time
# from an event to its conversion in the reports (with SETTLE).
CONVERSION_INTERVAL_SECONDS = 1.0
# How often idle webhook dispatchers look for due messages (retries coming due; new
# events of this process wake them at once).
WEBHOOK_INTERVAL_SECONDS = 1.0
WEBHOOK_WORKERS = 4

SERVICE_FULL_NAME = reporting_service_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name
WEBHOOK_SERVICE_FULL_NAME = webhook_service_pb2.DESCRIPTOR.services_by_name[
    "WebhookService"
].full_name
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


_EVENT_TYPES = {
    webhook_pb2.WEBHOOK_EVENT_TYPE_VIEW: WebhookEventType.VIEW,
    webhook_pb2.WEBHOOK_EVENT_TYPE_CLICK: WebhookEventType.CLICK,
    webhook_pb2.WEBHOOK_EVENT_TYPE_CLOSE: WebhookEventType.CLOSE,
}
_EVENT_TYPE_VALUES = {kind: value for value, kind in _EVENT_TYPES.items()}
_ENDPOINT_STATES = {
    WebhookEndpointState.ACTIVE: webhook_pb2.WEBHOOK_ENDPOINT_STATE_ACTIVE,
    WebhookEndpointState.INACTIVE: webhook_pb2.WEBHOOK_ENDPOINT_STATE_INACTIVE,
    WebhookEndpointState.PAUSED: webhook_pb2.WEBHOOK_ENDPOINT_STATE_PAUSED,
    WebhookEndpointState.DISABLED: webhook_pb2.WEBHOOK_ENDPOINT_STATE_DISABLED,
}


def _time_or_none(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def _description(message: common_pb2.RunDescription) -> DescriptionRecord:
    return DescriptionRecord(
        notification_title=message.notification_title,
        utm_source=message.utm_source,
        utm_medium=message.utm_medium,
        utm_campaign=message.utm_campaign,
        utm_content=message.utm_content,
        utm_term=message.utm_term,
        variant_titles={v.variant_id: v.notification_title for v in message.variant_titles},
    )


def _endpoint_to_proto(endpoint: EndpointRecord) -> webhook_pb2.WebhookEndpoint:
    return webhook_pb2.WebhookEndpoint(
        endpoint_id=endpoint.endpoint_id,
        url=endpoint.url,
        event_types=sorted(_EVENT_TYPE_VALUES[t] for t in endpoint.event_types),
        active=endpoint.active,
        state=_ENDPOINT_STATES[endpoint.state],
        state_reason=endpoint.state_reason,
        create_time=_timestamp(endpoint.create_time),
        update_time=_timestamp(endpoint.update_time),
        consecutive_failures=endpoint.consecutive_failures,
        last_success_time=_timestamp(endpoint.last_success_time),
        last_failure_time=_timestamp(endpoint.last_failure_time),
        last_failure=endpoint.last_failure,
        backlog=endpoint.backlog,
        previous_secret_expire_time=_timestamp(endpoint.previous_secret_expire_time),
    )


def _dead_letter_to_proto(letter: DeadLetterRecord) -> webhook_pb2.WebhookDeadLetter:
    return webhook_pb2.WebhookDeadLetter(
        message_id=letter.message_id,
        endpoint_id=letter.endpoint_id,
        event_type=_EVENT_TYPE_VALUES[letter.event_type],
        payload=letter.payload,
        attempts=letter.attempts,
        last_failure=letter.last_failure,
        first_attempt_time=_timestamp(letter.first_attempt_time),
        dead_time=_timestamp(letter.dead_time),
    )


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
            description=(
                _description(request.description) if request.HasField("description") else None
            ),
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


class WebhookServicer(webhook_service_pb2_grpc.WebhookServiceServicer):
    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    async def CreateWebhookEndpoint(
        self,
        request: webhook_service_pb2.CreateWebhookEndpointRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.CreateWebhookEndpointResponse:
        created = await self._webhooks.create(
            required_site_id(),
            request.url,
            [_EVENT_TYPES.get(t) for t in request.event_types],
            request.request_id,
        )
        return webhook_service_pb2.CreateWebhookEndpointResponse(
            endpoint=_endpoint_to_proto(created.endpoint), secret=created.secret
        )

    async def GetWebhookEndpoint(
        self,
        request: webhook_service_pb2.GetWebhookEndpointRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.GetWebhookEndpointResponse:
        endpoint = await self._webhooks.get(required_site_id(), request.endpoint_id)
        return webhook_service_pb2.GetWebhookEndpointResponse(
            endpoint=_endpoint_to_proto(endpoint)
        )

    async def ListWebhookEndpoints(
        self,
        request: webhook_service_pb2.ListWebhookEndpointsRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.ListWebhookEndpointsResponse:
        page = await self._webhooks.list_page(
            required_site_id(), request.page_size, request.page_token
        )
        return webhook_service_pb2.ListWebhookEndpointsResponse(
            endpoints=[_endpoint_to_proto(e) for e in page.endpoints],
            next_page_token=page.next_page_token,
        )

    async def UpdateWebhookEndpoint(
        self,
        request: webhook_service_pb2.UpdateWebhookEndpointRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.UpdateWebhookEndpointResponse:
        endpoint = request.endpoint
        updated = await self._webhooks.update(
            required_site_id(),
            endpoint.endpoint_id,
            list(request.update_mask.paths),
            url=endpoint.url,
            event_types=[_EVENT_TYPES.get(t) for t in endpoint.event_types],
            active=endpoint.active,
        )
        return webhook_service_pb2.UpdateWebhookEndpointResponse(
            endpoint=_endpoint_to_proto(updated)
        )

    async def DeleteWebhookEndpoint(
        self,
        request: webhook_service_pb2.DeleteWebhookEndpointRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.DeleteWebhookEndpointResponse:
        await self._webhooks.delete(required_site_id(), request.endpoint_id)
        return webhook_service_pb2.DeleteWebhookEndpointResponse()

    async def RotateWebhookSecret(
        self,
        request: webhook_service_pb2.RotateWebhookSecretRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.RotateWebhookSecretResponse:
        rotated = await self._webhooks.rotate_secret(
            required_site_id(), request.endpoint_id, request.overlap_seconds, request.expire_now
        )
        return webhook_service_pb2.RotateWebhookSecretResponse(
            endpoint=_endpoint_to_proto(rotated.endpoint),
            secret=rotated.secret,
            previous_secret_expire_time=_timestamp(rotated.previous_secret_expire_time),
        )

    async def ListWebhookDeadLetters(
        self,
        request: webhook_service_pb2.ListWebhookDeadLettersRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.ListWebhookDeadLettersResponse:
        page = await self._webhooks.dead_letters(
            required_site_id(), request.endpoint_id, request.page_size, request.page_token
        )
        return webhook_service_pb2.ListWebhookDeadLettersResponse(
            dead_letters=[_dead_letter_to_proto(d) for d in page.dead_letters],
            next_page_token=page.next_page_token,
        )

    async def ReplayWebhookDeadLetters(
        self,
        request: webhook_service_pb2.ReplayWebhookDeadLettersRequest,
        context: grpc.aio.ServicerContext,
    ) -> webhook_service_pb2.ReplayWebhookDeadLettersResponse:
        replayed = await self._webhooks.replay(
            required_site_id(), request.endpoint_id, list(request.message_ids)
        )
        return webhook_service_pb2.ReplayWebhookDeadLettersResponse(replayed=replayed)


async def create_server(
    address: str,
    settings: Settings,
    *,
    clock: Clock | None = None,
    site_resolver: SiteResolver | None = None,
    peers: Peers | None = None,
    conversion_interval_seconds: float = CONVERSION_INTERVAL_SECONDS,
    conversion_settle: timedelta = SETTLE,
    webhook_interval_seconds: float = WEBHOOK_INTERVAL_SECONDS,
    webhook_transport: WebhookTransport | None = None,
) -> ManagedServer:
    """Migrates reporting's database and binds (does not start) its gRPC server; the
    conversion follower and the webhook dispatchers start and stop with it.
    `webhook_transport` replaces the SSRF-safe HTTP sender (its own settings decide
    whether private addresses are allowed)."""
    engine = await open_service_database("reporting", settings)
    peers = peers or Peers(settings)
    resolver = site_resolver or remote_site_resolver(peers)
    clock = clock or SystemClock()
    store = ReportingStore(engine)
    sender = None
    if webhook_transport is None:
        # Its own knobs from a copy; `settings` itself stays shared (peers read the
        # addresses in it when they connect).
        own = reporting_settings(settings)
        sender = WebhookSender(allow_private_addresses=own.webhook_allow_private_addresses)
        webhook_transport = sender
    dispatcher_loop = DispatcherLoop(
        WebhookDispatcher(store, clock, webhook_transport),
        webhook_interval_seconds,
        WEBHOOK_WORKERS,
    )
    reporting = Reporting(store, clock, on_webhooks_queued=dispatcher_loop.wake)
    follower = ConversionFollower(store, clock, GrpcEventFeed(peers), settle=conversion_settle)
    follower_loop = PeriodicLoop(
        "reporting-conversions",
        follower.run_once,
        conversion_interval_seconds,
        failure="crediting conversions failed; will retry",
    )
    public = ReportingServicer(reporting)
    internal = ReportingInternalServicer(reporting)
    webhooks = WebhookServicer(Webhooks(store, clock))
    # The sender's session first, the dispatchers after; stopped the other way round.
    on_start = [follower_loop.start, dispatcher_loop.start]
    on_stop = [dispatcher_loop.stop, follower_loop.stop]
    if sender is not None:
        on_start.insert(0, sender.start)
        on_stop.append(sender.close)
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
            lambda server: webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
                webhooks, server
            ),
        ],
        service_names=[SERVICE_FULL_NAME, INTERNAL_SERVICE_FULL_NAME, WEBHOOK_SERVICE_FULL_NAME],
        engine=engine,
        peers=peers,
        site_resolver=resolver,
        internal_services=[INTERNAL_SERVICE_FULL_NAME],
        on_start=on_start,
        on_stop=on_stop,
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
