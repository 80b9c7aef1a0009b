"""A live campaign read by several campaign replicas at once, one of them stopped and a
new one started while events keep coming: every triggering event pushes its person
exactly once (each page of the event feed is acted on by one replica; a replica that
loses the race stores nothing)."""

from __future__ import annotations

import asyncio

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import profile_pb2, segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.campaign.server import create_server
from services.kit.grpcserver import client_channel
from tests.campaign.helpers import eventually
from tests.support.sites import bearer

PEOPLE = 240
BATCH = 20


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


async def test_two_replicas_and_a_restart_push_each_event_once(
    settings_factory, simulator: PushServiceSimulator
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    stack = await EmbeddedStack.start(
        settings, ephemeral_ports=True, with_gateway=False, delivery_in_process=True
    )
    # Two more campaign replicas on the same database, each with its own live loop.
    replicas = [await create_server("127.0.0.1:0", settings) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    channels = [client_channel(stack.address("campaign")), client_channel(stack.address("segment"))]
    try:
        site = await create_site(settings, "Replicated shop", "mailto:ops@shop.test")
        auth = bearer(site.api_key)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels[0])
        segments = segment_service_pb2_grpc.SegmentServiceStub(channels[1])
        endpoints = []
        for start in range(0, PEOPLE, 100):
            subscriptions = [
                simulator.mint_subscription() for _ in range(start, min(PEOPLE, start + 100))
            ]
            await segments.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_FIREFOX,
                            profile_id=f"person-{start + i}",
                        )
                        for i, s in enumerate(subscriptions)
                    ]
                ),
                metadata=auth,
                timeout=30,
            )
            endpoints += [s.endpoint for s in subscriptions]
        created = await campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(title="Pong", target_url="https://shop.example/"),
                trigger=campaign_pb2.Trigger(event_name="Ping"),
            ),
            metadata=auth,
            timeout=30,
        )

        for start in range(0, PEOPLE, BATCH):
            if start == PEOPLE // 2:
                # One replica goes away mid-stream and a new one comes up.
                await replicas[0].stop()
                replicas[0] = await create_server("127.0.0.1:0", settings)
                await replicas[0].start()
            tracked = await segments.TrackEvents(
                segment_service_pb2.TrackEventsRequest(
                    events=[
                        profile_pb2.Event(
                            event_id=f"ping-{i}",
                            name="Ping",
                            profile_id=f"person-{i}",
                            occur_time=now(),
                        )
                        for i in range(start, start + BATCH)
                    ]
                ),
                metadata=auth,
                timeout=30,
            )
            assert all(result.ok for result in tracked.results), tracked.results[0]
            await asyncio.sleep(0.1)

        def received() -> list[int]:
            return [len(simulator.messages(endpoint)) for endpoint in endpoints]

        async def probe() -> list[int]:
            return received()

        await eventually(probe, lambda counts: min(counts) >= 1, timeout=60, what="every push")
        await asyncio.sleep(2.0)  # a second push would show now
        counts = received()
        assert counts == [1] * PEOPLE
        runs = await campaigns.ListRuns(
            campaign_service_pb2.ListRunsRequest(
                campaign_id=created.campaign.campaign_id, page_size=1000
            ),
            metadata=auth,
            timeout=30,
        )
        assert sum(run.audience for run in runs.runs) == PEOPLE
    finally:
        for channel in channels:
            await channel.close()
        for replica in replicas:
            await replica.stop()
        await stack.stop()
