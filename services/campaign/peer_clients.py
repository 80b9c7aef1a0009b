"""The domain's delivery and segment ports over gRPC. Every failed call becomes a
PeerCallFailed naming the step; the hand-off is idempotent, so the channel retries it
(gRPC retry policy) and the background loop calls it again until it lands. Segment's
refusal of an audience (NOT_FOUND, INVALID_ARGUMENT) becomes AudienceRefused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import (
    profile_pb2,
    segment_internal_service_pb2,
    segment_internal_service_pb2_grpc,
    segment_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
    subscriber_pb2,
)
from services.campaign.domain import timing, triggers
from services.campaign.domain.policies import RunPolicy
from services.campaign.domain.ports import (
    ActivityView,
    AttemptView,
    AudienceRefused,
    DeliveryPlanView,
    DeliveryRunView,
    FeedEventView,
    FeedPageView,
    PeerCallFailed,
    PersonMatch,
    PlanRowView,
    RecipientOutcomeView,
    RecipientStatus,
    SubscriberView,
    VariantTally,
)
from services.campaign.store import RunContentOptions, RunProgress, RunRecord, RunState
from services.campaign.wire import URGENCY_TO_PROTO
from services.kit.errors import error_info
from services.kit.peers import Peers, token_rejected

# Delivery refused the run itself. An internal token it does not share (UNAUTHENTICATED,
# PERMISSION_DENIED) is not among these: that is configuration, and the hand-off goes
# on being retried until the operator fixes it.
_PERMANENT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
)
_STATE = {
    delivery_pb2.DELIVERY_RUN_STATE_PREPARING: RunState.PREPARING,
    delivery_pb2.DELIVERY_RUN_STATE_SENDING: RunState.SENDING,
    delivery_pb2.DELIVERY_RUN_STATE_DONE: RunState.DONE,
    delivery_pb2.DELIVERY_RUN_STATE_FAILED: RunState.FAILED,
    delivery_pb2.DELIVERY_RUN_STATE_CANCELLED: RunState.CANCELLED,
}
_RECIPIENT_STATUS = {
    common_pb2.DELIVERY_STATUS_UNSPECIFIED: RecipientStatus.PENDING,
    common_pb2.DELIVERY_STATUS_SENT: RecipientStatus.SENT,
    common_pb2.DELIVERY_STATUS_FAILED: RecipientStatus.FAILED,
    common_pb2.DELIVERY_STATUS_SUPPRESSED: RecipientStatus.SUPPRESSED,
    common_pb2.DELIVERY_STATUS_EXPIRED: RecipientStatus.EXPIRED,
}
_REASON_PREFIX = "DELIVERY_REASON_"
_FAILURE = {
    delivery_pb2.RUN_FAILURE_AUDIENCE_REFUSED: "the audience could not be resolved",
    delivery_pb2.RUN_FAILURE_AUDIENCE_UNAVAILABLE: "segment stayed unavailable",
}
# A preview reads the run's whole audience from segment (about 5 s per 100,000 members,
# docs/services/delivery.md): it gets a deadline of its own, room for some 5 million.
PREVIEW_TIMEOUT_SECONDS = 300.0
# StartDeliveryRun and the reads are idempotent: the channel may retry them itself.
DELIVERY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "clarion.delivery.v1.DeliveryService"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def _failed(
    peers: Peers, step: str, error: grpc.aio.AioRpcError, *, service: str = "delivery"
) -> PeerCallFailed:
    return PeerCallFailed(
        step,
        peers.call_failed(service, error),
        permanent=error.code() in _PERMANENT and not token_rejected(error),
    )


def _not_found(error: grpc.aio.AioRpcError, reason: str) -> bool:
    """Whether the peer said it has no such thing (NOT_FOUND with this reason, or with
    no ErrorInfo at all)."""
    if error.code() != grpc.StatusCode.NOT_FOUND:
        return False
    info = error_info(error)
    return info is None or info.reason == reason


async def _get_or_none(
    peers: Peers,
    call: Any,
    request: Any,
    site_id: str,
    step: str,
    *,
    service: str,
    reason: str = "",
) -> Any | None:
    """`call(request)`'s response for the site; None when the peer has no such thing
    (NOT_FOUND; with a `reason`, only with that reason or with no ErrorInfo at all)."""
    try:
        return await call(request, metadata=peers.metadata(site_id), timeout=peers.timeout)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND and (not reason or _not_found(error, reason)):
            return None
        raise _failed(peers, step, error, service=service) from None


def _view(message: delivery_pb2.DeliveryRun) -> DeliveryRunView:
    p = message.progress
    failure = _FAILURE.get(message.failure, "")
    if failure and message.failure_message:
        failure = f"{failure}: {message.failure_message}"
    return DeliveryRunView(
        run_id=message.run_id,
        state=_STATE.get(message.state, RunState.PREPARING),
        progress=RunProgress(
            resolved=p.resolved,
            queued=p.queued,
            sent=p.sent,
            failed=p.failed,
            suppressed=p.suppressed,
            expired=p.expired,
        ),
        failure_reason=failure,
        finish_time=message.finish_time.ToDatetime(tzinfo=UTC)
        if message.HasField("finish_time")
        else None,
        held_push_services=tuple(message.held_push_services),
    )


def _time(message: Any, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime; None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def _reason_word(reason: int) -> str:
    """A DeliveryReason as its stored word ("push_service_410"); "" for none, or for a
    value newer than this build."""
    if reason == common_pb2.DELIVERY_REASON_UNSPECIFIED:
        return ""
    try:
        name = common_pb2.DeliveryReason.Name(reason)
    except ValueError:
        return ""
    return name.removeprefix(_REASON_PREFIX).lower()


def _run_audience(run: RunRecord) -> delivery_pb2.RunAudience:
    audience = delivery_pb2.RunAudience()
    if run.recipients is not None:
        audience.profile_ids.extend(run.recipients.profile_ids)
        audience.subscriber_ids.extend(run.recipients.subscriber_ids)
        for profile_id, subscriber_id, properties in run.recipients.contexts:
            audience.contexts.add(
                profile_id=profile_id,
                subscriber_id="" if profile_id else subscriber_id,
                event_properties=[
                    profile_pb2.Property(name=name, value=triggers.property_value(value))
                    for name, value in triggers.event_properties_from_json(properties).items()
                ],
            )
    elif run.audience is not None:
        audience.selector.CopyFrom(run.audience)
    return audience


def _feed_event(item: segment_internal_service_pb2.FeedEvent) -> FeedEventView:
    event = item.event
    properties = {}
    for prop in event.properties:
        value = triggers.event_value(prop.value)
        if value is not None:
            properties[prop.name] = value
    return FeedEventView(
        event_id=event.event_id,
        name=event.name,
        profile_id=event.profile_id,
        subscriber_id=event.subscriber_id,
        occur_time=event.occur_time.ToDatetime(tzinfo=UTC),
        properties=properties,
    )


def _run_timing(run: RunRecord, default_timezone: str) -> delivery_pb2.RunTiming | None:
    if run.timing is None:
        return None
    given = timing.run_timing_from_json(run.timing)
    message = delivery_pb2.RunTiming(
        local_time=given.local_time,
        default_timezone=default_timezone,
        next_day_if_passed=given.next_day_if_passed,
    )
    if given.cut_off_time is not None:
        message.cut_off_time.FromDatetime(given.cut_off_time)
    return message


def _run_content(
    run: RunRecord, payload: bytes, options: RunContentOptions
) -> delivery_pb2.RunContent:
    return delivery_pb2.RunContent(
        payload=payload,
        ttl_seconds=run.ttl_seconds,
        urgency=URGENCY_TO_PROTO.get(run.urgency, common_pb2.URGENCY_NORMAL),
        profile_properties=options.profile_properties,
        suppress_missing_values=options.suppress_missing_values,
        missing_value_text=options.missing_value_text,
        browser_payloads=[
            delivery_pb2.BrowserPayload(browser=browser, payload=copy)  # type: ignore[arg-type]
            for browser, copy in sorted(options.browser_payloads.items())
        ],
        topic=options.topic,
    )


def _payload_title(payload: bytes) -> str:
    """The title of a run's PushPayload JSON as the site wrote it (campaign keeps its
    templates for delivery to render); "" when it has none."""
    if not payload:
        return ""
    try:
        title = json.loads(payload).get("title", "")
    except (ValueError, AttributeError):
        return ""
    return title if isinstance(title, str) else ""


def run_description(
    run: RunRecord, utm: campaign_pb2.UtmParameters | None = None
) -> common_pb2.RunDescription:
    """What reporting's webhooks say of the run: its notification title as written
    (with A/B variants each variant's, the title being the first's) and the campaign's
    UTM parameters (empty strings when it has none)."""
    description = common_pb2.RunDescription()
    if run.variants:
        titles = [(v.variant_id, _payload_title(v.payload)) for v in run.variants]
        description.notification_title = titles[0][1]
        description.variant_titles.extend(
            common_pb2.VariantTitle(variant_id=variant_id, notification_title=title)
            for variant_id, title in titles
        )
    else:
        description.notification_title = _payload_title(run.payload)
    if utm is not None:
        description.utm_source = utm.source
        description.utm_medium = utm.medium
        description.utm_campaign = utm.campaign
        description.utm_content = utm.content
        description.utm_term = utm.term
    return description


def start_run_request(
    run: RunRecord,
    default_timezone: str = "",
    policy: RunPolicy | None = None,
    utm: campaign_pb2.UtmParameters | None = None,
) -> delivery_service_pb2.StartDeliveryRunRequest:
    """What delivery is handed for the run: its content as fixed when it started (a run
    stored before the content options were kept sends its payload alone; an A/B test's
    each variant's instead, with its weight), audience (with its sample for a variant
    test's runs), timing, conversion goal, description (run_description, with `utm`)
    and the merged policy (left unset when it holds nothing)."""
    request = delivery_service_pb2.StartDeliveryRunRequest(
        run_id=run.run_id,
        campaign_id=run.campaign_id,
        audience=_run_audience(run),
        timing=_run_timing(run, default_timezone),
        test=run.test,
        description=run_description(run, utm),
    )
    if run.variants:
        request.variants.extend(
            delivery_pb2.RunVariant(
                variant_id=variant.variant_id,
                weight_percent=variant.weight_percent,
                content=_run_content(run, variant.payload, variant.options),
            )
            for variant in run.variants
        )
    else:
        request.content.CopyFrom(
            _run_content(run, run.payload, run.content_options or RunContentOptions())
        )
    if run.conversion_goal is not None:
        request.conversion_goal.CopyFrom(run.conversion_goal)
    if run.sample is not None:
        request.audience.sample.start_basis_points, request.audience.sample.end_basis_points = (
            run.sample
        )
    if policy is not None and policy != RunPolicy():
        request.policy.CopyFrom(
            delivery_pb2.RunPolicy(
                cap_per_day=policy.cap_per_day,
                cap_per_week=policy.cap_per_week,
                quiet_start=policy.quiet_start,
                quiet_end=policy.quiet_end,
                quiet_delay=policy.quiet_delay,
                campaign_max_per_minute=policy.campaign_max_per_minute,
                site_max_per_minute=policy.site_max_per_minute,
                control_group_percent=policy.control_group_percent,
                default_timezone=policy.default_timezone,
            )
        )
    return request


class GrpcDelivery:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> delivery_service_pb2_grpc.DeliveryServiceStub:
        channel = self._peers.channel(
            "delivery", options=[("grpc.service_config", DELIVERY_SERVICE_CONFIG)]
        )
        return delivery_service_pb2_grpc.DeliveryServiceStub(channel)

    async def start_run(
        self,
        run: RunRecord,
        default_timezone: str = "",
        policy: RunPolicy | None = None,
        utm: campaign_pb2.UtmParameters | None = None,
    ) -> DeliveryRunView:
        try:
            response = await self._stub().StartDeliveryRun(
                start_run_request(run, default_timezone, policy, utm),
                metadata=self._peers.metadata(run.site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed(self._peers, "delivery.StartDeliveryRun", error) from None
        return _view(response.delivery_run)

    async def get_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, DeliveryRunView]:
        try:
            response = await self._stub().BatchGetDeliveryRuns(
                delivery_service_pb2.BatchGetDeliveryRunsRequest(run_ids=list(run_ids)),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed(self._peers, "delivery.BatchGetDeliveryRuns", error) from None
        return {run.run_id: _view(run) for run in response.delivery_runs}

    async def cancel_run(self, site_id: str, run_id: str) -> DeliveryRunView:
        try:
            response = await self._stub().CancelDeliveryRun(
                delivery_service_pb2.CancelDeliveryRunRequest(run_id=run_id),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed(self._peers, "delivery.CancelDeliveryRun", error) from None
        return _view(response.delivery_run)

    async def recipient_outcome(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientOutcomeView | None:
        response = await _get_or_none(
            self._peers,
            self._stub().GetRecipientOutcome,
            delivery_service_pb2.GetRecipientOutcomeRequest(
                run_id=run_id, subscriber_id=subscriber_id
            ),
            site_id,
            "delivery.GetRecipientOutcome",
            service="delivery",
        )
        if response is None:
            return None
        outcome = response.outcome
        return RecipientOutcomeView(
            subscriber_id=outcome.subscriber_id,
            status=_RECIPIENT_STATUS.get(outcome.status, RecipientStatus.PENDING),
            reason=_reason_word(outcome.reason),
            attempts=outcome.attempts,
            finish_time=outcome.finish_time.ToDatetime(tzinfo=UTC)
            if outcome.HasField("finish_time")
            else None,
            variant=outcome.variant,
            attempt_history=tuple(
                AttemptView(
                    attempt_time=_time(attempt, "attempt_time"),
                    http_status=attempt.http_status,
                    reason=_reason_word(attempt.reason),
                    push_service=attempt.push_service,
                )
                for attempt in outcome.attempt_history
            ),
            queue_time=_time(outcome, "queue_time"),
        )

    async def preview_plan(
        self,
        run: RunRecord,
        default_timezone: str = "",
        policy: RunPolicy | None = None,
        *,
        variants: Sequence[tuple[str, int]] = (),
        sample: tuple[int, int] | None = None,
        start_after_seconds: int = 0,
    ) -> DeliveryPlanView:
        try:
            response = await self._stub().PreviewDeliveryPlan(
                preview_plan_request(
                    run,
                    default_timezone,
                    policy,
                    variants=variants,
                    sample=sample,
                    start_after_seconds=start_after_seconds,
                ),
                metadata=self._peers.metadata(run.site_id),
                # Delivery reads the whole audience from segment, page by page.
                timeout=self._peers.within_deadline(
                    max(self._peers.settings.rpc_timeout_seconds, PREVIEW_TIMEOUT_SECONDS)
                ),
            )
        except grpc.aio.AioRpcError as error:
            raise _failed(self._peers, "delivery.PreviewDeliveryPlan", error) from None
        return DeliveryPlanView(
            snapshot_time=response.snapshot_time.ToDatetime(tzinfo=UTC),
            audience=response.audience,
            rows=tuple(
                PlanRowView(
                    hour_start=row.hour_start.ToDatetime(tzinfo=UTC),
                    browser=row.browser,
                    variant_id=row.variant_id,
                    sent=row.sent,
                    suppressed={item.reason: item.count for item in row.suppressed},
                )
                for row in response.rows
            ),
        )


def preview_plan_request(
    run: RunRecord,
    default_timezone: str = "",
    policy: RunPolicy | None = None,
    *,
    variants: Sequence[tuple[str, int]] = (),
    sample: tuple[int, int] | None = None,
    start_after_seconds: int = 0,
) -> delivery_service_pb2.PreviewDeliveryPlanRequest:
    """The run's audience, timing, policy and TTL exactly as its hand-off would give
    them (start_run_request), with these variants' split and audience sample."""
    handed = start_run_request(run, default_timezone, policy)
    request = delivery_service_pb2.PreviewDeliveryPlanRequest(
        campaign_id=run.campaign_id,
        audience=handed.audience,
        ttl_seconds=run.ttl_seconds,
        variants=[
            delivery_pb2.RunVariant(variant_id=variant_id, weight_percent=weight)
            for variant_id, weight in variants
        ],
        start_after_seconds=start_after_seconds,
    )
    request.audience.ClearField("sample")
    if sample is not None:
        request.audience.sample.start_basis_points, request.audience.sample.end_basis_points = (
            sample
        )
    if handed.HasField("timing"):
        request.timing.CopyFrom(handed.timing)
    if handed.HasField("policy"):
        request.policy.CopyFrom(handed.policy)
    return request


# ValidateAudience only reads: the channel may retry it when segment is briefly away.
SEGMENT_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "clarion.segment.v1.SegmentInternalService"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


_SEGMENT_OPTIONS = [("grpc.service_config", SEGMENT_SERVICE_CONFIG)]


class GrpcSegment:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _internal(self) -> segment_internal_service_pb2_grpc.SegmentInternalServiceStub:
        return segment_internal_service_pb2_grpc.SegmentInternalServiceStub(
            self._peers.channel("segment", options=_SEGMENT_OPTIONS)
        )

    def _public(self) -> segment_service_pb2_grpc.SegmentServiceStub:
        return segment_service_pb2_grpc.SegmentServiceStub(
            self._peers.channel("segment", options=_SEGMENT_OPTIONS)
        )

    async def event_feed(
        self,
        site_id: str,
        cursor: str,
        event_names: Sequence[str],
        page_size: int,
        *,
        start_at_end: bool = False,
    ) -> FeedPageView:
        try:
            response = await self._internal().ListEventFeed(
                segment_internal_service_pb2.ListEventFeedRequest(
                    cursor=cursor,
                    page_size=page_size,
                    event_names=list(event_names),
                    start_at_end=start_at_end,
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            failure = _failed(self._peers, "segment.ListEventFeed", error, service="segment")
            raise failure from None
        return FeedPageView(
            events=[_feed_event(item) for item in response.events],
            next_cursor=response.next_cursor,
        )

    async def unseen_event_names(self, site_id: str, event_names: Sequence[str]) -> list[str]:
        try:
            response = await self._internal().CheckEventNames(
                segment_internal_service_pb2.CheckEventNamesRequest(
                    event_names=list(event_names)
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            failure = _failed(self._peers, "segment.CheckEventNames", error, service="segment")
            raise failure from None
        return list(response.unseen_event_names)

    async def match_person(
        self,
        site_id: str,
        audience: segment_pb2.AudienceSelector,
        *,
        profile_id: str = "",
        subscriber_id: str = "",
    ) -> PersonMatch:
        request = segment_service_pb2.MatchProfileRequest(audience=audience)
        if profile_id:
            request.profile_id = profile_id
        else:
            request.subscriber_id = subscriber_id
        try:
            response = await self._public().MatchProfile(
                request, metadata=self._peers.metadata(site_id), timeout=self._peers.timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND and error_info(error) is not None:
                reason = error_info(error).reason  # type: ignore[union-attr]
                if reason in ("PROFILE_NOT_FOUND", "SUBSCRIBER_NOT_FOUND"):
                    return PersonMatch(matches=False, reachable_subscriber_ids=())
            raise _failed(self._peers, "segment.MatchProfile", error, service="segment") from None
        return PersonMatch(
            matches=response.matches,
            reachable_subscriber_ids=tuple(response.reachable_subscriber_ids),
        )

    async def subscriber(self, site_id: str, subscriber_id: str) -> SubscriberView | None:
        response = await _get_or_none(
            self._peers,
            self._public().GetSubscriber,
            segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
            site_id,
            "segment.GetSubscriber",
            service="segment",
            reason="SUBSCRIBER_NOT_FOUND",
        )
        if response is None:
            return None
        found = response.subscriber
        keys = found.push_subscription
        return SubscriberView(
            subscriber_id=found.subscriber_id,
            active=found.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE,
            reachable=bool(keys.endpoint and keys.p256dh and keys.auth),
            unsubscribe_reason=found.unsubscribe_reason,
            create_time=_time(found, "create_time"),
            update_time=_time(found, "update_time"),
        )

    async def profile_subscriber_ids(self, site_id: str, profile_id: str) -> list[str] | None:
        response = await _get_or_none(
            self._peers,
            self._public().GetProfile,
            segment_service_pb2.GetProfileRequest(profile_id=profile_id),
            site_id,
            "segment.GetProfile",
            service="segment",
            reason="PROFILE_NOT_FOUND",
        )
        if response is None:
            return None
        return list(response.profile.subscriber_ids)

    async def validate_audience(
        self, site_id: str, audience: segment_pb2.AudienceSelector
    ) -> tuple[int, ...]:
        try:
            response = await self._internal().ValidateAudience(
                segment_internal_service_pb2.ValidateAudienceRequest(audience=audience),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                info = error_info(error)
                metadata = dict(info.metadata) if info is not None else {}
                not_found = code == grpc.StatusCode.NOT_FOUND
                default = "SEGMENT_NOT_FOUND" if not_found else "INVALID_AUDIENCE"
                raise AudienceRefused(
                    error.details() or default,
                    reason=(info.reason if info is not None and info.reason else default),
                    not_found=not_found,
                    field=metadata.get("field", "")
                    or ("audience.segment_id" if audience.HasField("segment_id") else ""),
                    segment_id=metadata.get("segment_id", "") or audience.segment_id,
                ) from None
            raise PeerCallFailed(
                "segment.ValidateAudience", self._peers.call_failed("segment", error)
            ) from None
        return tuple(response.possible_browsers)


# GetRunReport only reads: the channel may retry it when reporting is briefly away.
REPORTING_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "clarion.reporting.v1.ReportingService"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class GrpcReporting:
    """Reporting at CLARION_REPORTING_ADDRESS, called with the internal token naming the
    site."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> reporting_service_pb2_grpc.ReportingServiceStub:
        return reporting_service_pb2_grpc.ReportingServiceStub(
            self._peers.channel(
                "reporting", options=[("grpc.service_config", REPORTING_SERVICE_CONFIG)]
            )
        )

    async def run_variant_tallies(self, site_id: str, run_id: str) -> list[VariantTally]:
        try:
            response = await self._stub().GetRunReport(
                reporting_service_pb2.GetRunReportRequest(run_id=run_id),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND and not token_rejected(error):
                # Reporting has nothing of the run: nothing of it was sent.
                return []
            failure = _failed(self._peers, "reporting.GetRunReport", error, service="reporting")
            raise failure from None
        return [
            VariantTally(
                variant_id=variant.variant_id,
                sent=variant.sent,
                clicked=variant.clicked,
                conversions=variant.conversions,
            )
            for variant in response.report.variants
        ]

    async def recipient_activity(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> ActivityView | None:
        response = await _get_or_none(
            self._peers,
            self._stub().GetRecipientActivity,
            reporting_service_pb2.GetRecipientActivityRequest(
                run_id=run_id, subscriber_id=subscriber_id
            ),
            site_id,
            "reporting.GetRecipientActivity",
            service="reporting",
        )
        if response is None:
            return None  # reporting recorded nothing of the recipient
        activity = response.activity
        return ActivityView(
            viewed_time=_time(activity, "viewed_time"),
            clicked_time=_time(activity, "clicked_time"),
            clicked_button=activity.clicked_button,
            closed_time=_time(activity, "closed_time"),
            conversions=activity.conversions,
            revenue=activity.revenue,
            converted_time=_time(activity, "converted_time"),
        )
