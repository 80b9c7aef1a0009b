"""Persistence of the campaign service: the only module that speaks SQL.

Every tenant query filters on site_id; callers get frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_pb2
from services.campaign import models
from services.kit.db import session_factory

# Missed occurrences a campaign shows (newest first).
MISSED_SHOWN = 20
M = TypeVar("M", bound=Message)


class Urgency(StrEnum):
    """RFC 8030 §5.3 Urgency, as stored."""

    VERY_LOW = "very-low"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class RunState(StrEnum):
    # Handed (or being handed) to delivery, which resolves and queues the audience.
    PREPARING = "preparing"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    # Cancelled (CancelRun): has its finish time; nothing more is sent.
    CANCELLED = "cancelled"


class CampaignState(StrEnum):
    # No schedule: runs start only when asked.
    DRAFT = "draft"
    # The schedule has a next occurrence (next_run_time).
    SCHEDULED = "scheduled"
    # The schedule starts nothing; occurrences falling due meanwhile are missed.
    PAUSED = "paused"
    # The schedule has no occurrence left.
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RunPhase(StrEnum):
    """Which part of an A/B test with a test phase a run is."""

    # Not such a part: the whole audience.
    NONE = ""
    # The test share of the audience, each person its variant.
    VARIANT_TEST = "variant_test"
    # The rest of the audience, after the test: the winner, or the test's split.
    VARIANT_REST = "variant_rest"


class RestState(StrEnum):
    """Where a test run's rest stands."""

    # Waiting for rest_time (and, past it, for reporting to answer).
    PENDING = "pending"
    # The rest run is stored (related_run_id).
    STARTED = "started"
    # The test run or its campaign was cancelled first: no rest run.
    CANCELLED = "cancelled"


class FiringOutcome(StrEnum):
    """What a live campaign did with one triggering event."""

    PUSHED = "pushed"
    # The person did not match the campaign's audience when the push was due.
    NOT_IN_AUDIENCE = "not_in_audience"
    # The person matched but had no subscriber a push could reach.
    UNREACHABLE = "unreachable"
    # The person was pushed by this campaign less than the cooldown ago.
    COOLDOWN = "cooldown"
    # The campaign was paused when the push was due.
    PAUSED = "paused"


class MissedReason(StrEnum):
    PAUSED = "paused"
    # A later occurrence was due too when the scheduler got to it: only that one ran.
    SUPERSEDED = "superseded"
    # The scheduler got to it after its cut-off, or after the schedule's end.
    CUT_OFF = "cut_off"
    ENDED = "ended"


class VapidKeyOrigin(StrEnum):
    # Made by Clarion with the site: its current key.
    GENERATED = "generated"
    # Another provider's pair (ImportVapidKey), for the subscribers moved with it.
    IMPORTED = "imported"


@dataclass(frozen=True)
class VapidKeyRecord:
    """A VAPID key pair of a site by its public half (no private key)."""

    vapid_key_id: str
    public_key: bytes
    current: bool
    origin: VapidKeyOrigin
    create_time: datetime


@dataclass(frozen=True)
class LegacySafariRecord:
    """A site's legacy Safari configuration as its owner may see it (no key, no icon)."""

    website_push_id: str
    website_name: str
    allowed_domains: tuple[str, ...]
    url_format_string: str
    apns_key_id: str
    apns_team_id: str
    certificate_subject: str
    certificate_expire_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class LegacySafariIconSet:
    """The push package's icon.iconset PNGs, by the file name's size part."""

    icon_16x16: bytes = field(repr=False)
    icon_16x16_2x: bytes = field(repr=False)
    icon_32x32: bytes = field(repr=False)
    icon_32x32_2x: bytes = field(repr=False)
    icon_128x128: bytes = field(repr=False)
    icon_128x128_2x: bytes = field(repr=False)


@dataclass(frozen=True)
class LegacySafariSecrets:
    """What only Clarion's services see: the APNs key, the signing certificate and its
    key (PKCS#8 DER, DER), the icons. Never printed (repr redacts every field)."""

    apns_private_key: bytes = field(repr=False)
    certificate: bytes = field(repr=False)
    certificate_private_key: bytes = field(repr=False)
    icons: LegacySafariIconSet = field(repr=False)
    # The certificate's issuers given with it (DER), nearest first.
    certificate_chain: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class LegacySafariCredentials:
    site_id: str
    config: LegacySafariRecord
    secrets: LegacySafariSecrets = field(repr=False)


@dataclass(frozen=True)
class SiteRecord:
    """A site as its owner may see it (no private key)."""

    site_id: str
    name: str
    vapid_public_key: bytes
    vapid_subject: str
    create_time: datetime
    # Every key pair the site signs with, current first, then by creation.
    vapid_keys: tuple[VapidKeyRecord, ...] = ()
    # IANA time zone of its audience; "": UTC.
    timezone: str = ""
    # Frequency cap, do-not-disturb hours and throttle of every campaign; None: none.
    delivery_policy: campaign_pb2.DeliveryPolicy | None = None
    # The site's home page (absolute http(s) URL); "": none given.
    home_url: str = ""
    # Its legacy Safari configuration (public parts); None: not configured.
    legacy_safari: LegacySafariRecord | None = None


class WebsitePushIdTaken(Exception):
    """Another site's legacy Safari configuration has this Website Push ID."""


@dataclass(frozen=True)
class VapidKeyPair:
    vapid_key_id: str
    # PKCS#8 DER.
    private_key: bytes = field(repr=False)
    public_key: bytes


@dataclass(frozen=True)
class SiteCredentials:
    site_id: str
    vapid_private_key: bytes
    vapid_public_key: bytes
    vapid_subject: str
    # The id of the key above (the site's current key), and every pair it signs with.
    current_vapid_key_id: str = ""
    vapid_keys: tuple[VapidKeyPair, ...] = ()

    def __repr__(self) -> str:  # keeps the private keys out of logs and tracebacks
        return f"SiteCredentials(site_id={self.site_id!r}, vapid_private_key=<redacted>)"


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    site_id: str
    name: str
    notification: common_pb2.Notification
    ttl_seconds: int
    urgency: Urgency
    create_time: datetime
    update_time: datetime
    request_id: str | None = None
    version: int = 1
    # Who its runs go to; None: every reachable subscriber.
    audience: segment_pb2.AudienceSelector | None = None
    # When its runs start by themselves: domain/schedules.py's JSON form; None: only
    # when asked.
    schedule: str | None = None
    state: CampaignState = CampaignState.DRAFT
    # The schedule's next occurrence (scheduled, or paused: the next one to be missed).
    next_run_time: datetime | None = None
    # Occurrences that started no run, newest first (get_campaign fills it).
    missed: tuple[tuple[datetime, MissedReason], ...] = ()
    # What the create with request_id asked for (hex SHA-256); None: not kept.
    request_fingerprint: str | None = None
    # A live campaign's trigger: domain/triggers.py's JSON form; None: not live.
    trigger: str | None = None
    # Where a live campaign has read segment's event feed to.
    feed_cursor: str = ""
    # Local-time delivery and cut-off: domain/timing.py's JSON; None: all at once.
    timing: str | None = None
    # What a missing template value becomes, and the UTM parameters of its click URLs;
    # None: unset (the defaults).
    personalization: campaign_pb2.Personalization | None = None
    utm: campaign_pb2.UtmParameters | None = None
    # RFC 8030 Topic of its pushes; "": one per run.
    topic: str = ""
    # In the order given, without repeats.
    labels: tuple[str, ...] = ()
    # Its delivery policies; None: none of its own.
    policy: campaign_pb2.CampaignPolicy | None = None
    # An A/B test's variants, in the campaign's order (`notification` is then empty);
    # (): none.
    variants: tuple[campaign_pb2.Variant, ...] = ()
    # The A/B test's test phase; None: every recipient gets its variant at once.
    variant_test: campaign_pb2.VariantTest | None = None
    # What counts as a conversion of its pushes; None: none.
    conversion_goal: common_pb2.ConversionGoal | None = None
    # Completed with a run still sending (shown as RUNNING; never stored): set by
    # Campaigns.shown.
    running: bool = False


