"""GetRun tells the truth to the end: a send to nobody says so and is done."""

from __future__ import annotations

import asyncio
import time

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel


class TestEmptyAudience:
    async def test_the_run_is_done_with_zero_and_warns(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "Nobody yet", "mailto:ops@example.com")
        auth = (("authorization", f"Bearer {site.api_key}"),)
        async with client_channel(stack.address("campaign")) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            created = await stub.CreateCampaign(
                campaign_service_pb2.CreateCampaignRequest(
                    notification=common_pb2.Notification(
                        title="Hello", body="anyone?", target_url="https://shop.example/"
                    )
                ),
                metadata=auth,
                timeout=10,
            )
            sent = await stub.SendCampaignNow(
                campaign_service_pb2.SendCampaignNowRequest(
                    campaign_id=created.campaign.campaign_id
                ),
                metadata=auth,
                timeout=10,
            )
            if sent.run.state == campaign_pb2.RUN_STATE_PREPARING:
                assert list(sent.run.warnings) == []  # 0 resolved so far is not "empty"
            deadline = time.monotonic() + 30
            while True:
                run = (
                    await stub.GetRun(
                        campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id),
                        metadata=auth,
                        timeout=10,
                    )
                ).run
                if run.state in (campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED):
                    break
                assert time.monotonic() < deadline, f"run still {run.state}"
                await asyncio.sleep(0.05)

        assert run.state == campaign_pb2.RUN_STATE_DONE
        assert run.audience == 0
        assert list(run.warnings) == [campaign_pb2.RUN_WARNING_EMPTY_AUDIENCE]
        assert run.finish_time.seconds > 0
