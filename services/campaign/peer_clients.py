"""The domain's peer ports over gRPC: segment streams the audience, delivery queues it,
reporting records its size. Every failed call becomes a PeerCallFailed naming the step."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import grpc

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.campaign.domain.ports import PeerCallFailed, Recipient
from services.campaign.store import CampaignRecord
from services.campaign.wire import URGENCY_TO_PROTO, notification_to_proto
from services.kit.peers import Peers

# The audience stream stays open while each page is queued in delivery (every
# EnqueueRecipients call has its own deadline), so it gets a run-sized deadline.
AUDIENCE_STREAM_DEADLINE_FACTOR = 60


def _failed(step: str, error: grpc.aio.AioRpcError) -> PeerCallFailed:
    return PeerCallFailed(step, f"{error.code().name}: {error.details() or 'no details'}")


class GrpcAudienceSource:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def reachable_pages(
        self, site_id: str, page_size: int
    ) -> AsyncGenerator[Sequence[Recipient], None]:
        step = "segment.StreamReachableSubscribers"
        stub = segment_service_pb2_grpc.SegmentServiceStub(self._peers.channel("segment"))
        call = stub.StreamReachableSubscribers(
            segment_service_pb2.StreamReachableSubscribersRequest(page_size=page_size),
            metadata=self._peers.metadata(site_id),
            timeout=self._peers.timeout * AUDIENCE_STREAM_DEADLINE_FACTOR,
        )
        try:
            while True:
                try:
                    response = await call.read()
                except grpc.aio.AioRpcError as error:
                    raise _failed(step, error) from error
                if response is grpc.aio.EOF:
                    return
                yield [
                    Recipient(
                        subscriber_id=subscriber.subscriber_id,
                        endpoint=subscriber.push_subscription.endpoint,
                        p256dh=subscriber.push_subscription.p256dh,
                        auth=subscriber.push_subscription.auth,
                        browser=subscriber.browser,
                    )
                    for subscriber in response.subscribers
                ]
        finally:
            call.cancel()  # no-op when the stream ended; stops segment when we gave up


class GrpcDeliveryQueue:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> delivery_service_pb2_grpc.DeliveryServiceStub:
        return delivery_service_pb2_grpc.DeliveryServiceStub(self._peers.channel("delivery"))

    async def open_run(self, site_id: str, run_id: str, campaign: CampaignRecord) -> None:
        request = delivery_service_pb2.CreateDeliveryRunRequest(
            run_id=run_id,
            campaign_id=campaign.campaign_id,
            notification=notification_to_proto(campaign.notification),
            ttl_seconds=campaign.ttl_seconds,
            urgency=URGENCY_TO_PROTO[campaign.urgency],
        )
        try:
            await self._stub().CreateDeliveryRun(
                request, metadata=self._peers.metadata(site_id), timeout=self._peers.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("delivery.CreateDeliveryRun", error) from error

    async def enqueue(self, site_id: str, run_id: str, recipients: Sequence[Recipient]) -> None:
        request = delivery_service_pb2.EnqueueRecipientsRequest(
            run_id=run_id,
            recipients=[
                delivery_pb2.Recipient(
                    subscriber_id=recipient.subscriber_id,
                    push_subscription=common_pb2.PushSubscription(
                        endpoint=recipient.endpoint, p256dh=recipient.p256dh, auth=recipient.auth
                    ),
                    browser=recipient.browser,  # type: ignore[arg-type]
                )
                for recipient in recipients
            ],
        )
        try:
            await self._stub().EnqueueRecipients(
                request, metadata=self._peers.metadata(site_id), timeout=self._peers.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("delivery.EnqueueRecipients", error) from error

    async def start(self, site_id: str, run_id: str) -> None:
        try:
            await self._stub().StartDeliveryRun(
                delivery_service_pb2.StartDeliveryRunRequest(run_id=run_id),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("delivery.StartDeliveryRun", error) from error

    async def started(self, site_id: str, run_id: str) -> bool:
        try:
            response = await self._stub().GetDeliveryRun(
                delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise _failed("delivery.GetDeliveryRun", error) from error
        return response.delivery_run.state in (
            delivery_pb2.DELIVERY_RUN_STATE_SENDING,
            delivery_pb2.DELIVERY_RUN_STATE_DONE,
        )


class GrpcRunAudienceRecorder:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def record_audience(
        self, site_id: str, run_id: str, campaign_id: str, audience: int
    ) -> None:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(self._peers.channel("reporting"))
        try:
            await stub.RecordRunAudience(
                reporting_service_pb2.RecordRunAudienceRequest(
                    run_id=run_id, campaign_id=campaign_id, audience=audience
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("reporting.RecordRunAudience", error) from error
