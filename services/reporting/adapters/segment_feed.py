"""The conversion follower's event feed port over gRPC: segment's
SegmentInternalService.ListEventFeed, with the internal token naming the site."""

from __future__ import annotations

import math
from datetime import UTC

import grpc

from clarion.segment.v1 import segment_internal_service_pb2, segment_internal_service_pb2_grpc
from services.kit.errors import error_info
from services.kit.peers import Peers
from services.reporting.domain.conversions import (
    CursorRefused,
    FeedUnavailable,
    GoalEvent,
    GoalEventPage,
)


def _goal_event(item: segment_internal_service_pb2.FeedEvent) -> GoalEvent:
    event = item.event
    numbers = {
        prop.name: prop.value.number_value
        for prop in event.properties
        if prop.value.WhichOneof("kind") == "number_value"
        and math.isfinite(prop.value.number_value)
    }
    return GoalEvent(
        event_id=event.event_id,
        profile_id=event.profile_id,
        occur_time=event.occur_time.ToDatetime(tzinfo=UTC),
        receive_time=item.receive_time.ToDatetime(tzinfo=UTC),
        numbers=numbers,
        subscriber_id=event.subscriber_id,
    )


class GrpcEventFeed:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def read(
        self,
        site_id: str,
        event_name: str,
        cursor: str,
        page_size: int,
        *,
        start_at_end: bool = False,
    ) -> GoalEventPage:
        stub = segment_internal_service_pb2_grpc.SegmentInternalServiceStub(
            self._peers.channel("segment")
        )
        try:
            response = await stub.ListEventFeed(
                segment_internal_service_pb2.ListEventFeedRequest(
                    cursor=cursor,
                    page_size=page_size,
                    event_names=[event_name],
                    start_at_end=start_at_end,
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            if info is not None and info.reason == "INVALID_CURSOR":
                raise CursorRefused(cursor) from None
            raise FeedUnavailable(self._peers.call_failed("segment", error)) from None
        return GoalEventPage(
            events=[_goal_event(item) for item in response.events],
            next_cursor=response.next_cursor,
        )
