"""Campaigns and their runs: validation, the push payload limit, queueing a run."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.campaign.domain.ports import (
    AudienceSource,
    DeliveryQueue,
    PeerCallFailed,
    RunAudienceRecorder,
)
from services.campaign.store import (
    CampaignRecord,
    CampaignStore,
    Notification,
    RunRecord,
    RunState,
    Urgency,
)
from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound, Unavailable
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.push_payload import MAX_PUSH_PAYLOAD_BYTES
from services.kit.push_payload import push_payload as kit_push_payload

log = get_logger(__name__)

MAX_NAME_LENGTH = 200
MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 1024
MAX_URL_LENGTH = 2048
# RFC 8030 TTL; four weeks is what push services keep at most.
MAX_TTL_SECONDS = 4 * 7 * 24 * 3600
DEFAULT_TTL_SECONDS = MAX_TTL_SECONDS
# RFC 8291 with one 4096-byte aes128gcm record: 4096 - 86 header - 16 tag - 1 delimiter.
MAX_PAYLOAD_BYTES = MAX_PUSH_PAYLOAD_BYTES
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Run ids are only known when a run starts; this one has the same length (new_id: 32 hex).
PLACEHOLDER_RUN_ID = "run_" + "f" * 32


@dataclass(frozen=True)
class CampaignDraft:
    name: str
    notification: Notification
    ttl_seconds: int = 0
    urgency: Urgency | None = None


@dataclass(frozen=True)
class CampaignPage:
    campaigns: list[CampaignRecord]
    next_page_token: str


def push_payload(notification: Notification, campaign_id: str, run_id: str) -> bytes:
    """The body delivery will send for this notification (services.kit.push_payload)."""
    return kit_push_payload(
        title=notification.title,
        body=notification.body,
        icon_url=notification.icon_url,
        image_url=notification.image_url,
        target_url=notification.target_url,
        campaign_id=campaign_id,
        run_id=run_id,
    )


class Campaigns:
    def __init__(
        self,
        store: CampaignStore,
        clock: Clock,
        audience: AudienceSource,
        delivery: DeliveryQueue,
        recorder: RunAudienceRecorder,
        audience_page_size: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._audience = audience
        self._delivery = delivery
        self._recorder = recorder
        self._page_size = audience_page_size

    async def create(self, site_id: str, draft: CampaignDraft) -> CampaignRecord:
        notification = _validated_notification(draft.notification)
        # A title may be longer than a name; a defaulted name is cut, never refused.
        name = draft.name.strip() or notification.title.strip()[:MAX_NAME_LENGTH]
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidArgument(
                "INVALID_NAME",
                f"the campaign name is {len(name)} characters; "
                f"at most {MAX_NAME_LENGTH} are allowed",
                field="name",
            )
        ttl_seconds = draft.ttl_seconds or DEFAULT_TTL_SECONDS
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidArgument(
                "INVALID_TTL",
                f"ttl_seconds is {draft.ttl_seconds}; give 1 to {MAX_TTL_SECONDS} (4 weeks), "
                "or 0 for the default of 4 weeks",
                field="ttl_seconds",
            )
        campaign_id = new_id("cmp")
        size = len(push_payload(notification, campaign_id, PLACEHOLDER_RUN_ID))
        if size > MAX_PAYLOAD_BYTES:
            raise InvalidArgument(
                "PAYLOAD_TOO_LARGE",
                f"the push message would carry {size} bytes of JSON, more than the "
                f"{MAX_PAYLOAD_BYTES} bytes a Web Push message can hold; shorten the title, "
                "body or URLs",
                field="notification",
                payload_bytes=str(size),
                limit_bytes=str(MAX_PAYLOAD_BYTES),
            )
        campaign = CampaignRecord(
            campaign_id=campaign_id,
            site_id=site_id,
            name=name,
            notification=notification,
            ttl_seconds=ttl_seconds,
            urgency=draft.urgency or Urgency.NORMAL,
            create_time=self._clock.now(),
        )
        if not await self._store.insert_campaign(campaign):
            raise NotFound("SITE_NOT_FOUND", f"there is no site {site_id!r}", site_id=site_id)
        log.info("campaign created", campaign_id=campaign_id)
        return campaign

    async def get(self, site_id: str, campaign_id: str) -> CampaignRecord:
        if not campaign_id:
            raise InvalidArgument(
                "MISSING_CAMPAIGN_ID", "campaign_id is required", field="campaign_id"
            )
        campaign = await self._store.get_campaign(site_id, campaign_id)
        if campaign is None:
            raise NotFound(
                "CAMPAIGN_NOT_FOUND",
                f"there is no campaign {campaign_id!r} in this site",
                campaign_id=campaign_id,
            )
        return campaign

    async def list(self, site_id: str, page_size: int, page_token: str) -> CampaignPage:
        if page_size < 0:
            raise InvalidArgument(
                "INVALID_PAGE_SIZE",
                f"page_size is {page_size}; "
                f"give 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}",
                field="page_size",
            )
        limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_page_token(page_token)
        rows = await self._store.list_campaigns(site_id, after, limit + 1)
        page = rows[:limit]
        next_token = _encode_page_token(page[-1].campaign_id) if len(rows) > limit else ""
        return CampaignPage(campaigns=page, next_page_token=next_token)

    async def get_run(self, site_id: str, run_id: str) -> RunRecord:
        if not run_id:
            raise InvalidArgument("MISSING_RUN_ID", "run_id is required", field="run_id")
        run = await self._store.get_run(site_id, run_id)
        if run is None:
            raise NotFound(
                "RUN_NOT_FOUND", f"there is no run {run_id!r} in this site", run_id=run_id
            )
        return run

    async def send_now(self, site_id: str, campaign_id: str) -> RunRecord:
        """Queues the campaign's reachable audience in delivery as a new run.

        Delivery sends nothing before StartDeliveryRun, the last step, so a run that
        fails on the way is FAILED with nothing sent; a start whose reply was lost is
        checked with delivery before the run is called failed.
        """
        campaign = await self.get(site_id, campaign_id)
        run = RunRecord(
            run_id=new_id("run"),
            site_id=site_id,
            campaign_id=campaign.campaign_id,
            state=RunState.PREPARING,
            audience=0,
            failure_reason="",
            create_time=self._clock.now(),
        )
        await self._store.insert_run(run)
        log.info("run preparing", run_id=run.run_id, campaign_id=campaign.campaign_id)
        queued = 0
        try:
            await self._delivery.open_run(site_id, run.run_id, campaign)
            async with aclosing(self._audience.reachable_pages(site_id, self._page_size)) as pages:
                async for page in pages:
                    if page:
                        await self._delivery.enqueue(site_id, run.run_id, page)
                        queued += len(page)
            # Reporting learns the audience before any outcome can arrive.
            await self._recorder.record_audience(site_id, run.run_id, campaign.campaign_id, queued)
            await self._start_delivery(site_id, run.run_id)
        except PeerCallFailed as failure:
            reason = f"{failure} (after queueing {queued} recipients)"
            await self._fail(run, reason)
            consequence = (
                "delivery may be sending it anyway: check GetDeliveryRun before sending again"
                if failure.may_have_started
                else "nothing was sent, send the campaign again once that service is back"
            )
            raise Unavailable(
                "RUN_QUEUEING_FAILED",
                f"run {run.run_id} of campaign {campaign.campaign_id} could not be queued: "
                f"{failure.step} failed ({failure.detail}); {consequence}",
                run_id=run.run_id,
                step=failure.step,
            ) from failure
        except BaseException:
            # Cancelled (the caller went away) or a bug: the run must not stay PREPARING.
            await asyncio.shield(self._fail(run, "internal error while queueing; nothing was sent"))
            raise
        finished = await self._store.finish_run(
            site_id, run.run_id, RunState.QUEUED, queued, "", self._clock.now()
        )
        assert finished is not None  # the run was inserted above and is never deleted alone
        log.info("run queued", run_id=run.run_id, audience=queued)
        return finished

    async def _start_delivery(self, site_id: str, run_id: str) -> None:
        try:
            await self._delivery.start(site_id, run_id)
        except PeerCallFailed as failure:
            # The start may have landed with only its reply lost: then the run is sending,
            # and calling it FAILED ("nothing was sent") would be untrue.
            try:
                if await self._delivery.started(site_id, run_id):
                    log.warning("start reply lost, but delivery has the run", run_id=run_id)
                    return
            except PeerCallFailed:
                raise PeerCallFailed(
                    failure.step,
                    f"{failure.detail}; whether delivery started the run could not be "
                    "checked, see GetDeliveryRun",
                    may_have_started=True,
                ) from failure
            raise

    async def _fail(self, run: RunRecord, reason: str) -> None:
        await self._store.finish_run(
            run.site_id, run.run_id, RunState.FAILED, 0, reason, self._clock.now()
        )
        log.warning("run failed", run_id=run.run_id, failure_reason=reason)


def _validated_notification(notification: Notification) -> Notification:
    if not notification.title.strip():
        raise InvalidArgument(
            "MISSING_TITLE", "the notification needs a title", field="notification.title"
        )
    _check_length("notification.title", notification.title, MAX_TITLE_LENGTH, "INVALID_TITLE")
    _check_length("notification.body", notification.body, MAX_BODY_LENGTH, "INVALID_BODY")
    for field, url in (
        ("icon_url", notification.icon_url),
        ("image_url", notification.image_url),
        ("target_url", notification.target_url),
    ):
        _check_url(f"notification.{field}", url)
    return notification


def _check_length(field: str, value: str, limit: int, reason: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            reason, f"{field} is {len(value)} characters; at most {limit} are allowed", field=field
        )


def _check_url(field: str, url: str) -> None:
    if not url:
        return
    _check_length(field, url, MAX_URL_LENGTH, "INVALID_URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not host
        or any(c.isspace() or ord(c) < 0x20 for c in url)
    ):
        shown = url if len(url) <= 80 else url[:77] + "..."
        raise InvalidArgument(
            "INVALID_URL",
            f"{field} must be an absolute https:// (or http://) URL, got {shown!r}",
            field=field,
        )


def _encode_page_token(after_campaign_id: str) -> str:
    raw = json.dumps({"after": after_campaign_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str) -> str:
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeDecodeError):
        after = None
    if not isinstance(after, str) or not after:
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN",
            "page_token is not one this service handed out; pass next_page_token unchanged",
            field="page_token",
        )
    return after
