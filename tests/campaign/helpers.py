"""Small helpers for the campaign suite."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from services.kit.config import Settings
from services.kit.errors import error_info

T = TypeVar("T")
Stub = campaign_service_pb2_grpc.CampaignServiceStub
Metadata = tuple[tuple[str, str], ...]


def closed_port_address() -> str:
    """An address nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def internal(settings: Settings, site_id: str = "") -> tuple[tuple[str, str], ...]:
    """Metadata of a Clarion service calling on behalf of `site_id` (or of no site)."""
    metadata = [("authorization", f"Bearer {settings.internal_token_value}")]
    if site_id:
        metadata.append(("x-clarion-site-id", site_id))
    return tuple(metadata)


def reason(error: grpc.aio.AioRpcError) -> str:
    info = error_info(error)
    return info.reason if info is not None else ""


def field(error: grpc.aio.AioRpcError) -> str:
    """The request field an INVALID_ARGUMENT names in its ErrorInfo."""
    info = error_info(error)
    return info.metadata.get("field", "") if info is not None else ""


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Calls `probe` until `done(result)`, at most `timeout` seconds; returns the result."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last seen: {value!r}")
        await asyncio.sleep(interval)


async def new_campaign(
    stub: Stub, auth: Metadata, title: str = "Hello", **fields: object
) -> campaign_pb2.Campaign:
    response = await stub.CreateCampaign(
        pb.CreateCampaignRequest(
            notification=common_pb2.Notification(title=title, target_url="https://a.example/"),
            **fields,  # type: ignore[arg-type]
        ),
        metadata=auth,
        timeout=30,
    )
    return response.campaign


async def send_now(
    stub: Stub, auth: Metadata, campaign_id: str, request_id: str = "", timeout: float = 30
) -> campaign_pb2.Run:
    response = await stub.SendCampaignNow(
        pb.SendCampaignNowRequest(campaign_id=campaign_id, request_id=request_id),
        metadata=auth,
        timeout=timeout,
    )
    return response.run


async def get_run(stub: Stub, auth: Metadata, run_id: str, timeout: float = 30) -> campaign_pb2.Run:
    return (
        await stub.GetRun(pb.GetRunRequest(run_id=run_id), metadata=auth, timeout=timeout)
    ).run


def finished(run: campaign_pb2.Run) -> bool:
    """Every recipient has an outcome (DONE), or the run failed for good."""
    return run.state == campaign_pb2.RUN_STATE_DONE or (
        run.state == campaign_pb2.RUN_STATE_FAILED and run.HasField("finish_time")
    )


class FakeSegment:
    """Segment's ValidateAudience as campaign's domain sees it: a saved segment exists
    when its id is in `segments`; a definition is refused when `refuse_definition` holds
    (field, reason); `down` answers as if segment were unreachable; an accepted audience
    may include `possible_browsers` (empty: segment names none, so any)."""

    def __init__(self) -> None:
        from clarion.segment.v1 import segment_pb2

        self.segments: set[str] = set()
        self.refuse_definition: tuple[str, str] | None = None
        self.down = False
        self.checked: list[segment_pb2.AudienceSelector] = []
        self.possible_browsers: tuple[int, ...] = ()

    async def validate_audience(self, site_id: str, audience) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
        from services.campaign.domain import AudienceRefused, PeerCallFailed

        self.checked.append(audience)
        if self.down:
            raise PeerCallFailed("segment.ValidateAudience", "segment unreachable at 127.0.0.1:1")
        if audience.HasField("segment_id") and audience.segment_id not in self.segments:
            raise AudienceRefused(
                f"there is no segment {audience.segment_id!r} in this site",
                reason="SEGMENT_NOT_FOUND",
                not_found=True,
                field="audience.segment_id",
                segment_id=audience.segment_id,
            )
        if audience.HasField("definition") and self.refuse_definition is not None:
            field, why = self.refuse_definition
            raise AudienceRefused(f"{field} is wrong", reason=why, not_found=False, field=field)
        return self.possible_browsers
