"""Tables of the campaign service: sites, their API keys and VAPID keys, campaigns, runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

ID_LENGTH = 64
# Ids a site chooses (profile and event ids) and segment's subscriber ids.
EXTERNAL_ID_LENGTH = 128


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class Site(Model):
    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    vapid_subject: Mapped[str] = mapped_column(String(2048))
    # PKCS#8 DER; only GetSiteCredentials (internal token) ever returns it.
    vapid_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    # 65-byte uncompressed P-256 point, the browser's applicationServerKey.
    vapid_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime]
    # IANA time zone of the site's audience; "": UTC.
    timezone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The site's home page (absolute http(s) URL); "": none given.
    home_url: Mapped[str] = mapped_column(String(2048), default="", server_default="")
    # Frequency cap, do-not-disturb hours and throttle of every campaign of the site: the
    # clarion.campaign.v1.DeliveryPolicy message, serialized; NULL: none.
    delivery_policy: Mapped[bytes | None] = mapped_column(LargeBinary)


class SiteVapidKey(Model):
    """A VAPID key pair a site signs with: its own (current, the copy of `sites`' key
    columns, made with the site) and any imported from another provider, which only
    the subscribers imported with them (segment's vapid_key_id) are signed with."""

    __tablename__ = "site_vapid_keys"
    __table_args__ = (
        # Importing a pair again finds it (idempotent by public key).
        UniqueConstraint("site_id", "public_key"),
        # At most one current key per site.
        Index(
            "ix_site_vapid_keys_site_id_is_current",
            "site_id",
            unique=True,
            postgresql_where=text("is_current"),
            sqlite_where=text("is_current"),
        ),
    )

    # `vk_` + 32 hex digits.
    vapid_key_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE")
    )
    # PKCS#8 DER, stored as the site's own key is (sites.vapid_private_key); only
    # GetSiteCredentials (internal token) ever returns it.
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    # 65-byte uncompressed P-256 point.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    # "generated" (made by Clarion with the site) or "imported" (ImportVapidKey).
    origin: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime]


class SiteLegacySafari(Model):
    """A site's legacy Safari configuration (macOS Safari 15 and earlier: website push
    over APNs), one row per site, written whole (SiteService.SetLegacySafari).

    The two private keys are stored as the VAPID private key is (sites.vapid_private_key:
    PKCS#8 DER in a binary column); only GetLegacySafariCredentials (internal token)
    ever returns them, and neither reaches a log line."""

    __tablename__ = "site_legacy_safari"

    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE"), primary_key=True
    )
    # "web." and a reverse domain; Safari's web service finds the site by it, so no two
    # sites share one.
    website_push_id: Mapped[str] = mapped_column(String(128), unique=True)
    website_name: Mapped[str] = mapped_column(String(100))
    # The https origins that may ask for permission: a JSON list of strings.
    allowed_domains: Mapped[str] = mapped_column(Text)
    url_format_string: Mapped[str] = mapped_column(String(2048))
    # APNs token authentication: the .p8 key as PKCS#8 DER, its id, the team's id.
    apns_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    apns_key_id: Mapped[str] = mapped_column(String(10))
    apns_team_id: Mapped[str] = mapped_column(String(10))
    # The push-package signing certificate (DER) and its private key (PKCS#8 DER).
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The certificate's issuers given with it (Apple's WWDR intermediate), nearest first:
    # a JSON list of base64 DER; "[]": none.
    certificate_chain: Mapped[str] = mapped_column(Text)
    certificate_subject: Mapped[str] = mapped_column(Text)
    certificate_expire_time: Mapped[datetime]
    # The push package's icon.iconset PNGs: 16, 32, 32, 64, 128 and 256 pixels square.
    icon_16x16: Mapped[bytes] = mapped_column(LargeBinary)
    icon_16x16_2x: Mapped[bytes] = mapped_column(LargeBinary)
    icon_32x32: Mapped[bytes] = mapped_column(LargeBinary)
    icon_32x32_2x: Mapped[bytes] = mapped_column(LargeBinary)
    icon_128x128: Mapped[bytes] = mapped_column(LargeBinary)
    icon_128x128_2x: Mapped[bytes] = mapped_column(LargeBinary)
    update_time: Mapped[datetime]


class SiteApiKey(Model):
    """An API key of a site, stored only as its SHA-256 (the plaintext is shown once)."""

    __tablename__ = "site_api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE"), index=True
    )
    create_time: Mapped[datetime]


