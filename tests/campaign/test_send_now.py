"""SendCampaignNow and GetRun through real servers.

The session's campaign server has no reachable peers (failure path). The
`TestWithRealPeers` cases start real segment, delivery and reporting servers.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.campaign.admin import CreatedSite, create_site
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import closed_port_address, internal, reason
from tests.support.sites import bearer

Stub = campaign_service_pb2_grpc.CampaignServiceStub
Metadata = tuple[tuple[str, str], ...]


async def new_campaign(stub: Stub, auth: Metadata) -> str:
    response = await stub.CreateCampaign(
        pb.CreateCampaignRequest(
            notification=common_pb2.Notification(title="Hello", target_url="https://a.example/")
        ),
        metadata=auth,
    )
    return response.campaign.campaign_id


class TestSendCampaignNowWithPeersDown:
    async def test_the_run_fails_and_the_error_names_run_and_step(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign_id = await new_campaign(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.SendCampaignNow(
                pb.SendCampaignNowRequest(campaign_id=campaign_id), metadata=auth
            )

        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason(raised.value) == "RUN_QUEUEING_FAILED"
        details = raised.value.details() or ""
        assert "delivery.CreateDeliveryRun" in details
        run_id = details.split()[1]
        run = (await campaigns_stub.GetRun(pb.GetRunRequest(run_id=run_id), metadata=auth)).run
        assert run.campaign_id == campaign_id
        assert run.state == campaign_pb2.RUN_STATE_FAILED
        assert "delivery.CreateDeliveryRun" in run.failure_reason
        assert run.audience == 0

    async def test_another_site_cannot_send_the_campaign(
        self, campaigns_stub: Stub, auth: Metadata, new_site: Callable[..., Awaitable[CreatedSite]]
    ) -> None:
        campaign_id = await new_campaign(campaigns_stub, auth)
        other = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.SendCampaignNow(
                pb.SendCampaignNowRequest(campaign_id=campaign_id),
                metadata=bearer(other.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"

    async def test_an_unknown_run_is_not_found(self, campaigns_stub: Stub, auth: Metadata) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.GetRun(pb.GetRunRequest(run_id="run_missing"), metadata=auth)

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "RUN_NOT_FOUND"


@dataclass
class PeerStack:
    settings: Settings
    servers: dict[str, ManagedServer]
    channels: dict[str, grpc.aio.Channel]


def _factory(service: str) -> Callable[..., Awaitable[ManagedServer]]:
    try:
        module = importlib.import_module(f"services.{service}.server")
    except ModuleNotFoundError:
        pytest.skip(f"services.{service}.server is not written yet")
    return module.create_server  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def peer_stack(settings_factory: Callable[..., Settings]) -> AsyncIterator[PeerStack]:
    """Campaign, segment, delivery and reporting servers that know each other."""
    factories = {name: _factory(name) for name in ("campaign", "segment", "delivery", "reporting")}
    settings = settings_factory(encryptor="python", push_max_attempts=1, push_timeout_seconds=2.0)
    servers: dict[str, ManagedServer] = {}
    try:
        for name, factory in factories.items():
            servers[name] = await factory("127.0.0.1:0", settings)
        for name, server in servers.items():
            setattr(settings, f"{name}_address", server.address)
        for server in servers.values():
            await server.start()
        channels = {name: client_channel(server.address) for name, server in servers.items()}
        yield PeerStack(settings, servers, channels)
        for channel in channels.values():
            await channel.close()
    finally:
        for name in ("delivery", "campaign", "segment", "reporting"):
            if name in servers:
                await servers[name].stop()


def _browser_keys() -> tuple[bytes, bytes]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, b"0123456789abcdef"


async def _subscribe(stack: PeerStack, auth: Metadata, endpoint: str) -> str:
    p256dh, secret = _browser_keys()
    segment = segment_service_pb2_grpc.SegmentServiceStub(stack.channels["segment"])
    response = await segment.RegisterSubscriber(
        segment_service_pb2.RegisterSubscriberRequest(
            push_subscription=common_pb2.PushSubscription(
                endpoint=endpoint, p256dh=p256dh, auth=secret
            ),
            browser=common_pb2.BROWSER_FIREFOX,
        ),
        metadata=auth,
    )
    return response.subscriber.subscriber_id


class TestWithRealPeers:
    async def test_the_reachable_audience_is_queued_in_delivery_and_reported(
        self, peer_stack: PeerStack
    ) -> None:
        site = await create_site(peer_stack.settings, "Real peers")
        other = await create_site(peer_stack.settings, "Bystander")
        auth = bearer(site.api_key)
        # Nothing listens there: delivery's sends fail, which is not what this test is about.
        dead = closed_port_address()
        subscribers = [
            await _subscribe(peer_stack, auth, f"http://{dead}/push/{i}") for i in range(3)
        ]
        gone = await _subscribe(peer_stack, auth, f"http://{dead}/push/gone")
        segment = segment_service_pb2_grpc.SegmentServiceStub(peer_stack.channels["segment"])
        await segment.UnsubscribeSubscriber(
            segment_service_pb2.UnsubscribeSubscriberRequest(subscriber_id=gone, reason="test"),
            metadata=auth,
        )
        await _subscribe(peer_stack, bearer(other.api_key), f"http://{dead}/push/other")
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(peer_stack.channels["campaign"])
        campaign_id = await new_campaign(campaigns, auth)

        run = (
            await campaigns.SendCampaignNow(
                pb.SendCampaignNowRequest(campaign_id=campaign_id), metadata=auth
            )
        ).run

        assert run.state == campaign_pb2.RUN_STATE_QUEUED, run.failure_reason
        assert run.audience == len(subscribers)
        delivery = delivery_service_pb2_grpc.DeliveryServiceStub(peer_stack.channels["delivery"])
        delivery_run = (
            await delivery.GetDeliveryRun(
                delivery_service_pb2.GetDeliveryRunRequest(run_id=run.run_id),
                metadata=internal(peer_stack.settings, site.site_id),
            )
        ).delivery_run
        assert delivery_run.campaign_id == campaign_id
        assert delivery_run.total == len(subscribers)
        reporting = reporting_service_pb2_grpc.ReportingServiceStub(
            peer_stack.channels["reporting"]
        )
        report = (
            await reporting.GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                metadata=auth,
            )
        ).report
        assert report.audience == len(subscribers)

    async def test_a_site_without_subscribers_gets_a_queued_run_of_zero(
        self, peer_stack: PeerStack
    ) -> None:
        site = await create_site(peer_stack.settings, "Empty")
        auth = bearer(site.api_key)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(peer_stack.channels["campaign"])
        campaign_id = await new_campaign(campaigns, auth)

        run = (
            await campaigns.SendCampaignNow(
                pb.SendCampaignNowRequest(campaign_id=campaign_id), metadata=auth
            )
        ).run

        assert (run.state, run.audience) == (campaign_pb2.RUN_STATE_QUEUED, 0)
