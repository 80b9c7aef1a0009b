"""The campaign service's rules: sites, campaigns and their content, starting runs."""

from services.campaign.domain.campaigns import CampaignDraft, CampaignPage, Campaigns, RunPage
from services.campaign.domain.ports import (
    DeliveryPort,
    DeliveryRunView,
    PeerCallFailed,
    RecipientOutcomeView,
    RecipientStatus,
)
from services.campaign.domain.sites import (
    CreatedSite,
    LocalSiteResolver,
    RotatedApiKey,
    SitePage,
    Sites,
)

__all__ = [
    "CampaignDraft",
    "CampaignPage",
    "Campaigns",
    "CreatedSite",
    "DeliveryPort",
    "DeliveryRunView",
    "LocalSiteResolver",
    "PeerCallFailed",
    "RecipientOutcomeView",
    "RecipientStatus",
    "RotatedApiKey",
    "RunPage",
    "SitePage",
    "Sites",
]
