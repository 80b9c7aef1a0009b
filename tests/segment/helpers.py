"""Building requests and reading errors for the segment service tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from clarion.segment.v1 import subscriber_pb2
from services.kit.auth import internal_metadata
from services.kit.config import Settings
from services.kit.errors import error_info
from tests.support.sites import StaticSiteResolver, bearer


@dataclass(frozen=True)
class Site:
    site_id: str
    api_key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)


def new_site(resolver: StaticSiteResolver) -> Site:
    return Site(*resolver.new_site())


def browser_public_key() -> bytes:
    """A real P-256 point, as a browser's PushSubscription.getKey('p256dh') gives it."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def push_subscription(**overrides: Any) -> common_pb2.PushSubscription:
    values: dict[str, Any] = {
        "endpoint": f"https://push.example.test/wp/{uuid.uuid4().hex}",
        "p256dh": browser_public_key(),
        "auth": os.urandom(16),
    }
    values.update(overrides)
    return common_pb2.PushSubscription(**values)


def register_request(**overrides: Any) -> pb.RegisterSubscriberRequest:
    values: dict[str, Any] = {
        "push_subscription": push_subscription(),
        "browser": common_pb2.BROWSER_CHROME,
        "timezone": "Europe/Berlin",
    }
    values.update(overrides)
    return pb.RegisterSubscriberRequest(**values)


async def register(stub: pb_grpc.SegmentServiceStub, site: Site, **overrides: Any) -> Any:
    response = await stub.RegisterSubscriber(register_request(**overrides), metadata=site.metadata)
    return response.subscriber


async def list_all(stub: pb_grpc.SegmentServiceStub, site: Site, page_size: int = 0) -> list[Any]:
    subscribers: list[Any] = []
    token = ""
    while True:
        response = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_size=page_size, page_token=token),
            metadata=site.metadata,
        )
        subscribers.extend(response.subscribers)
        token = response.next_page_token
        if not token:
            return subscribers


def internal(settings: Settings, site: Site) -> tuple[tuple[str, str], ...]:
    """The metadata Clarion's own services (delivery) call with on behalf of a site."""
    return internal_metadata(settings.internal_token_value, site.site_id)


async def audience(
    stub: internal_pb_grpc.SegmentInternalServiceStub,
    settings: Settings,
    site: Site,
    snapshot_time: datetime,
    page_size: int = 0,
    subscriber_ids: Sequence[str] = (),
    profile_ids: Sequence[str] = (),
) -> list[subscriber_pb2.AudienceMember]:
    """Every member of the site's audience at snapshot_time (or of a listed audience),
    walking all pages."""
    snapshot = Timestamp()
    snapshot.FromDatetime(snapshot_time)
    members: list[subscriber_pb2.AudienceMember] = []
    token = ""
    while True:
        response = await stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=snapshot,
                subscriber_ids=subscriber_ids,
                profile_ids=profile_ids,
                page_size=page_size,
                page_token=token,
            ),
            metadata=internal(settings, site),
        )
        members.extend(response.members)
        token = response.next_page_token
        if not token:
            return members


async def audience_ids(
    stub: internal_pb_grpc.SegmentInternalServiceStub,
    settings: Settings,
    site: Site,
    snapshot_time: datetime,
) -> list[str]:
    return [m.subscriber_id for m in await audience(stub, settings, site, snapshot_time)]


async def expect_error(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    assert error.code() == code, error.details()
    if reason is not None:
        info = error_info(error)
        assert info is not None and info.reason == reason, (info, error.details())
    return error


def error_field(error: grpc.aio.AioRpcError) -> str | None:
    info = error_info(error)
    return info.metadata.get("field") if info is not None else None
