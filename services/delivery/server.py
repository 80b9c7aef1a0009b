"""The delivery service's gRPC adapter: proto <-> domain, and the server factory."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from yarl import URL

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from services.delivery.adapters.apns_sender import ApnsSender
from services.delivery.adapters.encryptors import create_encryptor
from services.delivery.adapters.grpc_peers import (
    DELIVERY_STATUS,
    GrpcApnsCredentials,
    GrpcAudience,
    GrpcOutcomeSink,
    GrpcSiteCredentials,
    GrpcSubscriberPruner,
    reason_enum,
    timestamp,
)
from services.delivery.adapters.http_sender import PushSender
from services.delivery.adapters.native_sender import NativePushSender
from services.delivery.adapters.rate_limits import OriginRateLimits
from services.delivery.domain.clicks import DeliveryClicks
from services.delivery.domain.policies import policy_from_proto, policy_to_json
from services.delivery.domain.ports import PushTransport
from services.delivery.domain.preview import DeliveryPreviews, Preview, PreviewRequest
from services.delivery.domain.runs import DeliveryRuns, RunRequest, RunWithCounts, VariantRequest
from services.delivery.domain.worker import DeliveryWorkers
from services.delivery.models import RecipientState, RunFailure, RunState
from services.delivery.settings import DeliverySettings, delivery_settings
from services.delivery.store import DeliveryStore, Hold, RecipientView
from services.kit.auth import SiteResolver, required_site_id
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.egress import EgressPolicy
from services.kit.grpcserver import ManagedServer, build_service_server, open_service_database
from services.kit.metrics import GaugeRefresher, push_service_label, set_delivery_queue
from services.kit.peers import Peers
from services.siteclient import remote_site_resolver

SERVICE_FULL_NAME = delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name
# The whole service is for campaign: a site key must not make delivery send anywhere,
# and sites read their runs (and why a subscriber got one or not) through campaign.
INTERNAL_SERVICES = (SERVICE_FULL_NAME,)

_URGENCY = {
    common_pb2.URGENCY_UNSPECIFIED: "normal",
    common_pb2.URGENCY_VERY_LOW: "very-low",
    common_pb2.URGENCY_LOW: "low",
    common_pb2.URGENCY_NORMAL: "normal",
    common_pb2.URGENCY_HIGH: "high",
}
_RUN_STATE = {
    RunState.PREPARING: delivery_pb2.DELIVERY_RUN_STATE_PREPARING,
    RunState.SENDING: delivery_pb2.DELIVERY_RUN_STATE_SENDING,
    RunState.DONE: delivery_pb2.DELIVERY_RUN_STATE_DONE,
    RunState.FAILED: delivery_pb2.DELIVERY_RUN_STATE_FAILED,
    RunState.CANCELLED: delivery_pb2.DELIVERY_RUN_STATE_CANCELLED,
}
_RUN_FAILURE = {
    RunFailure.AUDIENCE_REFUSED: delivery_pb2.RUN_FAILURE_AUDIENCE_REFUSED,
    RunFailure.AUDIENCE_UNAVAILABLE: delivery_pb2.RUN_FAILURE_AUDIENCE_UNAVAILABLE,
}


def _selector(audience: delivery_pb2.RunAudience) -> bytes:
    """The run's audience selector as delivery keeps it: serialized, or b"" when it names
    neither a segment nor a definition (every reachable subscriber)."""
    if not audience.HasField("selector") or audience.selector.WhichOneof("kind") is None:
        return b""
    return audience.selector.SerializeToString(deterministic=True)


def _variants(variants: Sequence[delivery_pb2.RunVariant]) -> list[VariantRequest]:
    """StartDeliveryRunRequest.variants for the domain (each urgency as its header value)."""
    return [
        VariantRequest(
            variant_id=v.variant_id,
            weight_percent=v.weight_percent,
            payload=v.content.payload,
            ttl_seconds=v.content.ttl_seconds,
            urgency=_URGENCY.get(v.content.urgency),
            content=v.content,
        )
        for v in variants
    ]


def run_policy_json(policy: delivery_pb2.RunPolicy | None) -> str:
    """The RunPolicy as delivery_runs.policy keeps it (domain/policies.py reads it back):
    compact JSON of the proto with its field names; "" when unset or all defaults."""
    if policy is None:
        return ""
    # Refused here (INVALID_QUIET_HOURS) rather than when a worker reads it back.
    policy_from_proto(policy)
    return policy_to_json(policy)


def _run_message(found: RunWithCounts) -> delivery_pb2.DeliveryRun:
    run, counts = found.run, found.counts
    return delivery_pb2.DeliveryRun(
        run_id=run.run_id,
        campaign_id=run.campaign_id,
        state=_RUN_STATE[run.state],
        progress=delivery_pb2.RunProgress(
            resolved=run.resolved,
            queued=run.queued,
            pending=counts.pending,
            sent=counts.sent,
            failed=counts.failed,
            suppressed=counts.suppressed,
            expired=counts.expired,
        ),
        failure=_RUN_FAILURE[run.failure] if run.failure else delivery_pb2.RUN_FAILURE_UNSPECIFIED,
        failure_message=run.failure_message,
        create_time=timestamp(run.create_time),
        prepare_time=timestamp(run.prepare_time),
        finish_time=timestamp(run.finish_time),
        held_push_services=[held_push_service(hold) for hold in found.holds],
    )


def held_push_service(hold: Hold) -> common_pb2.HeldPushService:
    return common_pb2.HeldPushService(
        push_service=_host(hold.push_service),
        reason=common_pb2.DELIVERY_REASON_PUSH_SERVICE_AUTH,
        http_status=hold.http_status,
        detail=hold.detail,
        since=timestamp(hold.since),
        next_probe_time=timestamp(hold.next_probe_time),
    )


def _host(origin: str) -> str:
    """A push service's host (as attempt histories name it), from its origin."""
    return URL(origin).host or origin