@dataclass(frozen=True)
class ScheduledStep:
    """What the scheduler does for one due campaign, in one transaction: the run it
    starts (if any), the occurrences it records as missed, and where the schedule goes."""

    run: RunRecord | None
    missed: tuple[tuple[datetime, MissedReason], ...]
    state: CampaignState
    next_run_time: datetime | None


@dataclass(frozen=True)
class RunProgress:
    resolved: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    expired: int = 0


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    site_id: str
    campaign_id: str
    state: RunState
    failure_reason: str
    progress: RunProgress
    # What the run sends (fixed at its start) and whether delivery has it yet.
    payload: bytes
    ttl_seconds: int
    urgency: Urgency
    handoff_pending: bool
    create_time: datetime
    finish_time: datetime | None = None
    request_id: str | None = None
    handoff_attempts: int = 0
    # The campaign's audience when the run started; None: every reachable subscriber.
    audience: segment_pb2.AudienceSelector | None = None
    # A listed audience instead of `audience` (a transactional send, a trigger's
    # firings); None: the audience.
    recipients: ListedRecipients | None = None
    # Local time and absolute cut-off (domain/timing.py's run JSON); None: all at once.
    timing: str | None = None
    # The rest of what it sends beside `payload`; None for a run stored before these
    # were kept: the payload alone.
    content_options: RunContentOptions | None = None
    # The campaign's policy when the run started; None: none.
    policy: campaign_pb2.CampaignPolicy | None = None
    # A test send: to the site's test profiles, left out of reports.
    test: bool = False
    # An A/B test's content, each variant with its share, instead of `payload` (then
    # empty) and `content_options`; (): none.
    variants: tuple[RunVariantContent, ...] = ()
    # The campaign's conversion goal when the run started; None: none.
    conversion_goal: common_pb2.ConversionGoal | None = None
    phase: RunPhase = RunPhase.NONE
    # The share of the audience it goes to: [start, end) of 10,000 basis points; None:
    # all of it.
    sample: tuple[int, int] | None = None
    # A test run's rest run (once started), a rest run's test run.
    related_run_id: str | None = None
    # A rest run's: how its variants were chosen.
    variant_decision: campaign_pb2.VariantDecision | None = None
    # A test run's rest: when it is due, where it stands, and what it sends.
    rest_time: datetime | None = None
    rest_state: RestState | None = None
    rest_plan: RestPlan | None = None
    rest_attempts: int = 0
    # Push services holding its site's sends, as delivery last said (never stored).
    held_push_services: tuple[common_pb2.HeldPushService, ...] = ()


@dataclass(frozen=True)
class RunVariantContent:
    """One variant of a run's A/B test: its share of the recipients (percent) and what
    it sends, fixed when the run starts."""

    variant_id: str
    weight_percent: int
    payload: bytes
    options: RunContentOptions


@dataclass(frozen=True)
class RestPlan:
    """What a test run's rest sends, fixed when the test starts: the campaign's variants
    and what shapes their content (rendered for the rest run when it starts), its
    timing (the cut-off counts from the rest's start), and the winner's metric
    (clarion.campaign.v1.WinnerMetric)."""

    variants: tuple[campaign_pb2.Variant, ...]
    personalization: campaign_pb2.Personalization | None
    utm: campaign_pb2.UtmParameters | None
    topic: str
    timing: str | None
    metric: int


@dataclass(frozen=True)
class RunContentOptions:
    """What a run sends beside its payload, fixed when it starts (the domain's
    content.RunContentParts less the payload)."""

    # Browser (clarion.common.v1.Browser number) -> the payload its recipients get.
    browser_payloads: dict[int, bytes] = field(default_factory=dict)
    # The profile and event properties its templates read.
    profile_properties: tuple[str, ...] = ()
    event_properties: tuple[str, ...] = ()
    suppress_missing_values: bool = False
    missing_value_text: str = ""
    # RFC 8030 Topic; "": one derived from the run id.
    topic: str = ""


