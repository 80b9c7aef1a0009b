"""The reporting gRPC adapters (ReportingService and WebhookService, public;
ReportingInternalService, for Clarion's own services): proto <-> domain translation and
the server factory, which also starts the conversion follower
(services.reporting.domain.conversions) and the webhook dispatcher
(services.reporting.domain.webhooks)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter, methodcaller
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
from services.kit.metrics import GaugeRefresher, set_webhook_backlog
from services.kit.peers import Peers
from services.kit.periodic import PeriodicLoop
from services.reporting.adapters.segment_feed import GrpcEventFeed
from services.reporting.adapters.webhook_sender import WebhookSender
from services.reporting.domain.conversions import (
    SETTLE,
    ConversionFollower,
    UnsubscribeFollower,
)
from services.reporting.domain.reports import (
    ConversionGoalInput,
    EngagementInput,
    OutcomeInputs,
    RecipientActivity,
    Report,
    Reporting,
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
# How often unsubscribes after a push are read: a pass reads every site that sent in the
# last day, and nothing waits on these counts, so less often than conversions.
UNSUBSCRIBE_INTERVAL_SECONDS = 10.0
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


_BROWSER_VALUES = {word: value for value, word in _BROWSERS.items()}
_REASON_VALUES = {word: value for value, word in _REASONS.items()}
_STATUS_VALUES = {status: value for value, status in _STATUSES.items()}


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


def _reasons(counts: Any) -> list[reporting_pb2.ReasonCount]:
    return [
        reporting_pb2.ReasonCount(
            reason=_REASON_VALUES.get(c.reason, common_pb2.DELIVERY_REASON_UNSPECIFIED),
            count=c.count,
        )
        for c in counts
    ]


def _report_fields(report: Report) -> dict[str, Any]:
    """The fields CampaignReport and RunReport share (all but run_id, test and runs)."""
    browsers = sorted(
        (
            reporting_pb2.BrowserReport(
                browser=_BROWSER_VALUES[b.browser],
                audience=b.audience,
                sent=b.sent,
                failed=b.failed,
                suppressed=b.suppressed,
                expired=b.expired,
                viewed=b.viewed,
                clicked=b.clicked,
                closed=b.closed,
                click_through_rate=b.click_through_rate,
                views_measured=b.views_measured,
            )
            for b in report.browsers
            # A word no Browser value names (none today) is left out of the list.
            if b.browser in _BROWSER_VALUES
        ),
        key=lambda b: b.browser,
    )
    fields: dict[str, Any] = {
        "campaign_id": report.campaign_id,
        "audience": report.audience,
        "sent": report.sent,
        "failed": report.failed,
        "suppressed": report.suppressed,
        "expired": report.expired,
        "viewed": report.viewed,
        "clicked": report.clicked,
        "closed": report.closed,
        "click_through_rate": report.click_through_rate,
        "conversions": report.conversions,
        "conversion_rate": report.conversion_rate,
        "revenue": report.revenue,
        "variants": _variants_to_proto(report.variants),
        "control_group": report.control_group,
        "control_group_conversions": report.control_group_conversions,
        "failed_by_reason": _reasons(report.failed_by_reason),
        "suppressed_by_reason": _reasons(report.suppressed_by_reason),
        "expired_by_reason": _reasons(report.expired_by_reason),
        "clicked_by_button": [
            reporting_pb2.ButtonClicks(button=b.button, clicked=b.clicked)
            for b in report.clicked_by_button
        ],
        "browsers": browsers,
        "timeline": [
            reporting_pb2.TimelineHour(
                hour_start_time=_timestamp(h.hour_start_time),
                sent=h.sent,
                viewed=h.viewed,
                clicked=h.clicked,
                converted=h.converted,
            )
            for h in report.timeline
        ],
        "sent_views_not_measured": report.sent_views_not_measured,
        "view_rate": report.view_rate,
        "unsubscribes_after_push": report.unsubscribes_after_push,
        "last_sent_time": _timestamp(report.last_sent_time),
    }
    if report.lift is not None:
        fields["lift"] = reporting_pb2.Lift(**dataclasses.asdict(report.lift))
    return fields


def _run_report_to_proto(report: Report) -> reporting_pb2.RunReport:
    return reporting_pb2.RunReport(run_id=report.run_id, test=report.test, **_report_fields(report))


def _report_to_proto(report: Report) -> reporting_pb2.CampaignReport:
    return reporting_pb2.CampaignReport(runs=report.runs, **_report_fields(report))


def _activity_to_proto(activity: RecipientActivity) -> reporting_pb2.RecipientActivity:
    return reporting_pb2.RecipientActivity(
        run_id=activity.run_id,
        subscriber_id=activity.subscriber_id,
        status=(
            _STATUS_VALUES[activity.status]
            if activity.status is not None
            else common_pb2.DELIVERY_STATUS_UNSPECIFIED
        ),
        reason=_REASON_VALUES.get(activity.reason, common_pb2.DELIVERY_REASON_UNSPECIFIED),
        viewed_time=_timestamp(activity.viewed_time),
        clicked_time=_timestamp(activity.clicked_time),
        clicked_button=activity.clicked_button,
        closed_time=_timestamp(activity.closed_time),
        conversions=activity.conversions,
        revenue=activity.revenue,
        converted_time=_timestamp(activity.converted_time),
        variant=activity.variant,
        control_group=activity.control_group,
    )


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

    async def ListRunReports(
        self,
        request: reporting_service_pb2.ListRunReportsRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_service_pb2.ListRunReportsResponse:
        page = await self._reporting.list_run_reports(
            required_site_id(),
            request.campaign_id,
            request.page_size,
            request.page_token,
            include_test=request.include_test,
        )
        return reporting_service_pb2.ListRunReportsResponse(
            reports=[_run_report_to_proto(r) for r in page.reports],
            next_page_token=page.next_page_token,
        )

    async def GetRecipientActivity(
        self,
        request: reporting_service_pb2.GetRecipientActivityRequest,
        context: grpc.aio.ServicerContext,
    ) -> reporting_service_pb2.GetRecipientActivityResponse:
        activity = await self._reporting.recipient_activity(
            required_site_id(), request.run_id, request.subscriber_id
        )
        return reporting_service_pb2.GetRecipientActivityResponse(
            activity=_activity_to_proto(activity)
        )


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
        # Delivery sends thousands per call: decoded a field at a time (map over the
        # items runs in C), each distinct time and enum value converted once.
        items = list(request.outcomes)

        def column(name: str) -> list[Any]:
            return list(map(attrgetter(name), items))

        stamps = list(
            zip(
                map(methodcaller("HasField", "occur_time"), items),
                map(attrgetter("occur_time.seconds"), items),
                map(attrgetter("occur_time.nanos"), items),
                strict=True,
            )
        )
        times = {
            stamp: Timestamp(seconds=stamp[1], nanos=stamp[2]).ToDatetime(tzinfo=UTC)
            if stamp[0]
            else None
            for stamp in set(stamps)
        }
        outcomes = OutcomeInputs(
            run_ids=column("run_id"),
            campaign_ids=column("campaign_id"),
            subscriber_ids=column("subscriber_id"),
            statuses=list(map(_STATUSES.get, column("status"))),
            reasons=list(map(_REASONS.get, column("reason"))),
            browsers=list(map(_BROWSERS.get, column("browser"), repeat(""))),
            occur_times=list(map(times.__getitem__, stamps)),
            tests=column("test"),
            variants=column("variant"),
            profile_ids=column("profile_id"),
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
    unsubscribe_interval_seconds: float = UNSUBSCRIBE_INTERVAL_SECONDS,
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
        logger=log,
    )
    unsubscribes = UnsubscribeFollower(store, clock, GrpcEventFeed(peers), settle=conversion_settle)
    unsubscribe_loop = PeriodicLoop(
        "reporting-unsubscribes",
        unsubscribes.run_once,
        unsubscribe_interval_seconds,
        failure="crediting unsubscribes failed; will retry",
        logger=log,
    )
    public = ReportingServicer(reporting)
    internal = ReportingInternalServicer(reporting)
    webhooks = WebhookServicer(Webhooks(store, clock))

    async def refresh_webhook_gauges() -> None:
        now = clock.now()
        set_webhook_backlog(*await store.webhook_backlog(now), now)

    webhook_gauges = GaugeRefresher(
        "reporting-webhook-gauges", refresh_webhook_gauges, settings.metrics_refresh_seconds
    )
    # The sender's session first, the dispatchers after; stopped the other way round.
    on_start = [
        follower_loop.start,
        unsubscribe_loop.start,
        dispatcher_loop.start,
        webhook_gauges.start,
    ]
    on_stop = [webhook_gauges.stop, dispatcher_loop.stop, unsubscribe_loop.stop, follower_loop.stop]
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