class Campaign(Model):
    __tablename__ = "campaigns"

    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    # The clarion.common.v1.Notification message, serialized: the contract is the one
    # definition of a notification's fields, so a new field needs no column.
    notification: Mapped[bytes] = mapped_column(LargeBinary)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    urgency: Mapped[str] = mapped_column(String(16))
    # Who its runs go to: the clarion.segment.v1.AudienceSelector message, serialized
    # (a saved segment or an ad-hoc definition, checked by segment when stored); NULL is
    # every reachable subscriber.
    audience: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The caller's idempotency key: a repeated create returns the first campaign.
    request_id: Mapped[str | None] = mapped_column(String(128))
    # SHA-256 (hex) of what the create with request_id asked for: a repeat asking for
    # something else is refused. NULL for campaigns created before it was kept.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Bumped by every update; an update applies only to the version it read.
    version: Mapped[int] = mapped_column(Integer, default=1)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    # When its runs start by themselves (domain/schedules.py's JSON form); NULL: only
    # when asked.
    schedule: Mapped[str | None] = mapped_column(Text)
    # draft, scheduled, paused, completed or cancelled (CampaignState).
    state: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    # The schedule's next occurrence while scheduled: what the scheduler claims by.
    next_run_time: Mapped[datetime | None]
    # A live campaign's trigger (domain/triggers.py's JSON form); NULL: not live.
    trigger: Mapped[str | None] = mapped_column(Text)
    # Where a live campaign has read segment's event feed to (an opaque cursor, fixed
    # when the trigger is set): it moves in the transaction that stores what the events
    # read did, so every event is acted on once.
    feed_cursor: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Local-time delivery and cut-off of its runs (domain/timing.py's JSON); NULL: none.
    timing: Mapped[str | None] = mapped_column(Text)
    # What a missing template value becomes, and the UTM parameters of its click URLs:
    # the clarion.campaign.v1.Personalization and UtmParameters messages, serialized;
    # NULL: unset.
    personalization: Mapped[bytes | None] = mapped_column(LargeBinary)
    utm: Mapped[bytes | None] = mapped_column(LargeBinary)
    # RFC 8030 Topic of its pushes; "": one per run.
    topic: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # Its labels as a JSON list, in the order given (what is shown); campaign_labels holds
    # the same labels as rows, for ListCampaigns' filter. NULL: none.
    labels: Mapped[str | None] = mapped_column(Text)
    # The clarion.campaign.v1.CampaignPolicy message, serialized; NULL: none.
    policy: Mapped[bytes | None] = mapped_column(LargeBinary)
    # An A/B test's variants: a JSON list of serialized clarion.campaign.v1.Variant
    # messages (base64), in the campaign's order; `notification` is then empty. NULL:
    # none.
    variants: Mapped[str | None] = mapped_column(Text)
    # The serialized VariantTest (NULL: none) and clarion.common.v1.ConversionGoal (NULL:
    # none).
    variant_test: Mapped[bytes | None] = mapped_column(LargeBinary)
    conversion_goal: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        # Listing pages through a site's campaigns by id (keyset).
        Index("ix_campaigns_site_id_campaign_id", "site_id", "campaign_id"),
        UniqueConstraint("site_id", "request_id"),
        # The scheduler's question: which scheduled campaigns are due.
        Index("ix_campaigns_state_next_run_time", "state", "next_run_time"),
    )


class CampaignLabel(Model):
    """One label of a campaign (a copy of campaigns.labels, written in the same
    transaction): the index ListCampaigns' label filter reads, so a filtered page is a
    range of this key rather than a scan of every campaign of the site."""

    __tablename__ = "campaign_labels"

    # The key is the filter's question: a site's campaigns with this label, by id (keyset
    # pages continue from the last id shown).
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True, index=True,
    )


class MissedOccurrence(Model):
    """An occurrence of a campaign's schedule that started no run, and why."""

    __tablename__ = "campaign_missed_occurrences"

    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True,
    )
    occurrence_time: Mapped[datetime] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # paused or superseded (MissedReason).
    reason: Mapped[str] = mapped_column(String(16))
    record_time: Mapped[datetime]