@dataclass(frozen=True)
class ListedRecipients:
    """Who a run goes to when it is a list: the reachable subscribers of these profiles,
    and these subscribers."""

    profile_ids: tuple[str, ...] = ()
    subscriber_ids: tuple[str, ...] = ()
    # What each listed person's templates read as `event` (a trigger's firing):
    # (profile_id, or "" and the subscriber_id, triggers.event_properties_json).
    contexts: tuple[tuple[str, str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.profile_ids) + len(self.subscriber_ids)


@dataclass(frozen=True)
class WaitRecord:
    """A live campaign's open wait for one person (trigger_waits)."""

    campaign_id: str
    site_id: str
    person_key: str
    event_id: str
    event_time: datetime
    profile_id: str
    subscriber_id: str
    due_time: datetime
    # The triggering event's properties its push's templates read
    # (triggers.event_properties_json; "": none).
    event_properties: str = ""


@dataclass(frozen=True)
class FiringRecord:
    campaign_id: str
    site_id: str
    event_id: str
    person_key: str
    outcome: FiringOutcome
    run_id: str | None
    fire_time: datetime


@dataclass(frozen=True)
class FeedStep:
    """What one page of a live campaign's event feed did, stored in one transaction
    with the cursor's move from `cursor_from` to `cursor_to`."""

    cursor_from: str
    cursor_to: str
    # Waits opened, re-armed or moved (replacing the person's wait).
    waits_set: tuple[WaitRecord, ...] = ()
    # Waits ended by the inaction event: (person_key, event_id of the wait ended).
    waits_cleared: tuple[tuple[str, str], ...] = ()
    firings: tuple[FiringRecord, ...] = ()
    runs: tuple[RunRecord, ...] = ()


# get_campaign reads again while a scheduler step keeps changing the campaign under it.
CONSISTENT_READ_ATTEMPTS = 5


class CampaignStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)
        self._postgresql = engine.dialect.name == "postgresql"

    # Sites ---------------------------------------------------------------------------

    async def insert_site(
        self, site: SiteRecord, vapid_private_key: bytes, api_key_hash: str, vapid_key_id: str
    ) -> None:
        """Stores the site with its API key and its key pair, which is also its current
        row of site_vapid_keys (id `vapid_key_id`), in one transaction."""
        async with self._sessions.begin() as session:
            session.add(
                models.Site(
                    site_id=site.site_id,
                    name=site.name,
                    vapid_subject=site.vapid_subject,
                    vapid_private_key=vapid_private_key,
                    vapid_public_key=site.vapid_public_key,
                    create_time=site.create_time,
                )
            )
            await session.flush()  # the key rows reference the site
            session.add(
                models.SiteApiKey(
                    key_hash=api_key_hash, site_id=site.site_id, create_time=site.create_time
                )
            )
            session.add(
                models.SiteVapidKey(
                    vapid_key_id=vapid_key_id,
                    site_id=site.site_id,
                    private_key=vapid_private_key,
                    public_key=site.vapid_public_key,
                    is_current=True,
                    origin=VapidKeyOrigin.GENERATED.value,
                    create_time=site.create_time,
                )
            )

    async def get_site(self, site_id: str) -> SiteRecord | None:
        async with self._sessions() as session:
            row = await session.get(models.Site, site_id)
            if row is None:
                return None
            keys = await _vapid_keys(session, [site_id])
            safari = await _legacy_safari(session, [site_id])
            return _site(row, keys.get(site_id, ()), safari.get(site_id))

    async def set_legacy_safari(
        self, site_id: str, config: LegacySafariRecord, secrets: LegacySafariSecrets
    ) -> SiteRecord | None:
        """Stores the site's whole legacy Safari configuration (replacing any), in one
        transaction, and returns the site as stored. None (nothing stored) when there is
        no such site; WebsitePushIdTaken (nothing stored) when another site has the
        Website Push ID."""
        values: dict[str, Any] = {
            "website_push_id": config.website_push_id,
            "website_name": config.website_name,
            "allowed_domains": json.dumps(list(config.allowed_domains)),
            "url_format_string": config.url_format_string,
            "apns_private_key": secrets.apns_private_key,
            "apns_key_id": config.apns_key_id,
            "apns_team_id": config.apns_team_id,
            "certificate": secrets.certificate,
            "certificate_private_key": secrets.certificate_private_key,
            "certificate_chain": json.dumps(
                [base64.b64encode(der).decode("ascii") for der in secrets.certificate_chain]
            ),
            "certificate_subject": config.certificate_subject,
            "certificate_expire_time": config.certificate_expire_time,
            "icon_16x16": secrets.icons.icon_16x16,
            "icon_16x16_2x": secrets.icons.icon_16x16_2x,
            "icon_32x32": secrets.icons.icon_32x32,
            "icon_32x32_2x": secrets.icons.icon_32x32_2x,
            "icon_128x128": secrets.icons.icon_128x128,
            "icon_128x128_2x": secrets.icons.icon_128x128_2x,
            "update_time": config.update_time,
        }
        try:
            async with self._sessions.begin() as session:
                # A write to the site's row first: it locks the row on PostgreSQL and
                # takes SQLite's write lock, so concurrent sets of one site take turns.
                locked = await session.execute(
                    update(models.Site)
                    .where(models.Site.site_id == site_id)
                    .values(name=models.Site.name)
                    .execution_options(synchronize_session=False)
                )
                if locked.rowcount != 1:
                    return None
                taken = await session.scalar(
                    select(models.SiteLegacySafari.site_id).where(
                        models.SiteLegacySafari.website_push_id == config.website_push_id,
                        models.SiteLegacySafari.site_id != site_id,
                    )
                )
                if taken is not None:
                    raise WebsitePushIdTaken(config.website_push_id)
                stored = await session.get(models.SiteLegacySafari, site_id)
                if stored is None:
                    session.add(models.SiteLegacySafari(site_id=site_id, **values))
                else:
                    for name, value in values.items():
                        setattr(stored, name, value)
                await session.flush()
                row = await session.get(models.Site, site_id)
                assert row is not None
                keys = await _vapid_keys(session, [site_id])
                safari = await _legacy_safari(session, [site_id])
                return _site(row, keys.get(site_id, ()), safari.get(site_id))
        except IntegrityError:
            # Another site took the Website Push ID between the check and the write.
            raise WebsitePushIdTaken(config.website_push_id) from None

    async def legacy_safari_credentials(
        self, site_id: str, *, include_push_package: bool
    ) -> LegacySafariCredentials | None:
        """The site's legacy Safari configuration with its secrets; the certificate, its
        key and the icons only with `include_push_package` (empty otherwise). None when
        the site has none."""
        table = models.SiteLegacySafari
        columns = [*_LEGACY_SAFARI_PUBLIC, table.apns_private_key]
        if include_push_package:
            columns += [
                table.certificate, table.certificate_private_key, table.certificate_chain,
                *_ICON_COLUMNS,
            ]  # fmt: skip
        async with self._sessions() as session:
            row = (await session.execute(select(*columns).where(table.site_id == site_id))).first()
        if row is None:
            return None
        values = row._mapping
        icons = LegacySafariIconSet(
            *(bytes(values.get(column.key, b"")) for column in _ICON_COLUMNS)
        )
        return LegacySafariCredentials(
            site_id=site_id,
            config=_legacy_safari_record(row),
            secrets=LegacySafariSecrets(
                apns_private_key=bytes(values["apns_private_key"]),
                certificate=bytes(values.get("certificate", b"")),
                certificate_private_key=bytes(values.get("certificate_private_key", b"")),
                icons=icons,
                certificate_chain=tuple(
                    base64.b64decode(der)
                    for der in json.loads(values.get("certificate_chain", "[]"))
                ),
            ),
        )

    async def site_id_for_website_push_id(self, website_push_id: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(models.SiteLegacySafari.site_id).where(
                    models.SiteLegacySafari.website_push_id == website_push_id
                )
            )

    async def get_site_credentials(self, site_id: str) -> SiteCredentials | None:
        async with self._sessions() as session:
            row = await session.get(models.Site, site_id)
            if row is None:
                return None
            key_rows = (
                await session.scalars(
                    select(models.SiteVapidKey)
                    .where(models.SiteVapidKey.site_id == site_id)
                    .order_by(models.SiteVapidKey.create_time, models.SiteVapidKey.vapid_key_id)
                )
            ).all()
            return SiteCredentials(
                site_id=row.site_id,
                vapid_private_key=row.vapid_private_key,
                vapid_public_key=row.vapid_public_key,
                vapid_subject=row.vapid_subject,
                current_vapid_key_id=next(
                    (key.vapid_key_id for key in key_rows if key.is_current), ""
                ),
                vapid_keys=tuple(
                    VapidKeyPair(key.vapid_key_id, key.private_key, key.public_key)
                    for key in key_rows
                ),
            )

    async def import_vapid_key(
        self,
        site_id: str,
        vapid_key_id: str,
        private_key: bytes,
        public_key: bytes,
        now: datetime,
    ) -> tuple[VapidKeyRecord, bool] | None:
        """Adds an imported key pair (PKCS#8 DER, 65-byte public point) to the site, or
        finds the one it already has with that public key: (the key, whether it was
        added). Never current. None (nothing stored) when there is no such site."""
        try:
            async with self._sessions.begin() as session:
                if await session.get(models.Site, site_id) is None:
                    return None
                existing = await _vapid_key_by_public(session, site_id, public_key)
                if existing is not None:
                    return existing, False
                row = models.SiteVapidKey(
                    vapid_key_id=vapid_key_id,
                    site_id=site_id,
                    private_key=private_key,
                    public_key=public_key,
                    is_current=False,
                    origin=VapidKeyOrigin.IMPORTED.value,
                    create_time=now,
                )
                session.add(row)
                await session.flush()
                return _vapid_key(row), True
        except IntegrityError:
            # A concurrent import of the same pair won.
            async with self._sessions() as session:
                existing = await _vapid_key_by_public(session, site_id, public_key)
            if existing is None:
                raise
            return existing, False

    async def replace_api_keys(self, site_id: str, api_key_hash: str, now: datetime) -> bool:
        """Makes `api_key_hash` the site's only key: every earlier key is deleted in the
        same transaction. False (nothing changed) when there is no such site."""
        async with self._sessions.begin() as session:
            # A write to the site's row first: it locks the row on PostgreSQL and takes
            # SQLite's write lock, so concurrent rotations of one site take turns and
            # exactly one new key survives.
            locked = await session.execute(
                update(models.Site)
                .where(models.Site.site_id == site_id)
                .values(name=models.Site.name)
                .execution_options(synchronize_session=False)
            )
            if locked.rowcount != 1:
                return False
            await session.execute(
                delete(models.SiteApiKey)
                .where(models.SiteApiKey.site_id == site_id)
                .execution_options(synchronize_session=False)
            )
            session.add(models.SiteApiKey(key_hash=api_key_hash, site_id=site_id, create_time=now))
        return True

    async def update_site(
        self,
        site_id: str,
        changes: dict[str, str],
        policy_change: Callable[
            [campaign_pb2.DeliveryPolicy | None], campaign_pb2.DeliveryPolicy | None
        ]
        | None = None,
    ) -> SiteRecord | None:
        """Sets the named columns (name, vapid_subject, timezone, home_url) of the site, and its
        delivery policy to `policy_change(the stored one)`, and returns it as stored; only
        those columns are written, so concurrent updates of different fields both land.
        The policy is read and written after the site's row is locked, so two changes of
        different parts of it both land too. None when there is no such site."""
        async with self._sessions.begin() as session:
            # A write to the site's row first: on PostgreSQL it locks the row, on SQLite it
            # takes the write lock, before the policy is read.
            locked = await session.execute(
                update(models.Site)
                .where(models.Site.site_id == site_id)
                .values(**(changes or {"name": models.Site.name}))
                .execution_options(synchronize_session=False)
            )
            if locked.rowcount != 1:
                return None
            if policy_change is not None:
                stored = await session.scalar(
                    select(models.Site.delivery_policy).where(models.Site.site_id == site_id)
                )
                policy = policy_change(_message(campaign_pb2.DeliveryPolicy, stored))
                await session.execute(
                    update(models.Site)
                    .where(models.Site.site_id == site_id)
                    .values(delivery_policy=_message_bytes(policy))
                    .execution_options(synchronize_session=False)
                )
            row = await session.get(models.Site, site_id, populate_existing=True)
            if row is None:
                return None
            keys = await _vapid_keys(session, [site_id])
            safari = await _legacy_safari(session, [site_id])
            return _site(row, keys.get(site_id, ()), safari.get(site_id))

    async def list_sites(self, after_site_id: str, limit: int) -> list[SiteRecord]:
        """Up to `limit` sites with ids above `after_site_id`, by id (every site: for
        operators, not a tenant's query)."""
        query = select(models.Site)
        if after_site_id:
            query = query.where(models.Site.site_id > after_site_id)
        query = query.order_by(models.Site.site_id).limit(limit)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
            ids = [row.site_id for row in rows]
            keys = await _vapid_keys(session, ids)
            safari = await _legacy_safari(session, ids)
            return [
                _site(row, keys.get(row.site_id, ()), safari.get(row.site_id)) for row in rows
            ]

    async def site_id_for_api_key_hash(self, key_hash: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(models.SiteApiKey.site_id).where(models.SiteApiKey.key_hash == key_hash)
            )

    # Campaigns -----------------------------------------------------------------------

    async def insert_campaign(self, campaign: CampaignRecord) -> CampaignRecord | None:
        """Stores the campaign and returns it; with a request_id already used in the site,
        returns that first campaign instead. None (nothing stored) when the site is gone."""
        if campaign.request_id:
            existing = await self.campaign_by_request(campaign.site_id, campaign.request_id)
            if existing is not None:
                return existing
        try:
            async with self._sessions.begin() as session:
                if await session.get(models.Site, campaign.site_id) is None:
                    return None
                session.add(
                    models.Campaign(
                        campaign_id=campaign.campaign_id,
                        site_id=campaign.site_id,
                        name=campaign.name,
                        notification=campaign.notification.SerializeToString(),
                        ttl_seconds=campaign.ttl_seconds,
                        urgency=campaign.urgency.value,
                        audience=_audience_bytes(campaign.audience),
                        request_id=campaign.request_id,
                        request_fingerprint=campaign.request_fingerprint,
                        version=campaign.version,
                        create_time=campaign.create_time,
                        update_time=campaign.update_time,
                        schedule=campaign.schedule,
                        state=campaign.state.value,
                        next_run_time=campaign.next_run_time,
                        trigger=campaign.trigger,
                        feed_cursor=campaign.feed_cursor,
                        timing=campaign.timing,
                        **_campaign_content_values(campaign),
                    )
                )
                await session.flush()  # the label rows reference the campaign
                await _write_labels(session, campaign, replace_stored=False)
        except IntegrityError:
            # A concurrent create with the same request_id won.
            if campaign.request_id:
                existing = await self.campaign_by_request(campaign.site_id, campaign.request_id)
                if existing is not None:
                    return existing
            raise
        return campaign

    async def campaign_by_request(self, site_id: str, request_id: str) -> CampaignRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(models.Campaign).where(
                    models.Campaign.site_id == site_id, models.Campaign.request_id == request_id
                )
            )
            return _campaign(row) if row is not None else None

    async def get_campaign(self, site_id: str, campaign_id: str) -> CampaignRecord | None:
        """The campaign with its latest missed occurrences (at most MISSED_SHOWN), as
        one version: each statement reads the latest commit (READ COMMITTED; SQLite
        outside a write), so a scheduler step landing between the two reads (a missed
        occurrence and the state it sets) would mix two versions. The version is read
        again after the occurrences, and a changed one reads both again."""
        where = (models.Campaign.site_id == site_id, models.Campaign.campaign_id == campaign_id)
        for _ in range(CONSISTENT_READ_ATTEMPTS):
            async with self._sessions() as session:
                row = await session.scalar(select(models.Campaign).where(*where))
                if row is None:
                    return None
                missed = (
                    await session.execute(
                        select(
                            models.MissedOccurrence.occurrence_time,
                            models.MissedOccurrence.reason,
                        )
                        .where(
                            models.MissedOccurrence.site_id == site_id,
                            models.MissedOccurrence.campaign_id == campaign_id,
                        )
                        .order_by(models.MissedOccurrence.occurrence_time.desc())
                        .limit(MISSED_SHOWN)
                    )
                ).all()
                version = await session.scalar(select(models.Campaign.version).where(*where))
                campaign = _campaign(row)
            if version == campaign.version:
                break
        return replace(
            campaign, missed=tuple((time, MissedReason(reason)) for time, reason in missed)
        )

    async def advance_due_campaigns(
        self, now: datetime, limit: int, step: Callable[[CampaignRecord], ScheduledStep]
    ) -> list[RunRecord]:
        """For up to `limit` campaigns whose schedule is due (scheduled or paused, next
        occurrence at or before `now`), applies `step` in one transaction per campaign:
        stores its run, its missed occurrences, and the schedule's new state and next
        occurrence. Returns the runs started.

        Exactly once per occurrence: PostgreSQL locks each claimed campaign row (SKIP
        LOCKED, so replicas share the due campaigns instead of waiting on each other),
        SQLite has a single writer, and the run's request id (the occurrence) is unique
        per campaign, so even a step applied twice could not start a second run.
        """
        started: list[RunRecord] = []
        due = (
            select(models.Campaign)
            .where(
                models.Campaign.state.in_(
                    [CampaignState.SCHEDULED.value, CampaignState.PAUSED.value]
                ),
                models.Campaign.next_run_time <= now,
            )
            .order_by(models.Campaign.next_run_time)
            .limit(1)
        )
        if self._postgresql:
            due = due.with_for_update(skip_locked=True)
        for _ in range(limit):
            async with self._sessions.begin() as session:
                row = await session.scalar(due)
                if row is None:
                    break
                campaign = _campaign(row)
                planned = step(campaign)
                for occurrence_time, reason in planned.missed:
                    await session.merge(
                        models.MissedOccurrence(
                            campaign_id=campaign.campaign_id,
                            occurrence_time=occurrence_time,
                            site_id=campaign.site_id,
                            reason=reason.value,
                            record_time=now,
                        )
                    )
                if planned.run is not None:
                    # Its occurrence is its request id: already started (which the lock
                    # makes impossible) is not started again.
                    existing = await session.scalar(
                        select(models.Run.run_id).where(
                            models.Run.site_id == campaign.site_id,
                            models.Run.campaign_id == campaign.campaign_id,
                            models.Run.request_id == planned.run.request_id,
                        )
                    )
                    if existing is None:
                        session.add(_run_row(planned.run))
                        started.append(planned.run)
                row.state = planned.state.value
                row.next_run_time = planned.next_run_time
                row.version = row.version + 1
        return started

    async def update_campaign(
        self, campaign: CampaignRecord, *, feed_cursor_changed: bool = False
    ) -> bool:
        """Stores the changed campaign if nobody changed it since it was read (it is
        still at `campaign.version`), as the next version; False when somebody did. The
        feed cursor (which the live loop moves without a new version) is written only
        when `feed_cursor_changed`. A campaign that stops being live (cancelled,
        completed, its trigger removed or replaced) loses its open waits."""
        extra: dict[str, Any] = {"feed_cursor": campaign.feed_cursor} if feed_cursor_changed else {}
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(models.Campaign)
                .where(
                    models.Campaign.site_id == campaign.site_id,
                    models.Campaign.campaign_id == campaign.campaign_id,
                    models.Campaign.version == campaign.version,
                )
                .values(
                    name=campaign.name,
                    notification=campaign.notification.SerializeToString(),
                    ttl_seconds=campaign.ttl_seconds,
                    urgency=campaign.urgency.value,
                    audience=_audience_bytes(campaign.audience),
                    update_time=campaign.update_time,
                    schedule=campaign.schedule,
                    state=campaign.state.value,
                    next_run_time=campaign.next_run_time,
                    trigger=campaign.trigger,
                    timing=campaign.timing,
                    version=campaign.version + 1,
                    **_campaign_content_values(campaign),
                    **extra,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return False
            await _write_labels(session, campaign, replace_stored=True)
            still_live = campaign.trigger is not None and campaign.state in (
                CampaignState.SCHEDULED, CampaignState.PAUSED,
            )  # fmt: skip
            if not still_live or feed_cursor_changed:
                await session.execute(
                    delete(models.TriggerWait)
                    .where(models.TriggerWait.campaign_id == campaign.campaign_id)
                    .execution_options(synchronize_session=False)
                )
            return True

    async def list_campaigns(
        self, site_id: str, after_campaign_id: str, limit: int, *, label: str = ""
    ) -> list[CampaignRecord]:
        """Up to `limit` of the site's campaigns with ids above `after_campaign_id`, by id;
        with `label`, only those carrying it (a range of campaign_labels' key)."""
        if label:
            labels = models.CampaignLabel
            query = (
                select(models.Campaign)
                .join(labels, labels.campaign_id == models.Campaign.campaign_id)
                .where(labels.site_id == site_id, labels.label == label)
            )
            if after_campaign_id:
                query = query.where(labels.campaign_id > after_campaign_id)
            query = query.order_by(labels.campaign_id).limit(limit)
        else:
            query = select(models.Campaign).where(models.Campaign.site_id == site_id)
            if after_campaign_id:
                query = query.where(models.Campaign.campaign_id > after_campaign_id)
            query = query.order_by(models.Campaign.campaign_id).limit(limit)
        async with self._sessions() as session:
            return [_campaign(row) for row in await session.scalars(query)]

    # Runs ----------------------------------------------------------------------------

    async def insert_run(self, run: RunRecord) -> RunRecord:
        """Stores the run; with a request_id the campaign already used, returns that run."""
        if run.request_id:
            existing = await self._run_by_request(run)
            if existing is not None:
                return existing
        try:
            async with self._sessions.begin() as session:
                session.add(_run_row(run))
        except IntegrityError:
            existing = await self._run_by_request(run) if run.request_id else None
            if existing is None:
                raise
            return existing
        return run

    async def _run_by_request(self, run: RunRecord) -> RunRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(models.Run).where(
                    models.Run.site_id == run.site_id,
                    models.Run.campaign_id == run.campaign_id,
                    models.Run.request_id == run.request_id,
                )
            )
            return _run(row) if row is not None else None

    async def get_run(self, site_id: str, run_id: str) -> RunRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(models.Run).where(models.Run.site_id == site_id, models.Run.run_id == run_id)
            )
            return _run(row) if row is not None else None

    async def list_runs(
        self, site_id: str, campaign_id: str, before_run_id: str, limit: int
    ) -> list[RunRecord]:
        """Up to `limit` of the campaign's runs with ids below `before_run_id`, newest first."""
        query = select(models.Run).where(
            models.Run.site_id == site_id, models.Run.campaign_id == campaign_id
        )
        if before_run_id:
            query = query.where(models.Run.run_id < before_run_id)
        query = query.order_by(models.Run.run_id.desc()).limit(limit)
        async with self._sessions() as session:
            return [_run(row) for row in await session.scalars(query)]

    async def unfinished_runs(self, site_id: str, *campaign_ids: str) -> list[RunRecord]:
        """These campaigns' runs without a finish time (as last stored)."""
        query = select(models.Run).where(
            models.Run.site_id == site_id,
            models.Run.campaign_id.in_(campaign_ids),
            models.Run.finish_time.is_(None),
        )
        async with self._sessions() as session:
            return [_run(row) for row in await session.scalars(query)]

    async def runs_awaiting_handoff(self, now: datetime, limit: int) -> list[RunRecord]:
        """Runs delivery has not confirmed whose next attempt is due, the most overdue
        first (a run that keeps failing backs off and does not hold up the others)."""
        due = or_(models.Run.handoff_next_attempt.is_(None), models.Run.handoff_next_attempt <= now)
        query = (
            select(models.Run)
            .where(models.Run.handoff_pending.is_(True), due)
            .order_by(models.Run.handoff_next_attempt.is_not(None), models.Run.handoff_next_attempt)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_run(row) for row in await session.scalars(query)]

    async def update_run(
        self,
        site_id: str,
        run_id: str,
        now: datetime,
        *,
        state: RunState | None = None,
        progress: RunProgress | None = None,
        failure_reason: str | None = None,
        finish_time: datetime | None = None,
        handed_off: bool = False,
        handoff_retry_at: datetime | None = None,
        unfinished_only: bool = False,
    ) -> None:
        """`unfinished_only`: only while the stored run has no finish time, so a view
        read before the run finished (or was cancelled) never overwrites its end."""
        changes: dict[str, object] = {"update_time": now}
        if state is not None:
            changes["state"] = state.value
        if progress is not None:
            changes.update(progress.__dict__)
        if failure_reason is not None:
            changes["failure_reason"] = failure_reason
        if finish_time is not None:
            changes["finish_time"] = finish_time
        if handed_off:
            changes["handoff_pending"] = False
        if handoff_retry_at is not None:
            changes["handoff_next_attempt"] = handoff_retry_at
            changes["handoff_attempts"] = models.Run.handoff_attempts + 1
        statement = update(models.Run).where(
            models.Run.site_id == site_id, models.Run.run_id == run_id
        )
        if unfinished_only:
            statement = statement.where(models.Run.finish_time.is_(None))
        async with self._sessions.begin() as session:
            await session.execute(statement.values(**changes))

    # Variant tests' rests ------------------------------------------------------------

    async def due_rests(self, now: datetime, limit: int) -> list[RunRecord]:
        """Up to `limit` test runs (all sites) whose rest is pending and due: its time
        has come, and so has its next attempt when reporting could not answer before;
        the earliest first."""
        runs = models.Run
        query = (
            select(runs)
            .where(
                runs.rest_state == RestState.PENDING.value,
                runs.rest_time <= now,
                or_(runs.rest_next_attempt.is_(None), runs.rest_next_attempt <= now),
            )
            .order_by(runs.rest_time)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_run(row) for row in await session.scalars(query)]

    async def start_rest(self, test: RunRecord, rest: RunRecord) -> RestState | None:
        """Stores `rest` as the test run's rest run, in one transaction, only if the rest
        is still pending (compare-and-set: two replicas, or a replica restarted after
        reporting answered, start it once) and the campaign is not cancelled (then the
        rest is marked cancelled instead). Returns what the rest became; None when it
        was not pending any more."""
        runs = models.Run
        pending = (
            runs.site_id == test.site_id,
            runs.run_id == test.run_id,
            runs.rest_state == RestState.PENDING.value,
        )
        async with self._sessions.begin() as session:
            campaign_state = await session.scalar(
                select(models.Campaign.state).where(
                    models.Campaign.campaign_id == test.campaign_id
                )
            )
            outcome = (
                RestState.CANCELLED
                if campaign_state in (None, CampaignState.CANCELLED.value)
                else RestState.STARTED
            )
            values: dict[str, Any] = {"rest_state": outcome.value, "update_time": rest.create_time}
            if outcome is RestState.STARTED:
                values["related_run_id"] = rest.run_id
            # The row write comes first: it locks the test run on PostgreSQL (a cancel
            # of it waits), and takes SQLite's write lock.
            moved = await session.execute(
                update(runs)
                .where(*pending)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:
                return None
            if outcome is RestState.STARTED:
                session.add(_run_row(rest))
        return outcome

    async def campaigns_with_pending_rests(self, site_id: str, *campaign_ids: str) -> set[str]:
        """Those of these campaigns with a variant test's rest still to start."""
        runs = models.Run
        query = (
            select(runs.campaign_id)
            .where(
                runs.site_id == site_id,
                runs.campaign_id.in_(campaign_ids),
                runs.rest_state == RestState.PENDING.value,
            )
            .distinct()
        )
        async with self._sessions() as session:
            return set(await session.scalars(query))

    async def postpone_rest(
        self, site_id: str, run_id: str, now: datetime, retry_at: datetime
    ) -> None:
        """The rest's next attempt is at `retry_at` (reporting could not answer)."""
        runs = models.Run
        async with self._sessions.begin() as session:
            await session.execute(
                update(runs)
                .where(
                    runs.site_id == site_id,
                    runs.run_id == run_id,
                    runs.rest_state == RestState.PENDING.value,
                )
                .values(
                    rest_next_attempt=retry_at,
                    rest_attempts=runs.rest_attempts + 1,
                    update_time=now,
                )
                .execution_options(synchronize_session=False)
            )

    async def cancel_rests(
        self, site_id: str, campaign_id: str, now: datetime, *, run_id: str = ""
    ) -> int:
        """Marks the campaign's pending rests (only the test run `run_id`'s, when given)
        cancelled: they start no rest run. Returns how many."""
        runs = models.Run
        statement = update(runs).where(
            runs.site_id == site_id,
            runs.campaign_id == campaign_id,
            runs.rest_state == RestState.PENDING.value,
        )
        if run_id:
            statement = statement.where(runs.run_id == run_id)
        async with self._sessions.begin() as session:
            cancelled = await session.execute(
                statement.values(rest_state=RestState.CANCELLED.value, update_time=now)
                .execution_options(synchronize_session=False)
            )
        return int(cancelled.rowcount or 0)

    # Live campaigns --------------------------------------------------------------------

    async def live_campaigns(self) -> list[CampaignRecord]:
        """Every campaign with a trigger that is scheduled or paused (all sites: the
        live loop's question)."""
        query = select(models.Campaign).where(
            models.Campaign.trigger.is_not(None),
            models.Campaign.state.in_([CampaignState.SCHEDULED.value, CampaignState.PAUSED.value]),
        )
        async with self._sessions() as session:
            return [_campaign(row) for row in await session.scalars(query)]

    async def waits_for(
        self, campaign_id: str, person_keys: Sequence[str]
    ) -> dict[str, WaitRecord]:
        """The campaign's open waits of these people, by person key."""
        if not person_keys:
            return {}
        query = select(models.TriggerWait).where(
            models.TriggerWait.campaign_id == campaign_id,
            models.TriggerWait.person_key.in_(sorted(set(person_keys))),
        )
        async with self._sessions() as session:
            return {row.person_key: _wait(row) for row in await session.scalars(query)}

    async def last_pushes(
        self, campaign_id: str, person_keys: Sequence[str]
    ) -> dict[str, datetime]:
        """When the campaign last pushed each of these people (those it ever did)."""
        if not person_keys:
            return {}
        firings = models.TriggerFiring
        query = (
            select(firings.person_key, func.max(firings.fire_time))
            .where(
                firings.campaign_id == campaign_id,
                firings.person_key.in_(sorted(set(person_keys))),
                firings.outcome == FiringOutcome.PUSHED.value,
            )
            .group_by(firings.person_key)
        )
        async with self._sessions() as session:
            return {key: time for key, time in await session.execute(query)}

    async def apply_feed_step(self, campaign_id: str, step: FeedStep) -> bool:
        """Stores what a page of the campaign's event feed did and moves its cursor, in
        one transaction, only if the cursor is still where the page was read from; False
        (nothing stored) when another replica moved it first."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(models.Campaign)
                .where(
                    models.Campaign.campaign_id == campaign_id,
                    models.Campaign.feed_cursor == step.cursor_from,
                )
                .values(feed_cursor=step.cursor_to)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:
                return False
            waits = models.TriggerWait
            for person_key, event_id in step.waits_cleared:
                await session.execute(
                    delete(waits)
                    .where(
                        waits.campaign_id == campaign_id,
                        waits.person_key == person_key,
                        waits.event_id == event_id,
                    )
                    .execution_options(synchronize_session=False)
                )
            if step.waits_set:
                await session.execute(
                    delete(waits)
                    .where(
                        waits.campaign_id == campaign_id,
                        waits.person_key.in_([wait.person_key for wait in step.waits_set]),
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.execute(
                    insert(waits), [_wait_values(wait) for wait in step.waits_set]
                )
            await _store_firings(session, step.firings, step.runs)
        return True

    async def due_waits(self, now: datetime, limit: int) -> list[WaitRecord]:
        """Up to `limit` open waits due at or before `now`, the earliest first."""
        query = (
            select(models.TriggerWait)
            .where(models.TriggerWait.due_time <= now)
            .order_by(models.TriggerWait.due_time)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_wait(row) for row in await session.scalars(query)]

    async def end_waits(
        self,
        waits: Sequence[WaitRecord],
        plan: Callable[[list[WaitRecord]], tuple[Sequence[FiringRecord], Sequence[RunRecord]]],
    ) -> list[RunRecord]:
        """Ends these waits in one transaction: each still open as read (not re-armed,
        moved or ended by another replica meanwhile) is deleted, and `plan` turns those
        into the firings and runs stored with it. Returns the runs stored."""
        table = models.TriggerWait
        async with self._sessions.begin() as session:
            taken = []
            for wait in waits:
                deleted = await session.execute(
                    delete(table)
                    .where(
                        table.campaign_id == wait.campaign_id,
                        table.person_key == wait.person_key,
                        table.event_id == wait.event_id,
                        table.due_time == wait.due_time,
                    )
                    .execution_options(synchronize_session=False)
                )
                if deleted.rowcount == 1:
                    taken.append(wait)
            firings, runs = plan(taken)
            await _store_firings(session, firings, runs)
        return list(runs)


async def _store_firings(
    session: Any, firings: Sequence[FiringRecord], runs: Sequence[RunRecord]
) -> None:
    session.add_all([_run_row(run) for run in runs])
    await session.flush()
    if firings:
        await session.execute(
            insert(models.TriggerFiring),
            [
                {
                    "campaign_id": firing.campaign_id,
                    "event_id": firing.event_id,
                    "site_id": firing.site_id,
                    "person_key": firing.person_key,
                    "outcome": firing.outcome.value,
                    "run_id": firing.run_id,
                    "fire_time": firing.fire_time,
                }
                for firing in firings
            ],
        )


def _wait_values(wait: WaitRecord) -> dict[str, Any]:
    return {
        "campaign_id": wait.campaign_id,
        "person_key": wait.person_key,
        "site_id": wait.site_id,
        "event_id": wait.event_id,
        "event_time": wait.event_time,
        "profile_id": wait.profile_id,
        "subscriber_id": wait.subscriber_id,
        "due_time": wait.due_time,
        "event_properties": wait.event_properties,
    }


def _wait(row: models.TriggerWait) -> WaitRecord:
    return WaitRecord(
        campaign_id=row.campaign_id,
        site_id=row.site_id,
        person_key=row.person_key,
        event_id=row.event_id,
        event_time=row.event_time,
        profile_id=row.profile_id,
        subscriber_id=row.subscriber_id,
        due_time=row.due_time,
        event_properties=row.event_properties,
    )

_LEGACY_SAFARI_PUBLIC = (
    models.SiteLegacySafari.site_id,
    models.SiteLegacySafari.website_push_id,
    models.SiteLegacySafari.website_name,
    models.SiteLegacySafari.allowed_domains,
    models.SiteLegacySafari.url_format_string,
    models.SiteLegacySafari.apns_key_id,
    models.SiteLegacySafari.apns_team_id,
    models.SiteLegacySafari.certificate_subject,
    models.SiteLegacySafari.certificate_expire_time,
    models.SiteLegacySafari.update_time,
)
_ICON_COLUMNS = (
    models.SiteLegacySafari.icon_16x16,
    models.SiteLegacySafari.icon_16x16_2x,
    models.SiteLegacySafari.icon_32x32,
    models.SiteLegacySafari.icon_32x32_2x,
    models.SiteLegacySafari.icon_128x128,
    models.SiteLegacySafari.icon_128x128_2x,
)


def _legacy_safari_record(row: Any) -> LegacySafariRecord:
    return LegacySafariRecord(
        website_push_id=row.website_push_id,
        website_name=row.website_name,
        allowed_domains=tuple(json.loads(row.allowed_domains)),
        url_format_string=row.url_format_string,
        apns_key_id=row.apns_key_id,
        apns_team_id=row.apns_team_id,
        certificate_subject=row.certificate_subject,
        certificate_expire_time=row.certificate_expire_time,
        update_time=row.update_time,
    )


async def _legacy_safari(session: Any, site_ids: Sequence[str]) -> dict[str, LegacySafariRecord]:
    """The public parts of these sites' legacy Safari configurations, by site (only the
    public columns are read)."""
    if not site_ids:
        return {}
    rows = await session.execute(
        select(*_LEGACY_SAFARI_PUBLIC).where(
            models.SiteLegacySafari.site_id.in_(list(site_ids))
        )
    )
    return {row.site_id: _legacy_safari_record(row) for row in rows}


def _site(
    row: models.Site,
    vapid_keys: tuple[VapidKeyRecord, ...],
    legacy_safari: LegacySafariRecord | None = None,
) -> SiteRecord:
    return SiteRecord(
        site_id=row.site_id,
        name=row.name,
        vapid_public_key=row.vapid_public_key,
        vapid_subject=row.vapid_subject,
        create_time=row.create_time,
        vapid_keys=vapid_keys,
        timezone=row.timezone,
        delivery_policy=_message(campaign_pb2.DeliveryPolicy, row.delivery_policy),
        home_url=row.home_url,
        legacy_safari=legacy_safari,
    )


def _vapid_key(row: models.SiteVapidKey) -> VapidKeyRecord:
    return VapidKeyRecord(
        vapid_key_id=row.vapid_key_id,
        public_key=row.public_key,
        current=row.is_current,
        origin=VapidKeyOrigin(row.origin),
        create_time=row.create_time,
    )


async def _vapid_keys(
    session: Any, site_ids: Sequence[str]
) -> dict[str, tuple[VapidKeyRecord, ...]]:
    """The public halves of these sites' key pairs, per site: current first, then by
    creation. Only the public columns are read."""
    if not site_ids:
        return {}
    keys = models.SiteVapidKey
    rows = await session.execute(
        select(
            keys.site_id, keys.vapid_key_id, keys.public_key, keys.is_current, keys.origin,
            keys.create_time,
        )
        .where(keys.site_id.in_(list(site_ids)))
        .order_by(keys.site_id, keys.is_current.desc(), keys.create_time, keys.vapid_key_id)
    )  # fmt: skip
    found: dict[str, list[VapidKeyRecord]] = {}
    for site_id, key_id, public_key, current, origin, create_time in rows:
        found.setdefault(site_id, []).append(
            VapidKeyRecord(key_id, public_key, current, VapidKeyOrigin(origin), create_time)
        )
    return {site_id: tuple(records) for site_id, records in found.items()}


async def _vapid_key_by_public(
    session: Any, site_id: str, public_key: bytes
) -> VapidKeyRecord | None:
    row = await session.scalar(
        select(models.SiteVapidKey).where(
            models.SiteVapidKey.site_id == site_id, models.SiteVapidKey.public_key == public_key
        )
    )
    return _vapid_key(row) if row is not None else None


def _campaign(row: models.Campaign) -> CampaignRecord:
    notification = common_pb2.Notification()
    notification.ParseFromString(row.notification)
    return CampaignRecord(
        campaign_id=row.campaign_id,
        site_id=row.site_id,
        name=row.name,
        notification=notification,
        ttl_seconds=row.ttl_seconds,
        urgency=Urgency(row.urgency),
        create_time=row.create_time,
        update_time=row.update_time,
        request_id=row.request_id,
        request_fingerprint=row.request_fingerprint,
        version=row.version,
        audience=_audience(row.audience),
        schedule=row.schedule,
        state=CampaignState(row.state),
        next_run_time=row.next_run_time,
        trigger=row.trigger,
        feed_cursor=row.feed_cursor,
        timing=row.timing,
        personalization=_message(campaign_pb2.Personalization, row.personalization),
        utm=_message(campaign_pb2.UtmParameters, row.utm),
        topic=row.topic,
        labels=tuple(json.loads(row.labels)) if row.labels else (),
        policy=_message(campaign_pb2.CampaignPolicy, row.policy),
        variants=_variants(row.variants),
        variant_test=_message(campaign_pb2.VariantTest, row.variant_test),
        conversion_goal=_message(common_pb2.ConversionGoal, row.conversion_goal),
    )


def _campaign_content_values(campaign: CampaignRecord) -> dict[str, Any]:
    """The columns of a campaign's personalization, UTM, topic, labels, policy, variants,
    variant test and conversion goal."""
    return {
        "personalization": _message_bytes(campaign.personalization),
        "utm": _message_bytes(campaign.utm),
        "topic": campaign.topic,
        "labels": json.dumps(list(campaign.labels)) if campaign.labels else None,
        "policy": _message_bytes(campaign.policy),
        "variants": _variants_json(campaign.variants),
        "variant_test": _message_bytes(campaign.variant_test),
        "conversion_goal": _message_bytes(campaign.conversion_goal),
    }


def _variants_json(variants: Sequence[campaign_pb2.Variant]) -> str | None:
    """Each Variant message serialized (base64), so a new Notification field needs no
    column; NULL for none."""
    return json.dumps(_variant_texts(variants)) if variants else None


def _variants(stored: str | None) -> tuple[campaign_pb2.Variant, ...]:
    return _variants_from(json.loads(stored)) if stored else ()


def _variant_texts(variants: Sequence[campaign_pb2.Variant]) -> list[str]:
    return [base64.b64encode(v.SerializeToString(deterministic=True)).decode() for v in variants]


def _variants_from(texts: Sequence[str]) -> tuple[campaign_pb2.Variant, ...]:
    return tuple(campaign_pb2.Variant.FromString(base64.b64decode(text)) for text in texts)


async def _write_labels(session: Any, campaign: CampaignRecord, *, replace_stored: bool) -> None:
    """campaign_labels as the campaign's labels (at most 20 rows, so an update simply
    writes them anew)."""
    labels = models.CampaignLabel
    if replace_stored:
        await session.execute(
            delete(labels)
            .where(labels.campaign_id == campaign.campaign_id)
            .execution_options(synchronize_session=False)
        )
    if campaign.labels:
        await session.execute(
            insert(labels),
            [
                {"site_id": campaign.site_id, "label": label, "campaign_id": campaign.campaign_id}
                for label in campaign.labels
            ],
        )


def _run_row(run: RunRecord) -> models.Run:
    return models.Run(
        run_id=run.run_id,
        site_id=run.site_id,
        campaign_id=run.campaign_id,
        request_id=run.request_id,
        payload=run.payload,
        ttl_seconds=run.ttl_seconds,
        urgency=run.urgency.value,
        audience=_audience_bytes(run.audience),
        recipients=_recipients_json(run.recipients),
        timing=run.timing,
        content_options=_content_options_json(run.content_options),
        policy=_message_bytes(run.policy),
        test=run.test,
        variants=_run_variants_json(run.variants),
        conversion_goal=_message_bytes(run.conversion_goal),
        phase=run.phase.value,
        sample_start=run.sample[0] if run.sample is not None else None,
        sample_end=run.sample[1] if run.sample is not None else None,
        related_run_id=run.related_run_id,
        variant_decision=_message_bytes(run.variant_decision),
        rest_time=run.rest_time,
        rest_state=run.rest_state.value if run.rest_state is not None else None,
        rest_plan=_rest_plan_json(run.rest_plan),
        rest_attempts=run.rest_attempts,
        handoff_pending=run.handoff_pending,
        state=run.state.value,
        failure_reason=run.failure_reason,
        create_time=run.create_time,
        update_time=run.create_time,
    )


def _run(row: models.Run) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        site_id=row.site_id,
        campaign_id=row.campaign_id,
        state=RunState(row.state),
        failure_reason=row.failure_reason,
        progress=RunProgress(
            resolved=row.resolved,
            queued=row.queued,
            sent=row.sent,
            failed=row.failed,
            suppressed=row.suppressed,
            expired=row.expired,
        ),
        payload=row.payload,
        ttl_seconds=row.ttl_seconds,
        urgency=Urgency(row.urgency),
        handoff_pending=row.handoff_pending,
        handoff_attempts=row.handoff_attempts,
        create_time=row.create_time,
        finish_time=row.finish_time,
        request_id=row.request_id,
        audience=_audience(row.audience),
        recipients=_recipients(row.recipients),
        timing=row.timing,
        content_options=_content_options(row.content_options),
        policy=_message(campaign_pb2.CampaignPolicy, row.policy),
        test=row.test,
        variants=_run_variants(json.loads(row.variants)) if row.variants else (),
        conversion_goal=_message(common_pb2.ConversionGoal, row.conversion_goal),
        phase=RunPhase(row.phase),
        sample=(row.sample_start, row.sample_end)
        if row.sample_start is not None and row.sample_end is not None
        else None,
        related_run_id=row.related_run_id,
        variant_decision=_message(campaign_pb2.VariantDecision, row.variant_decision),
        rest_time=row.rest_time,
        rest_state=RestState(row.rest_state) if row.rest_state else None,
        rest_plan=_rest_plan(row.rest_plan),
        rest_attempts=row.rest_attempts,
    )


def _content_options_json(options: RunContentOptions | None) -> str | None:
    if options is None:
        return None
    return json.dumps(_options_dict(options), ensure_ascii=False, separators=(",", ":"))


def _options_dict(options: RunContentOptions) -> dict[str, Any]:
    return {
        "browser_payloads": {
            str(browser): base64.b64encode(payload).decode()
            for browser, payload in sorted(options.browser_payloads.items())
        },
        "profile_properties": list(options.profile_properties),
        "event_properties": list(options.event_properties),
        "suppress_missing_values": options.suppress_missing_values,
        "missing_value_text": options.missing_value_text,
        "topic": options.topic,
    }


def _run_variants_dicts(variants: Sequence[RunVariantContent]) -> list[dict[str, Any]]:
    return [
        {
            "variant_id": variant.variant_id,
            "weight_percent": variant.weight_percent,
            "payload": base64.b64encode(variant.payload).decode(),
            "options": _options_dict(variant.options),
        }
        for variant in variants
    ]


def _run_variants_json(variants: Sequence[RunVariantContent]) -> str | None:
    if not variants:
        return None
    return json.dumps(_run_variants_dicts(variants), ensure_ascii=False, separators=(",", ":"))


def _run_variants(given: list[dict[str, Any]]) -> tuple[RunVariantContent, ...]:
    return tuple(
        RunVariantContent(
            variant_id=variant["variant_id"],
            weight_percent=variant["weight_percent"],
            payload=base64.b64decode(variant["payload"]),
            options=_options(variant["options"]),
        )
        for variant in given
    )


def _rest_plan_json(plan: RestPlan | None) -> str | None:
    if plan is None:
        return None
    return json.dumps(
        {
            "variants": _variant_texts(plan.variants),
            "personalization": _base64_message(plan.personalization),
            "utm": _base64_message(plan.utm),
            "topic": plan.topic,
            "timing": plan.timing,
            "metric": plan.metric,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _rest_plan(stored: str | None) -> RestPlan | None:
    if not stored:
        return None
    given = json.loads(stored)
    return RestPlan(
        variants=_variants_from(given["variants"]),
        personalization=_message(
            campaign_pb2.Personalization, _unbase64(given["personalization"])
        ),
        utm=_message(campaign_pb2.UtmParameters, _unbase64(given["utm"])),
        topic=given["topic"],
        timing=given["timing"],
        metric=given["metric"],
    )


def _base64_message(message: Message | None) -> str | None:
    stored = _message_bytes(message)
    return base64.b64encode(stored).decode() if stored is not None else None


def _unbase64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text is not None else None


def _content_options(stored: str | None) -> RunContentOptions | None:
    if stored is None:
        return None
    return _options(json.loads(stored))


def _options(given: dict[str, Any]) -> RunContentOptions:
    return RunContentOptions(
        browser_payloads={
            int(browser): base64.b64decode(payload)
            for browser, payload in given["browser_payloads"].items()
        },
        profile_properties=tuple(given["profile_properties"]),
        event_properties=tuple(given["event_properties"]),
        suppress_missing_values=given["suppress_missing_values"],
        missing_value_text=given["missing_value_text"],
        topic=given["topic"],
    )


def _recipients_json(recipients: ListedRecipients | None) -> str | None:
    if recipients is None:
        return None
    lists: dict[str, Any] = {
        "profile_ids": recipients.profile_ids,
        "subscriber_ids": recipients.subscriber_ids,
    }
    if recipients.contexts:
        lists["contexts"] = recipients.contexts
    return json.dumps(lists, ensure_ascii=False, separators=(",", ":"))


def _recipients(stored: str | None) -> ListedRecipients | None:
    if stored is None:
        return None
    lists = json.loads(stored)
    return ListedRecipients(
        tuple(lists["profile_ids"]),
        tuple(lists["subscriber_ids"]),
        tuple(tuple(context) for context in lists.get("contexts", ())),
    )


def _audience_bytes(audience: segment_pb2.AudienceSelector | None) -> bytes | None:
    """NULL for no audience (or a selector with neither kind set): every subscriber."""
    if audience is None or audience.WhichOneof("kind") is None:
        return None
    return audience.SerializeToString(deterministic=True)


def _audience(stored: bytes | None) -> segment_pb2.AudienceSelector | None:
    if not stored:
        return None
    audience = segment_pb2.AudienceSelector()
    audience.ParseFromString(stored)
    return audience


def _message_bytes(message: Message | None) -> bytes | None:
    """A message as stored: NULL for none, and for one with every field at its default
    (which means the same)."""
    if message is None or message.ByteSize() == 0:
        return None
    return message.SerializeToString(deterministic=True)


def _message(kind: type[M], stored: bytes | None) -> M | None:
    if not stored:
        return None
    message = kind()
    message.ParseFromString(stored)
    return message
