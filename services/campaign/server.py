"""The campaign service's gRPC adapter: SiteService, SiteInternalService (internal token
only) and CampaignService in one server."""

from __future__ import annotations

from typing import Any

import grpc

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from services.campaign.domain import CampaignDraft, Campaigns, LocalSiteResolver, Sites
from services.campaign.domain.campaigns import CampaignWarning
from services.campaign.domain.live import LiveCampaigns
from services.campaign.domain.previews import CampaignPreviews
from services.campaign.domain.safari import ICON_SIZES, LegacySafariInput
from services.campaign.domain.sites import engagement_secret
from services.campaign.domain.why import Explanation, RecipientExplainer
from services.campaign.peer_clients import GrpcDelivery, GrpcReporting, GrpcSegment
from services.campaign.store import CampaignStore, ListedRecipients
from services.campaign.wire import (
    RECIPIENT_STATUS_TO_PROTO,
    campaign_to_proto,
    delivery_plan_to_proto,
    legacy_safari_to_proto,
    reason_to_proto,
    run_recipient_to_proto,
    run_to_proto,
    site_to_proto,
    timestamp,
    urgency_from_proto,
    vapid_key_to_proto,
)
from services.kit.auth import SiteResolver, current_site_id
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.errors import NotFound
from services.kit.grpcserver import ManagedServer, build_service_server, open_service_database
from services.kit.logging import get_logger
from services.kit.peers import Peers
from services.kit.periodic import PeriodicLoop

log = get_logger(__name__)

# How often runs delivery has not confirmed are offered again (each backs off on its own).
HANDOFF_INTERVAL_SECONDS = 1.0
# How often the scheduler looks for campaigns whose schedule fell due: a scheduled run
# starts within this of its time.
SCHEDULER_INTERVAL_SECONDS = 1.0
# How often live campaigns read the events that came and end the waits that fell due:
# part of the time from an event to its push.
LIVE_INTERVAL_SECONDS = 0.2

SITE_SERVICE = site_service_pb2.DESCRIPTOR.services_by_name["SiteService"].full_name
SITE_INTERNAL_SERVICE = site_internal_service_pb2.DESCRIPTOR.services_by_name[
    "SiteInternalService"
].full_name
CAMPAIGN_SERVICE = campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name


