"""The campaign service's rules: sites, campaigns and their content, starting runs."""

from services.campaign.domain.campaigns import CampaignDraft, CampaignPage, Campaigns, RunPage
from services.campaign.domain.ports import (
    AudienceRefused,
    DeliveryPort,
    DeliveryRunView,
    PeerCallFailed,
    RecipientOutcomeView,
    RecipientStatus,
    SegmentPort,
)
from services.campaign.domain.sites import (
    CreatedSite,
    ImportedVapidKey,
    LocalSiteResolver,
    RotatedApiKey,
    SitePage,
    Sites,
)

__all__ = [
    "AudienceRefused",
    "CampaignDraft",
    "CampaignPage",
    "Campaigns",
    "CreatedSite",
    "DeliveryPort",
    "DeliveryRunView",
    "ImportedVapidKey",
    "LocalSiteResolver",
    "PeerCallFailed",
    "RecipientOutcomeView",
    "RecipientStatus",
    "RotatedApiKey",
    "RunPage",
    "SegmentPort",
    "SitePage",
    "Sites",
]