class Run(Model):
    """A run as campaign started it, and the last state delivery reported for it."""

    __tablename__ = "campaign_runs"

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE")
    )
    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE")
    )
    request_id: Mapped[str | None] = mapped_column(String(128))
    # What the run sends, fixed when it starts: the rendered PushPayload (without the
    # per-recipient fields) and the send headers.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    urgency: Mapped[str] = mapped_column(String(16))
    # The campaign's audience when the run started (serialized AudienceSelector; NULL:
    # every reachable subscriber), handed to delivery with the run.
    audience: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A listed audience instead (a transactional send, a trigger's firings): JSON
    # {"profile_ids": [...], "subscriber_ids": [...]}; NULL: the audience above.
    recipients: Mapped[str | None] = mapped_column(Text)
    # What the run got of the campaign's timing (local time, absolute cut-off); NULL:
    # all at once.
    timing: Mapped[str | None] = mapped_column(Text)
    # The rest of what the run sends, fixed when it starts (JSON: browser_payloads by
    # Browser number, base64; profile_properties, event_properties,
    # suppress_missing_values, missing_value_text, topic); NULL for runs started before
    # these existed: the payload alone.
    content_options: Mapped[str | None] = mapped_column(Text)
    # The campaign's policy when the run started (serialized CampaignPolicy), merged with
    # the site's delivery policy of the moment at each hand-off; NULL: none.
    policy: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A test send (to the site's test profiles; no policy, left out of reports).
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    # An A/B test's content instead of `payload` (then empty): JSON list of {variant_id,
    # weight_percent, payload (base64), options (as content_options)}; NULL: none.
    variants: Mapped[str | None] = mapped_column(Text)
    # The campaign's serialized ConversionGoal at start, handed to delivery; NULL: none.
    conversion_goal: Mapped[bytes | None] = mapped_column(LargeBinary)
    # "" (the whole audience), "variant_test" or "variant_rest" (RunPhase).
    phase: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # The share of the audience it goes to, [start, end) of 10,000 basis points; NULL:
    # all of it.
    sample_start: Mapped[int | None] = mapped_column(Integer)
    sample_end: Mapped[int | None] = mapped_column(Integer)
    # The other run of its A/B test: a test run's rest run (once started), a rest run's
    # test run.
    related_run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    # A rest run's serialized VariantDecision.
    variant_decision: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A test run's rest: when it is due, pending / started / cancelled (RestState), what
    # it sends (JSON: the campaign's variants, personalization, UTM parameters, topic and
    # timing, and the metric, as the test started), and its retries while reporting
    # cannot answer.
    rest_time: Mapped[datetime | None]
    rest_state: Mapped[str | None] = mapped_column(String(16))
    rest_plan: Mapped[str | None] = mapped_column(Text)
    rest_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rest_next_attempt: Mapped[datetime | None]
    # Delivery has not confirmed it took the run over yet; the hand-off loop retries,
    # not before handoff_next_attempt (backing off per run).
    handoff_pending: Mapped[bool] = mapped_column(default=True)
    handoff_attempts: Mapped[int] = mapped_column(Integer, default=0)
    handoff_next_attempt: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    # Progress as delivery last reported it.
    resolved: Mapped[int] = mapped_column(BigInteger, default=0)
    queued: Mapped[int] = mapped_column(BigInteger, default=0)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    suppressed: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    finish_time: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_campaign_runs_site_id_run_id", "site_id", "run_id"),
        # ListRuns: a campaign's runs, newest (highest time-ordered id) first.
        Index("ix_campaign_runs_site_id_campaign_id_run_id", "site_id", "campaign_id", "run_id"),
        Index("ix_campaign_runs_handoff_pending_next_attempt", "handoff_pending", "handoff_next_attempt"),
        # The scheduler's question: which variant tests' rests are due.
        Index("ix_campaign_runs_rest_state_rest_time", "rest_state", "rest_time"),
        UniqueConstraint("site_id", "campaign_id", "request_id"),
    )


class TriggerWait(Model):
    """A live campaign's open wait for one person: an event then inaction (pushed at
    due_time unless the person does the inaction event first) or a date reminder."""

    __tablename__ = "trigger_waits"

    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True,
    )
    # "p:" + profile id, or "s:" + subscriber id for an anonymous browser.
    person_key: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH + 2), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # The triggering event the wait is for (the latest one, when re-armed).
    event_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH))
    event_time: Mapped[datetime]
    profile_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH), default="")
    subscriber_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH), default="")
    due_time: Mapped[datetime]
    # The triggering event's properties the campaign's templates read, for its push
    # (typed JSON, see domain/triggers.py; "": none).
    event_properties: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_trigger_waits_due_time", "due_time"),)


class TriggerFiring(Model):
    """What a live campaign did with one triggering event: pushed it (in run_id) or
    not, and why. At most one per (campaign, event)."""

    __tablename__ = "trigger_firings"

    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE"),
        primary_key=True,
    )
    event_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    person_key: Mapped[str] = mapped_column(String(EXTERNAL_ID_LENGTH + 2))
    # pushed, not_in_audience, cooldown, unreachable, paused, ended (FiringOutcome).
    outcome: Mapped[str] = mapped_column(String(16))
    # The run that pushed it; NULL unless pushed.
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    fire_time: Mapped[datetime]

    __table_args__ = (
        # A person's last push, for the cooldown.
        Index(
            "ix_trigger_firings_campaign_id_person_key_fire_time",
            "campaign_id", "person_key", "fire_time",
        ),  # fmt: skip
    )
