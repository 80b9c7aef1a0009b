"""A campaign's audience through the real server whose segment is unreachable: nothing is
kept unchecked, and the caller gets UNAVAILABLE naming segment (never INTERNAL). With a
real segment: tests/e2e/test_campaign_audience.py."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clarion.campaign.v1 import campaign_pb2
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.segment.v1 import segment_pb2
from tests.campaign.helpers import Metadata, Stub, new_campaign, reason

SAVED = segment_pb2.AudienceSelector(segment_id="seg_0123456789abcdef0123456789abcdef")


class TestSegmentUnreachable:
    async def test_setting_an_audience_is_unavailable_and_changes_nothing(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.UpdateCampaign(
                pb.UpdateCampaignRequest(
                    campaign=campaign_pb2.Campaign(
                        campaign_id=campaign.campaign_id, audience=SAVED
                    ),
                    update_mask=FieldMask(paths=["audience"]),
                ),
                metadata=auth,
                timeout=30,
            )

        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason(raised.value) == "SEGMENT_UNAVAILABLE"
        assert "segment unreachable" in (raised.value.details() or "")
        stored = await campaigns_stub.GetCampaign(
            pb.GetCampaignRequest(campaign_id=campaign.campaign_id), metadata=auth, timeout=30
        )
        assert not stored.campaign.HasField("audience")
        assert stored.campaign.update_time == campaign.update_time

    async def test_clearing_the_audience_needs_no_segment(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)

        updated = await campaigns_stub.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign=campaign_pb2.Campaign(campaign_id=campaign.campaign_id),
                update_mask=FieldMask(paths=["audience"]),
            ),
            metadata=auth,
            timeout=30,
        )

        assert not updated.campaign.HasField("audience")

    async def test_a_campaign_without_an_audience_shows_none(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        campaign = await new_campaign(campaigns_stub, auth)
        assert not campaign.HasField("audience")
