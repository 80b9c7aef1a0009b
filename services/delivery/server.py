"""The delivery service's gRPC adapter: proto <-> domain, and the server factory."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from services.delivery.domain.encryptor import create_encryptor
from services.delivery.domain.runs import DeliveryRuns, Notification, RecipientInput, RunWithCounts
from services.delivery.domain.worker import DeliveryWorkers
from services.delivery.grpc_peers import (
    DELIVERY_STATUS,
    GrpcOutcomeSink,
    GrpcSiteCredentials,
    GrpcSubscriberPruner,
)
from services.delivery.models import RecipientState, RunState
from services.delivery.store import DeliveryStore, RecipientView
from services.kit.auth import SiteResolver, current_site_id
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, build_service_server, open_service_database
from services.kit.peers import Peers
from services.kit.sites import remote_site_resolver

SERVICE_FULL_NAME = delivery_service_pb2.DESCRIPTOR.services_by_name["DeliveryService"].full_name

_URGENCY = {
    common_pb2.URGENCY_UNSPECIFIED: None,
    common_pb2.URGENCY_VERY_LOW: "very-low",
    common_pb2.URGENCY_LOW: "low",
    common_pb2.URGENCY_NORMAL: "normal",
    common_pb2.URGENCY_HIGH: "high",
}
_RUN_STATE = {
    RunState.QUEUEING: delivery_pb2.DELIVERY_RUN_STATE_QUEUEING,
    RunState.SENDING: delivery_pb2.DELIVERY_RUN_STATE_SENDING,
    RunState.DONE: delivery_pb2.DELIVERY_RUN_STATE_DONE,
}


def _timestamp(value) -> Timestamp | None:  # type: ignore[no-untyped-def]
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _run_message(found: RunWithCounts) -> delivery_pb2.DeliveryRun:
    run, counts = found.run, found.counts
    return delivery_pb2.DeliveryRun(
        run_id=run.run_id,
        campaign_id=run.campaign_id,
        state=_RUN_STATE[run.state],
        total=counts.total,
        pending=counts.pending,
        sent=counts.sent,
        failed=counts.failed,
        suppressed=counts.suppressed,
        expired=counts.expired,
        create_time=_timestamp(run.create_time),
        finish_time=_timestamp(run.finish_time),
    )


def _outcome_message(view: RecipientView) -> delivery_pb2.RecipientOutcome:
    if view.state is RecipientState.PENDING:
        # Not terminal yet: say whether it waits for a first try or for a retry, and why.
        status = common_pb2.DELIVERY_STATUS_UNSPECIFIED
        reason = f"pending_retry:{view.reason}" if view.reason else "pending"
    else:
        status, reason = DELIVERY_STATUS[view.state], view.reason
    return delivery_pb2.RecipientOutcome(
        subscriber_id=view.subscriber_id,
        status=status,
        reason=reason,
        attempts=view.attempts,
        finish_time=_timestamp(view.finish_time),
    )


class DeliveryServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    def __init__(self, runs: DeliveryRuns) -> None:
        self._runs = runs

    async def CreateDeliveryRun(
        self,
        request: delivery_service_pb2.CreateDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.CreateDeliveryRunResponse:
        n = request.notification
        found = await self._runs.create(
            current_site_id(),
            request.run_id,
            request.campaign_id,
            Notification(
                title=n.title,
                body=n.body,
                icon_url=n.icon_url,
                image_url=n.image_url,
                target_url=n.target_url,
            ),
            request.ttl_seconds,
            # An enum value this build does not know fails validation.
            _URGENCY.get(request.urgency, f"unknown({request.urgency})"),
        )
        return delivery_service_pb2.CreateDeliveryRunResponse(delivery_run=_run_message(found))

    async def EnqueueRecipients(
        self,
        request: delivery_service_pb2.EnqueueRecipientsRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.EnqueueRecipientsResponse:
        recipients = [
            RecipientInput(
                subscriber_id=r.subscriber_id,
                endpoint=r.push_subscription.endpoint,
                p256dh=r.push_subscription.p256dh,
                auth=r.push_subscription.auth,
                browser=r.browser,
            )
            for r in request.recipients
        ]
        queued = await self._runs.enqueue(current_site_id(), request.run_id, recipients)
        return delivery_service_pb2.EnqueueRecipientsResponse(queued=queued)

    async def StartDeliveryRun(
        self,
        request: delivery_service_pb2.StartDeliveryRunRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.StartDeliveryRunResponse:
        found = await self._runs.start(current_site_id(), request.run_id)
        return delivery_service_pb2.StartDeliveryRunResponse(delivery_run=_run_message(found))

    async def GetDeliveryRun(
        self, request: delivery_service_pb2.GetDeliveryRunRequest, context: grpc.aio.ServicerContext
    ) -> delivery_service_pb2.GetDeliveryRunResponse:
        found = await self._runs.get(current_site_id(), request.run_id)
        return delivery_service_pb2.GetDeliveryRunResponse(delivery_run=_run_message(found))

    async def GetRecipientOutcome(
        self,
        request: delivery_service_pb2.GetRecipientOutcomeRequest,
        context: grpc.aio.ServicerContext,
    ) -> delivery_service_pb2.GetRecipientOutcomeResponse:
        view = await self._runs.recipient_outcome(
            current_site_id(), request.run_id, request.subscriber_id
        )
        return delivery_service_pb2.GetRecipientOutcomeResponse(outcome=_outcome_message(view))


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
    peers = peers or Peers(settings)
    encryptor = create_encryptor(settings.encryptor)  # fail fast on a missing native build
    engine = await open_service_database("delivery", settings)
    store = DeliveryStore(engine)
    workers = DeliveryWorkers(
        settings,
        store,
        encryptor,
        credentials=GrpcSiteCredentials(peers),
        pruner=GrpcSubscriberPruner(peers),
        outcomes=GrpcOutcomeSink(peers),
        clock=clock,
    )
    servicer = DeliveryServicer(DeliveryRuns(settings, store, clock))
    return build_service_server(
        address,
        settings,
        register=[
            lambda server: delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(
                servicer, server
            )
        ],
        service_names=[SERVICE_FULL_NAME],
        engine=engine,
        peers=peers,
        site_resolver=site_resolver or remote_site_resolver(peers),
        on_start=[workers.start],
        on_stop=[workers.stop],
    )
