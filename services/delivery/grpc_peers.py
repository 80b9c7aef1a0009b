"""The domain's ports over gRPC: campaign (site credentials), segment (unsubscribe) and
reporting (outcomes), each called with the internal token on behalf of the site."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import site_service_pb2, site_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.delivery.domain.ports import CredentialsUnavailable, SiteCredentials
from services.delivery.models import RecipientState
from services.delivery.store import ReportableOutcome
from services.kit.peers import Peers

DELIVERY_STATUS = {
    RecipientState.SENT: common_pb2.DELIVERY_STATUS_SENT,
    RecipientState.FAILED: common_pb2.DELIVERY_STATUS_FAILED,
    RecipientState.SUPPRESSED: common_pb2.DELIVERY_STATUS_SUPPRESSED,
    RecipientState.EXPIRED: common_pb2.DELIVERY_STATUS_EXPIRED,
}

# The site has no usable credentials: retrying will not help.
_PERMANENT = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


class GrpcSiteCredentials:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def site_credentials(self, site_id: str) -> SiteCredentials:
        stub = site_service_pb2_grpc.SiteServiceStub(self._peers.channel("campaign"))
        try:
            response = await stub.GetSiteCredentials(
                site_service_pb2.GetSiteCredentialsRequest(),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise CredentialsUnavailable(
                f"campaign.GetSiteCredentials: {error.code().name}: {error.details()}",
                permanent=error.code() in _PERMANENT,
            ) from None
        if not response.vapid_private_key:
            raise CredentialsUnavailable("the site has no VAPID key", permanent=True)
        return SiteCredentials(
            site_id=site_id,
            vapid_private_key=response.vapid_private_key,
            vapid_public_key=response.vapid_public_key,
            vapid_subject=response.vapid_subject,
        )


class GrpcSubscriberPruner:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def unsubscribe(self, site_id: str, subscriber_id: str, reason: str) -> None:
        stub = segment_service_pb2_grpc.SegmentServiceStub(self._peers.channel("segment"))
        try:
            await stub.UnsubscribeSubscriber(
                segment_service_pb2.UnsubscribeSubscriberRequest(
                    subscriber_id=subscriber_id, reason=reason
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:  # already gone is fine
                raise


class GrpcOutcomeSink:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def record_outcomes(self, site_id: str, outcomes: Sequence[ReportableOutcome]) -> None:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(self._peers.channel("reporting"))
        await stub.RecordDeliveryOutcomes(
            reporting_service_pb2.RecordDeliveryOutcomesRequest(
                outcomes=[_outcome(o) for o in outcomes]
            ),
            metadata=self._peers.metadata(site_id),
            timeout=self._peers.timeout,
        )


def _outcome(outcome: ReportableOutcome) -> reporting_pb2.DeliveryOutcome:
    occur_time = Timestamp()
    occur_time.FromDatetime(outcome.finish_time)
    return reporting_pb2.DeliveryOutcome(
        run_id=outcome.run_id,
        campaign_id=outcome.campaign_id,
        subscriber_id=outcome.subscriber_id,
        status=DELIVERY_STATUS[outcome.state],
        reason=outcome.reason,
        browser=outcome.browser,  # type: ignore[arg-type]
        occur_time=occur_time,
    )