class SiteServicer(site_service_pb2_grpc.SiteServiceServicer):
    """A site's view of itself (its API key, or the internal token naming it)."""

    def __init__(self, sites: Sites) -> None:
        self._sites = sites

    async def GetSite(
        self, request: site_service_pb2.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> site_service_pb2.GetSiteResponse:
        site = await self._sites.get(current_site_id())
        return site_service_pb2.GetSiteResponse(site=site_to_proto(site))

    async def RotateApiKey(
        self, request: site_service_pb2.RotateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> site_service_pb2.RotateApiKeyResponse:
        rotated = await self._sites.rotate_api_key(current_site_id())
        return site_service_pb2.RotateApiKeyResponse(
            site_id=rotated.site_id, api_key=rotated.api_key
        )

    async def UpdateSite(
        self, request: site_service_pb2.UpdateSiteRequest, context: grpc.aio.ServicerContext
    ) -> site_service_pb2.UpdateSiteResponse:
        given = request.site
        site = await self._sites.update(
            current_site_id(),
            given.site_id,
            name=given.name,
            vapid_subject=given.vapid_subject,
            paths=list(request.update_mask.paths),
            timezone=given.timezone,
            delivery_policy=given.delivery_policy,
            home_url=given.home_url,
        )
        return site_service_pb2.UpdateSiteResponse(site=site_to_proto(site))

    async def ImportVapidKey(
        self, request: site_service_pb2.ImportVapidKeyRequest, context: grpc.aio.ServicerContext
    ) -> site_service_pb2.ImportVapidKeyResponse:
        imported = await self._sites.import_vapid_key(
            current_site_id(), request.private_key, request.public_key
        )
        return site_service_pb2.ImportVapidKeyResponse(
            vapid_key=vapid_key_to_proto(imported.vapid_key), created=imported.created
        )

    async def SetLegacySafari(
        self, request: site_service_pb2.SetLegacySafariRequest, context: grpc.aio.ServicerContext
    ) -> site_service_pb2.SetLegacySafariResponse:
        site = await self._sites.set_legacy_safari(
            current_site_id(),
            LegacySafariInput(
                apns_private_key=request.apns_private_key,
                apns_key_id=request.apns_key_id,
                apns_team_id=request.apns_team_id,
                website_push_id=request.website_push_id,
                website_name=request.website_name,
                allowed_domains=tuple(request.allowed_domains),
                url_format_string=request.url_format_string,
                certificate=request.certificate,
                certificate_private_key=request.certificate_private_key,
                icons={name: getattr(request.icons, name) for name in ICON_SIZES},
            ),
        )
        return site_service_pb2.SetLegacySafariResponse(site=site_to_proto(site))


class SiteInternalServicer(site_internal_service_pb2_grpc.SiteInternalServiceServicer):
    """What only Clarion's services and operators may call (the internal token)."""

    def __init__(self, sites: Sites) -> None:
        self._sites = sites

    async def ResolveApiKey(
        self,
        request: site_internal_service_pb2.ResolveApiKeyRequest,
        context: grpc.aio.ServicerContext,
    ) -> site_internal_service_pb2.ResolveApiKeyResponse:
        # Read from the database on every call: a rotated-away key is refused at once.
        site_id = await self._sites.site_for_api_key(request.api_key)
        if site_id is None:
            raise NotFound("API_KEY_NOT_FOUND", "the API key belongs to no site")
        return site_internal_service_pb2.ResolveApiKeyResponse(site_id=site_id)

    async def GetSiteCredentials(
        self,
        request: site_internal_service_pb2.GetSiteCredentialsRequest,
        context: grpc.aio.ServicerContext,
    ) -> site_internal_service_pb2.GetSiteCredentialsResponse:
        credentials = await self._sites.credentials(current_site_id())
        return site_internal_service_pb2.GetSiteCredentialsResponse(
            site_id=credentials.site_id,
            vapid_private_key=credentials.vapid_private_key,
            vapid_public_key=credentials.vapid_public_key,
            vapid_subject=credentials.vapid_subject,
            engagement_secret=engagement_secret(credentials.vapid_private_key),
            current_vapid_key_id=credentials.current_vapid_key_id,
            vapid_keys=[
                site_internal_service_pb2.VapidKeyPair(
                    vapid_key_id=pair.vapid_key_id,
                    private_key=pair.private_key,
                    public_key=pair.public_key,
                )
                for pair in credentials.vapid_keys
            ],
        )

    async def ResolveWebsitePushId(
        self,
        request: site_internal_service_pb2.ResolveWebsitePushIdRequest,
        context: grpc.aio.ServicerContext,
    ) -> site_internal_service_pb2.ResolveWebsitePushIdResponse:
        site_id = await self._sites.site_for_website_push_id(request.website_push_id)
        return site_internal_service_pb2.ResolveWebsitePushIdResponse(site_id=site_id)

    async def GetLegacySafariCredentials(
        self,
        request: site_internal_service_pb2.GetLegacySafariCredentialsRequest,
        context: grpc.aio.ServicerContext,
    ) -> site_internal_service_pb2.GetLegacySafariCredentialsResponse:
        credentials = await self._sites.legacy_safari_credentials(
            current_site_id(), include_push_package=request.include_push_package
        )
        config, secrets = credentials.config, credentials.secrets
        response = site_internal_service_pb2.GetLegacySafariCredentialsResponse(
            site_id=credentials.site_id,
            apns_private_key=secrets.apns_private_key,
            apns_key_id=config.apns_key_id,
            apns_team_id=config.apns_team_id,
            apns_topic=config.website_push_id,
            website_name=config.website_name,
            website_push_id=config.website_push_id,
            allowed_domains=config.allowed_domains,
            url_format_string=config.url_format_string,
            certificate_expire_time=legacy_safari_to_proto(config).certificate_expire_time,
        )
        if request.include_push_package:
            response.certificate = secrets.certificate
            response.certificate_private_key = secrets.certificate_private_key
            response.certificate_chain.extend(secrets.certificate_chain)
            response.icons.CopyFrom(
                site_pb2.LegacySafariIcons(
                    **{name: getattr(secrets.icons, name) for name in ICON_SIZES}
                )
            )
        return response

    async def ListSites(
        self,
        request: site_internal_service_pb2.ListSitesRequest,
        context: grpc.aio.ServicerContext,
    ) -> site_internal_service_pb2.ListSitesResponse:
        page = await self._sites.list(request.page_size, request.page_token)
        return site_internal_service_pb2.ListSitesResponse(
            sites=[site_to_proto(site) for site in page.sites],
            next_page_token=page.next_page_token,
        )


class CampaignServicer(campaign_service_pb2_grpc.CampaignServiceServicer):
    def __init__(
        self, campaigns: Campaigns, previews: CampaignPreviews, explainer: RecipientExplainer
    ) -> None:
        self._campaigns = campaigns
        self._previews = previews
        self._explainer = explainer

    async def CreateCampaign(
        self,
        request: campaign_service_pb2.CreateCampaignRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.CreateCampaignResponse:
        draft = CampaignDraft(
            name=request.name,
            notification=request.notification,
            ttl_seconds=request.ttl_seconds,
            urgency=urgency_from_proto(request.urgency),
            request_id=request.request_id,
            audience=request.audience if request.HasField("audience") else None,
            schedule=request.schedule if request.HasField("schedule") else None,
            trigger=request.trigger if request.HasField("trigger") else None,
            timing=request.timing if request.HasField("timing") else None,
            **_content_options(request),
            labels=tuple(request.labels),
            policy=request.policy if request.HasField("policy") else None,
            **_ab_test(request),
        )
        campaign, warnings = await self._campaigns.create_with_warnings(current_site_id(), draft)
        warnings += await self._campaigns.warnings(campaign)
        return campaign_service_pb2.CreateCampaignResponse(
            campaign=campaign_to_proto(campaign), warnings=[_warning(w) for w in warnings]
        )

    async def UpdateCampaign(
        self,
        request: campaign_service_pb2.UpdateCampaignRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.UpdateCampaignResponse:
        given = request.campaign
        paths = list(request.update_mask.paths)
        changes = CampaignDraft(
            name=given.name,
            notification=given.notification,
            ttl_seconds=given.ttl_seconds,
            # Only a field the mask names is read: a stray value elsewhere is ignored.
            urgency=urgency_from_proto(given.urgency) if "urgency" in paths else None,
            audience=given.audience if given.HasField("audience") else None,
            schedule=given.schedule if given.HasField("schedule") else None,
            trigger=given.trigger if given.HasField("trigger") else None,
            timing=given.timing if given.HasField("timing") else None,
            **_content_options(given),
            labels=tuple(given.labels),
            policy=given.policy if given.HasField("policy") else None,
            **_ab_test(given),
        )
        campaign, warnings = await self._campaigns.update_with_warnings(
            current_site_id(), given.campaign_id, changes, paths
        )
        if "trigger" in paths:
            warnings += await self._campaigns.warnings(campaign, prefix="campaign.")
        return campaign_service_pb2.UpdateCampaignResponse(
            campaign=campaign_to_proto(campaign), warnings=[_warning(w) for w in warnings]
        )

    async def GetCampaign(
        self, request: campaign_service_pb2.GetCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.GetCampaignResponse:
        site_id = current_site_id()
        campaign = await self._campaigns.get(site_id, request.campaign_id)
        (campaign,) = await self._campaigns.shown(site_id, [campaign])
        return campaign_service_pb2.GetCampaignResponse(campaign=campaign_to_proto(campaign))

    async def ListCampaigns(
        self,
        request: campaign_service_pb2.ListCampaignsRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.ListCampaignsResponse:
        site_id = current_site_id()
        page = await self._campaigns.list(
            site_id, request.page_size, request.page_token, label=request.label
        )
        shown = await self._campaigns.shown(site_id, page.campaigns)
        return campaign_service_pb2.ListCampaignsResponse(
            campaigns=[campaign_to_proto(c) for c in shown],
            next_page_token=page.next_page_token,
        )

    async def SendCampaignNow(
        self,
        request: campaign_service_pb2.SendCampaignNowRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.SendCampaignNowResponse:
        recipients = _recipients(request)
        run = await self._campaigns.send_now(
            current_site_id(), request.campaign_id, request.request_id, recipients
        )
        return campaign_service_pb2.SendCampaignNowResponse(run=run_to_proto(run))

    async def SendTestCampaign(
        self,
        request: campaign_service_pb2.SendTestCampaignRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.SendTestCampaignResponse:
        run = await self._campaigns.send_test(
            current_site_id(), request.campaign_id, request.request_id, request.variant_id
        )
        return campaign_service_pb2.SendTestCampaignResponse(run=run_to_proto(run))

    async def SendNotification(
        self,
        request: campaign_service_pb2.SendNotificationRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.SendNotificationResponse:
        recipients = _recipients(request)
        draft = CampaignDraft(
            name="",
            notification=request.notification,
            ttl_seconds=request.ttl_seconds,
            urgency=urgency_from_proto(request.urgency),
            request_id=request.request_id,
            **_content_options(request),
        )
        run = await self._campaigns.send_notification(current_site_id(), draft, recipients)
        return campaign_service_pb2.SendNotificationResponse(run=run_to_proto(run))

    async def GetRun(
        self, request: campaign_service_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.GetRunResponse:
        run = await self._campaigns.get_run(current_site_id(), request.run_id)
        return campaign_service_pb2.GetRunResponse(run=run_to_proto(run))

    async def ListRuns(
        self, request: campaign_service_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.ListRunsResponse:
        page = await self._campaigns.list_runs(
            current_site_id(), request.campaign_id, request.page_size, request.page_token
        )
        return campaign_service_pb2.ListRunsResponse(
            runs=[run_to_proto(r) for r in page.runs], next_page_token=page.next_page_token
        )

    async def CancelRun(
        self, request: campaign_service_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.CancelRunResponse:
        run = await self._campaigns.cancel_run(current_site_id(), request.run_id)
        return campaign_service_pb2.CancelRunResponse(run=run_to_proto(run))

    async def GetRunRecipient(
        self,
        request: campaign_service_pb2.GetRunRecipientRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.GetRunRecipientResponse:
        recipient = await self._campaigns.run_recipient(
            current_site_id(), request.run_id, request.subscriber_id
        )
        return campaign_service_pb2.GetRunRecipientResponse(
            recipient=run_recipient_to_proto(recipient)
        )

    async def ExplainRecipient(
        self,
        request: campaign_service_pb2.ExplainRecipientRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.ExplainRecipientResponse:
        explanations = await self._explainer.explain(
            current_site_id(),
            campaign_id=request.campaign_id,
            run_id=request.run_id,
            subscriber_id=request.subscriber_id,
            profile_id=request.profile_id,
        )
        return campaign_service_pb2.ExplainRecipientResponse(
            explanations=[_explanation_to_proto(e) for e in explanations]
        )

    async def PauseCampaign(
        self, request: campaign_service_pb2.PauseCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.PauseCampaignResponse:
        campaign = await self._campaigns.pause(current_site_id(), request.campaign_id)
        return campaign_service_pb2.PauseCampaignResponse(campaign=campaign_to_proto(campaign))

    async def ResumeCampaign(
        self, request: campaign_service_pb2.ResumeCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.ResumeCampaignResponse:
        campaign = await self._campaigns.resume(current_site_id(), request.campaign_id)
        return campaign_service_pb2.ResumeCampaignResponse(campaign=campaign_to_proto(campaign))

    async def CancelCampaign(
        self, request: campaign_service_pb2.CancelCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaign_service_pb2.CancelCampaignResponse:
        campaign = await self._campaigns.cancel(current_site_id(), request.campaign_id)
        return campaign_service_pb2.CancelCampaignResponse(campaign=campaign_to_proto(campaign))

    async def PreviewCampaign(
        self,
        request: campaign_service_pb2.PreviewCampaignRequest,
        context: grpc.aio.ServicerContext,
    ) -> campaign_service_pb2.PreviewCampaignResponse:
        plan = await self._previews.preview(current_site_id(), request.campaign_id)
        return campaign_service_pb2.PreviewCampaignResponse(plan=delivery_plan_to_proto(plan))


def _explanation_to_proto(explanation: Explanation) -> campaign_pb2.RecipientExplanation:
    message = campaign_pb2.RecipientExplanation(
        run_id=explanation.run_id,
        subscriber_id=explanation.subscriber_id,
        targeted=explanation.targeted,
        explanation=explanation.sentence,
        run_start_time=timestamp(explanation.run_start_time),
    )
    if explanation.not_targeted is not None:
        message.not_targeted_reason = campaign_pb2.NotTargetedReason.Value(
            f"NOT_TARGETED_REASON_{explanation.not_targeted.name}"
        )
    outcome = explanation.outcome
    if outcome is not None:
        message.status = RECIPIENT_STATUS_TO_PROTO[outcome.status]
        message.reason = reason_to_proto(outcome.reason)  # type: ignore[assignment]
        message.variant = outcome.variant
        if outcome.finish_time is not None:
            message.finish_time.CopyFrom(timestamp(outcome.finish_time))
        for attempt in outcome.attempt_history:
            added = message.attempts.add(
                http_status=attempt.http_status,
                reason=reason_to_proto(attempt.reason),  # type: ignore[arg-type]
                push_service=attempt.push_service,
            )
            if attempt.attempt_time is not None:
                added.attempt_time.CopyFrom(timestamp(attempt.attempt_time))
    activity = explanation.activity
    if activity is not None:
        message.clicked_button = activity.clicked_button
        message.conversions = activity.conversions
        message.revenue = activity.revenue
        for field in ("viewed_time", "clicked_time", "closed_time", "converted_time"):
            moment = getattr(activity, field)
            if moment is not None:
                getattr(message, field).CopyFrom(timestamp(moment))
    return message


def _recipients(
    request: campaign_service_pb2.SendCampaignNowRequest
    | campaign_service_pb2.SendNotificationRequest,
) -> ListedRecipients | None:
    """The listed recipients a request names; None when it has none (not even empty)."""
    if not request.HasField("recipients"):
        return None
    return ListedRecipients(
        profile_ids=tuple(request.recipients.profile_ids),
        subscriber_ids=tuple(request.recipients.subscriber_ids),
    )


def _content_options(
    message: campaign_service_pb2.CreateCampaignRequest
    | campaign_pb2.Campaign
    | campaign_service_pb2.SendNotificationRequest,
) -> dict[str, Any]:
    """A message's personalization, UTM parameters and topic, as CampaignDraft takes them."""
    return {
        "personalization": message.personalization
        if message.HasField("personalization")
        else None,
        "utm": message.utm if message.HasField("utm") else None,
        "topic": message.topic,
    }


def _ab_test(
    message: campaign_service_pb2.CreateCampaignRequest | campaign_pb2.Campaign,
) -> dict[str, Any]:
    """A message's variants, variant test and conversion goal, as CampaignDraft takes
    them."""
    return {
        "variants": tuple(message.variants),
        "variant_test": message.variant_test if message.HasField("variant_test") else None,
        "conversion_goal": message.conversion_goal
        if message.HasField("conversion_goal")
        else None,
    }


def _warning(warning: CampaignWarning) -> campaign_service_pb2.CampaignWarning:
    return campaign_service_pb2.CampaignWarning(
        reason=warning.reason, field=warning.field, message=warning.message
    )


async def create_server(
    address: str,
    settings: Settings,
    *,
    clock: Clock | None = None,
    site_resolver: SiteResolver | None = None,
    peers: Peers | None = None,
    scheduler_interval_seconds: float = SCHEDULER_INTERVAL_SECONDS,
    live_interval_seconds: float = LIVE_INTERVAL_SECONDS,
) -> ManagedServer:
    """Binds SiteService, SiteInternalService and CampaignService to `address`;
    `await server.start()` next."""
    engine = await open_service_database("campaign", settings)
    clock = clock or SystemClock()
    peers = peers or Peers(settings)
    store = CampaignStore(engine)
    sites = Sites(store, clock)
    segment = GrpcSegment(peers)
    campaigns = Campaigns(
        store, clock, delivery=GrpcDelivery(peers), segment=segment,
        reporting=GrpcReporting(peers),
    )  # fmt: skip
    live = LiveCampaigns(store, clock, segment, on_runs=campaigns.handoff_wanted.set)
    live_loop = PeriodicLoop(
        "campaign-live", live.run_once, live_interval_seconds,
        failure="acting on live campaigns' events failed; will retry", logger=log,
    )  # fmt: skip
    handoff = HandoffLoop(campaigns, HANDOFF_INTERVAL_SECONDS)
    scheduler = PeriodicLoop(
        "campaign-scheduler", campaigns.start_due, scheduler_interval_seconds,
        failure="starting scheduled runs failed; will retry", logger=log,
    )  # fmt: skip
    resolver = site_resolver if site_resolver is not None else LocalSiteResolver(sites)
    site_servicer = SiteServicer(sites)
    site_internal_servicer = SiteInternalServicer(sites)
    previews = CampaignPreviews(campaigns, store, clock, GrpcDelivery(peers))
    explainer = RecipientExplainer(store, GrpcDelivery(peers), segment, GrpcReporting(peers))
    campaign_servicer = CampaignServicer(campaigns, previews, explainer)
    add_site_internal = site_internal_service_pb2_grpc.add_SiteInternalServiceServicer_to_server
    return build_service_server(
        address,
        settings,
        register=[
            lambda server: site_service_pb2_grpc.add_SiteServiceServicer_to_server(
                site_servicer, server
            ),
            lambda server: add_site_internal(site_internal_servicer, server),
            lambda server: campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(
                campaign_servicer, server
            ),
        ],
        service_names=[SITE_SERVICE, SITE_INTERNAL_SERVICE, CAMPAIGN_SERVICE],
        engine=engine,
        peers=peers,
        site_resolver=resolver,
        internal_services=[SITE_INTERNAL_SERVICE],
        on_start=[handoff.start, scheduler.start, live_loop.start],
        on_stop=[live_loop.stop, scheduler.stop, handoff.stop],
    )


class HandoffLoop(PeriodicLoop):
    """Hands runs to delivery in the background until delivery confirms each, so a
    campaign process killed after SendCampaignNow answered still gets its run sent."""

    def __init__(self, campaigns: Campaigns, interval_seconds: float) -> None:
        super().__init__(
            "campaign-handoff", campaigns.hand_off_pending, max(interval_seconds, 0.5),
            failure="handing runs to delivery failed; will retry",
            wanted=campaigns.handoff_wanted, logger=log,
        )  # fmt: skip
