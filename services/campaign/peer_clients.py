"""The domain's delivery port over gRPC. Every failed call becomes a PeerCallFailed
naming the step; the hand-off is idempotent, so the channel retries it (gRPC retry
policy) and the background loop calls it again until it lands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC

import grpc

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from services.campaign.domain.ports import DeliveryRunView, PeerCallFailed
from services.campaign.store import RunProgress, RunRecord, RunState
from services.campaign.wire import URGENCY_TO_PROTO
from services.kit.peers import Peers

_PERMANENT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
)
_STATE = {
    delivery_pb2.DELIVERY_RUN_STATE_PREPARING: RunState.PREPARING,
    delivery_pb2.DELIVERY_RUN_STATE_SENDING: RunState.SENDING,
    delivery_pb2.DELIVERY_RUN_STATE_DONE: RunState.DONE,
    delivery_pb2.DELIVERY_RUN_STATE_FAILED: RunState.FAILED,
}
_FAILURE = {
    delivery_pb2.RUN_FAILURE_AUDIENCE_REFUSED: "the audience could not be resolved",
    delivery_pb2.RUN_FAILURE_AUDIENCE_UNAVAILABLE: "segment stayed unavailable",
}
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


def _failed(step: str, error: grpc.aio.AioRpcError) -> PeerCallFailed:
    return PeerCallFailed(
        step,
        f"{error.code().name}: {error.details() or 'no details'}",
        permanent=error.code() in _PERMANENT,
    )


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
    )


class GrpcDelivery:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> delivery_service_pb2_grpc.DeliveryServiceStub:
        channel = self._peers.channel(
            "delivery", options=[("grpc.service_config", DELIVERY_SERVICE_CONFIG)]
        )
        return delivery_service_pb2_grpc.DeliveryServiceStub(channel)

    async def start_run(self, run: RunRecord) -> DeliveryRunView:
        try:
            response = await self._stub().StartDeliveryRun(
                delivery_service_pb2.StartDeliveryRunRequest(
                    run_id=run.run_id,
                    campaign_id=run.campaign_id,
                    content=delivery_pb2.RunContent(
                        payload=run.payload,
                        ttl_seconds=run.ttl_seconds,
                        urgency=URGENCY_TO_PROTO.get(run.urgency, common_pb2.URGENCY_NORMAL),
                    ),
                    audience=delivery_pb2.RunAudience(),
                ),
                metadata=self._peers.metadata(run.site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("delivery.StartDeliveryRun", error) from None
        return _view(response.delivery_run)

    async def get_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, DeliveryRunView]:
        try:
            response = await self._stub().BatchGetDeliveryRuns(
                delivery_service_pb2.BatchGetDeliveryRunsRequest(run_ids=list(run_ids)),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _failed("delivery.BatchGetDeliveryRuns", error) from None
        return {run.run_id: _view(run) for run in response.delivery_runs}
