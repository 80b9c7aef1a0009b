"""The campaign service's rules: sites, campaigns, and queueing a run."""

from services.campaign.domain.campaigns import (
    MAX_PAYLOAD_BYTES,
    CampaignDraft,
    CampaignPage,
    Campaigns,
    push_payload,
)
from services.campaign.domain.ports import (
    AudienceSource,
    DeliveryQueue,
    PeerCallFailed,
    Recipient,
    RunAudienceRecorder,
)
from services.campaign.domain.sites import CreatedSite, LocalSiteResolver, Sites

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "AudienceSource",
    "CampaignDraft",
    "CampaignPage",
    "Campaigns",
    "CreatedSite",
    "DeliveryQueue",
    "LocalSiteResolver",
    "PeerCallFailed",
    "Recipient",
    "RunAudienceRecorder",
    "Sites",
    "push_payload",
]
