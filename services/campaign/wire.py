"""Proto <-> domain translation, shared by the servicers and the peer clients."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, site_pb2
from clarion.common.v1 import common_pb2
from services.campaign.store import CampaignRecord, RunRecord, RunState, SiteRecord, Urgency
from services.kit.errors import InvalidArgument

URGENCY_TO_PROTO = {
    Urgency.VERY_LOW: common_pb2.URGENCY_VERY_LOW,
    Urgency.LOW: common_pb2.URGENCY_LOW,
    Urgency.NORMAL: common_pb2.URGENCY_NORMAL,
    Urgency.HIGH: common_pb2.URGENCY_HIGH,
}
URGENCY_FROM_PROTO: dict[int, Urgency] = {
    number: urgency for urgency, number in URGENCY_TO_PROTO.items()
}
RUN_STATE_TO_PROTO = {
    RunState.PREPARING: campaign_pb2.RUN_STATE_PREPARING,
    RunState.SENDING: campaign_pb2.RUN_STATE_SENDING,
    RunState.DONE: campaign_pb2.RUN_STATE_DONE,
    RunState.FAILED: campaign_pb2.RUN_STATE_FAILED,
}


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def urgency_from_proto(number: int) -> Urgency | None:
    """None for URGENCY_UNSPECIFIED (the domain's default applies)."""
    if number == common_pb2.URGENCY_UNSPECIFIED:
        return None
    urgency = URGENCY_FROM_PROTO.get(number)
    if urgency is None:
        raise InvalidArgument(
            "INVALID_URGENCY",
            f"urgency {number} is not a clarion.common.v1.Urgency value",
            field="urgency",
        )
    return urgency


def site_to_proto(site: SiteRecord) -> site_pb2.Site:
    return site_pb2.Site(
        site_id=site.site_id,
        name=site.name,
        vapid_public_key=site.vapid_public_key,
        vapid_subject=site.vapid_subject,
        create_time=timestamp(site.create_time),
    )


def campaign_to_proto(campaign: CampaignRecord) -> campaign_pb2.Campaign:
    return campaign_pb2.Campaign(
        campaign_id=campaign.campaign_id,
        name=campaign.name,
        notification=campaign.notification,
        ttl_seconds=campaign.ttl_seconds,
        urgency=URGENCY_TO_PROTO[campaign.urgency],
        create_time=timestamp(campaign.create_time),
        update_time=timestamp(campaign.update_time),
    )


def run_to_proto(run: RunRecord) -> campaign_pb2.Run:
    return campaign_pb2.Run(
        run_id=run.run_id,
        campaign_id=run.campaign_id,
        state=RUN_STATE_TO_PROTO[run.state],
        audience=run.progress.resolved,
        failure_reason=run.failure_reason,
        create_time=timestamp(run.create_time),
        progress=campaign_pb2.RunProgress(**run.progress.__dict__),
        finish_time=timestamp(run.finish_time) if run.finish_time else None,
    )