def _outcome_message(view: RecipientView) -> delivery_pb2.RecipientOutcome:
    status = (
        common_pb2.DELIVERY_STATUS_UNSPECIFIED
        if view.state is RecipientState.PENDING
        else DELIVERY_STATUS[view.state]
    )
    return delivery_pb2.RecipientOutcome(
        subscriber_id=view.subscriber_id,
        status=status,
        reason=reason_enum(view.reason),  # type: ignore[arg-type]
        attempts=view.attempts,
        finish_time=timestamp(view.finish_time),
        variant=view.variant,
        due_time=timestamp(view.due_time),
        attempt_history=[
            common_pb2.DeliveryAttempt(
                attempt_time=timestamp(attempt.attempt_time),
                http_status=attempt.http_status,
                reason=reason_enum(attempt.reason),  # type: ignore[arg-type]
                push_service=attempt.push_service,
            )
            for attempt in view.attempt_history
        ],
        queue_time=timestamp(view.queue_time),
    )


def _preview_message(preview: Preview) -> delivery_service_pb2.PreviewDeliveryPlanResponse:
    plan = preview.plan
    return delivery_service_pb2.PreviewDeliveryPlanResponse(
        snapshot_time=timestamp(preview.snapshot_time),
        audience=plan.audience,
        rows=[
            delivery_pb2.PlanRow(
                hour_start=timestamp(hour),
                browser=browser,  # type: ignore[arg-type]
                variant_id=variant,
                sent=cell.sent,
                suppressed=sorted(
                    (
                        delivery_pb2.PlanSuppression(reason=reason_enum(reason), count=count)  # type: ignore[arg-type]
                        for reason, count in cell.suppressed.items()
                    ),
                    key=lambda item: item.reason,
                ),
            )
            for (hour, browser, variant), cell in plan.rows()
        ],
    )


class DeliveryServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    def __init__(
        self,
        runs: DeliveryRuns,
        workers: DeliveryWorkers,
        previews: DeliveryPreviews,
        clicks: DeliveryClicks | None = None,
    ) -> None:
        self._runs = runs
        self._workers = workers
        self._previews = previews
        self._clicks = clicks

    async def StartDeliveryRun(
        self,
        request: delivery_service_pb2.StartDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.StartDeliveryRunResponse:
        content = request.content
        found, created = await self._runs.start(
            required_site_id(),
            RunRequest(
                run_id=request.run_id,
                campaign_id=request.campaign_id,
                payload=content.payload,
                ttl_seconds=content.ttl_seconds,
                urgency=_URGENCY.get(content.urgency),
                subscriber_ids=list(request.audience.subscriber_ids),
                selector=_selector(request.audience),
                profile_ids=list(request.audience.profile_ids),
                timing=request.timing if request.HasField("timing") else None,
                content=content,
                contexts=request.audience.contexts,
                policy=run_policy_json(request.policy if request.HasField("policy") else None),
                test=request.test,
                variants=_variants(request.variants),
                sample=request.audience.sample if request.audience.HasField("sample") else None,
                conversion_goal=(
                    request.conversion_goal if request.HasField("conversion_goal") else None
                ),
                description=request.description if request.HasField("description") else None,
            ),
        )
        if created:
            self._workers.run_started()
        return delivery_service_pb2.StartDeliveryRunResponse(delivery_run=_run_message(found))

    async def GetDeliveryRun(
        self, request: delivery_service_pb2.GetDeliveryRunRequest, context: grpc.aio.ServicerContext
    ) -> delivery_service_pb2.GetDeliveryRunResponse:
        found = await self._runs.get(required_site_id(), request.run_id)
        return delivery_service_pb2.GetDeliveryRunResponse(delivery_run=_run_message(found))

    async def BatchGetDeliveryRuns(
        self,
        request: delivery_service_pb2.BatchGetDeliveryRunsRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.BatchGetDeliveryRunsResponse:
        found = await self._runs.get_many(required_site_id(), list(request.run_ids))
        return delivery_service_pb2.BatchGetDeliveryRunsResponse(
            delivery_runs=[_run_message(f) for f in found]
        )

    async def GetRecipientOutcome(
        self,
        request: delivery_service_pb2.GetRecipientOutcomeRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.GetRecipientOutcomeResponse:
        view = await self._runs.recipient_outcome(
            required_site_id(), request.run_id, request.subscriber_id
        )
        return delivery_service_pb2.GetRecipientOutcomeResponse(outcome=_outcome_message(view))

    async def CancelDeliveryRun(
        self,
        request: delivery_service_pb2.CancelDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.CancelDeliveryRunResponse:
        found, cancelled = await self._runs.cancel(required_site_id(), request.run_id)
        if cancelled:
            self._workers.run_cancelled()
        return delivery_service_pb2.CancelDeliveryRunResponse(
            delivery_run=_run_message(found), cancelled=cancelled
        )

    async def PreviewDeliveryPlan(
        self,
        request: delivery_service_pb2.PreviewDeliveryPlanRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.PreviewDeliveryPlanResponse:
        audience = request.audience
        preview = await self._previews.preview(
            required_site_id(),
            PreviewRequest(
                campaign_id=request.campaign_id,
                ttl_seconds=request.ttl_seconds,
                subscriber_ids=list(audience.subscriber_ids),
                profile_ids=list(audience.profile_ids),
                selector=_selector(audience),
                sample=audience.sample if audience.HasField("sample") else None,
                contexts=audience.contexts,
                timing=request.timing if request.HasField("timing") else None,
                policy=request.policy if request.HasField("policy") else None,
                # Only the split is planned: the variants' content is not rendered.
                variants=[(v.variant_id, v.weight_percent) for v in request.variants],
                start_after_seconds=request.start_after_seconds,
            ),
        )
        return _preview_message(preview)

    async def ResolveClickTarget(
        self,
        request: delivery_service_pb2.ResolveClickTargetRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.ResolveClickTargetResponse:
        assert self._clicks is not None, "create_server gives the servicer its clicks"
        target = await self._clicks.target(
            required_site_id(), request.run_id, request.subscriber_id, request.button
        )
        return delivery_service_pb2.ResolveClickTargetResponse(
            url=target.url,
            action=target.action,
            sent=target.sent,
            sent_time=timestamp(target.sent_time),
            campaign_id=target.campaign_id,
        )


def create_push_sender(settings: DeliverySettings) -> PushTransport:
    policy = EgressPolicy.from_settings(settings)
    if settings.push_transport == "aiohttp":
        return PushSender(settings.delivery_concurrency, settings.push_timeout_seconds, policy)
    try:
        return NativePushSender(
            settings.push_timeout_seconds, policy, threads=settings.push_transport_threads
        )
    except ImportError as error:
        raise RuntimeError(
            "the native push transport (encrypt_rs) is not installed: build it with "
            "`make install`, or set CLARION_PUSH_TRANSPORT=aiohttp"
        ) from error


async def create_delivery(
    settings: Settings, *, clock: Clock | None = None, peers: Peers | None = None
) -> tuple[DeliveryStore, DeliveryWorkers, Peers, object]:
    """The service's parts without the gRPC server (tests drive the workers directly)."""
    settings = delivery_settings(settings)
    clock = clock or SystemClock()
    peers = peers or Peers(settings)
    encryptor = create_encryptor(settings.encryptor)  # fail fast on a missing native build
    engine = await open_service_database("delivery", settings)
    store = DeliveryStore(engine)
    workers = DeliveryWorkers(
        settings,
        store,
        encryptor,
        create_push_sender(settings),
        credentials=GrpcSiteCredentials(peers),
        audience=GrpcAudience(peers),
        pruner=GrpcSubscriberPruner(peers),
        outcomes=GrpcOutcomeSink(peers),
        clock=clock,
        # Every push service's rate adapts to its 429s (the configured rate, if any,
        # is its ceiling).
        rates=OriginRateLimits(
            settings.delivery_origin_rate_per_second,
            floor=settings.delivery_origin_rate_floor,
            label=push_service_label,
        ),
        # Legacy Safari: APNs at CLARION_APNS_URL (Apple's, or a stand-in).
        apns=ApnsSender.from_settings(settings, clock),
        apns_credentials=GrpcApnsCredentials(peers),
    )
    return store, workers, peers, engine


async def create_server(
    address: str,
    settings: Settings,
    *,
    clock: Clock | None = None,
    site_resolver: SiteResolver | None = None,
    peers: Peers | None = None,
) -> ManagedServer:
    """The delivery server (not yet started); its workers run between start() and stop()."""
    clock = clock or SystemClock()
    store, workers, peers, engine = await create_delivery(settings, clock=clock, peers=peers)
    previews = DeliveryPreviews(
        store, GrpcAudience(peers), clock, delivery_settings(settings).delivery_prepare_page_size
    )
    servicer = DeliveryServicer(
        DeliveryRuns(store, clock), workers, previews, clicks=DeliveryClicks(store)
    )

    async def refresh_queue_gauges() -> None:
        now = clock.now()
        set_delivery_queue(*await store.queue_stats(now), now)

    queue_gauges = GaugeRefresher(
        "delivery-queue-gauges", refresh_queue_gauges, settings.metrics_refresh_seconds
    )
    return build_service_server(
        address,
        settings,
        register=[
            lambda server: delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(
                servicer, server
            )
        ],
        service_names=[SERVICE_FULL_NAME],
        engine=engine,  # type: ignore[arg-type]
        peers=peers,
        site_resolver=site_resolver or remote_site_resolver(peers),
        internal_services=INTERNAL_SERVICES,
        on_start=[workers.start, queue_gauges.start],
        on_stop=[queue_gauges.stop, workers.stop, store.close],
    )
