"""Reporting's tables: what each run targeted, how each delivery ended, what browsers
reported, which goal events (conversions) were credited to which push, and the site's
webhook endpoints with their outbox of messages (pending and dead).

Natural keys are the primary keys: they are exactly the uniqueness that makes recording
idempotent (a resent outcome or event conflicts and is skipped).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Enum,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

ID_LENGTH = 128


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


class EngagementKind(enum.StrEnum):
    VIEWED = "viewed"
    CLICKED = "clicked"
    CLOSED = "closed"


class WebhookEventType(enum.StrEnum):
    VIEW = "view"
    CLICK = "click"
    CLOSE = "close"


class WebhookEndpointState(enum.StrEnum):
    # Sent to.
    ACTIVE = "active"
    # Switched off by the site: nothing is queued for it, nothing is sent.
    INACTIVE = "inactive"
    # Paused by Clarion after failing continuously: queued for, not sent to.
    PAUSED = "paused"
    # Disabled by Clarion after a 410 Gone: nothing is queued for it.
    DISABLED = "disabled"


class WebhookMessageState(enum.StrEnum):
    # Waiting for its next attempt (or being attempted, under a claim).
    PENDING = "pending"
    # Every attempt failed, or its endpoint went away (410): kept to be replayed.
    DEAD = "dead"


def _string_enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    # Stored as the readable value with a CHECK constraint, the same on both backends.
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class RunAudience(Model):
    __tablename__ = "reporting_run_audiences"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    audience: Mapped[int] = mapped_column(BigInteger)
    record_time: Mapped[datetime]
    # A test send's run: stored, and left out of reports.
    test: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (Index("ix_reporting_run_audiences_site_campaign", "site_id", "campaign_id"),)


class DeliveryOutcome(Model):
    __tablename__ = "reporting_outcomes"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[DeliveryStatus] = mapped_column(_string_enum(DeliveryStatus, "status"))
    reason: Mapped[str] = mapped_column(Text, default="")
    # The browser family ("chrome", ...); empty when delivery did not say.
    browser: Mapped[str] = mapped_column(String(16), default="")
    occur_time: Mapped[datetime]
    # Of a test send's run: stored, and left out of reports.
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The A/B variant it got; empty without variants.
    variant: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # The subscriber's profile when sent (conversions are the profile's events); empty
    # when anonymous.
    profile_id: Mapped[str] = mapped_column(String(ID_LENGTH), default="", server_default="")

    __table_args__ = (
        # No index by campaign: reports read counters, never outcomes by campaign, and
        # each index is one more entry written per outcome.
        # A conversion event's candidate pushes: its profile's, in the window before it.
        # Anonymous outcomes can never be credited, so they stay out of the index.
        Index(
            "ix_reporting_outcomes_site_profile_time",
            "site_id",
            "profile_id",
            "occur_time",
            postgresql_where=text("profile_id <> ''"),
            sqlite_where=text("profile_id <> ''"),
        ),
    )


class EngagementEvent(Model):
    __tablename__ = "reporting_engagement_events"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[EngagementKind] = mapped_column(
        _string_enum(EngagementKind, "kind"), primary_key=True
    )
    # The action button's id for clicks on a button; empty for the notification body.
    button: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default="")
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    occur_time: Mapped[datetime]

    __table_args__ = (
        Index(
            "ix_reporting_engagement_events_site_campaign_kind", "site_id", "campaign_id", "kind"
        ),
    )


class RunGoal(Model):
    """The conversion goal a run was sent with (RecordRunAudienceRequest.conversion_goal)."""

    __tablename__ = "reporting_run_goals"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_name: Mapped[str] = mapped_column(String(ID_LENGTH))
    window_seconds: Mapped[int] = mapped_column(Integer)
    # The event property that is its revenue; empty: none.
    revenue_property: Mapped[str] = mapped_column(String(64), default="")
    # The run's last push (or, before any, the goal's record time) plus the window:
    # until then an event can still be credited to the run, so the feed is followed.
    open_until: Mapped[datetime]

    __table_args__ = (
        Index("ix_reporting_run_goals_site_event", "site_id", "event_name"),
        Index("ix_reporting_run_goals_open_until", "open_until"),
    )


class FeedCursor(Model):
    """Where the conversion follower is in segment's event feed, per site and goal
    event name; moved compare-and-set in the transaction that stores what the events
    credited, so a page is acted on once by whichever replica gets there first."""

    __tablename__ = "reporting_feed_cursors"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_name: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(512))
    update_time: Mapped[datetime]


class Conversion(Model):
    """A goal event credited to one push; the event id is the key, so an event read
    twice (a restart, a second replica) is credited once."""

    __tablename__ = "reporting_conversions"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    subscriber_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    variant: Mapped[str] = mapped_column(String(16), default="")
    profile_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # The goal's revenue property of the event; 0 when it has none or it is no number.
    revenue: Mapped[float]
    # The event's time.
    occur_time: Mapped[datetime]

    __table_args__ = (
        Index("ix_reporting_conversions_site_campaign", "site_id", "campaign_id"),
        Index("ix_reporting_conversions_site_run", "site_id", "run_id"),
    )


class ControlConversion(Model):
    """A profile held out of a run (its control group) that did the run's goal event
    within the window after its unsent push: once per (run, profile)."""

    __tablename__ = "reporting_control_conversions"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # The goal event that counted it.
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    occur_time: Mapped[datetime]

    __table_args__ = (
        Index("ix_reporting_control_conversions_site_campaign", "site_id", "campaign_id"),
    )


class RunDescription(Model):
    """What webhooks say of a run (RecordRunAudienceRequest.description): the campaign's
    title and UTM parameters as the site wrote them."""

    __tablename__ = "reporting_run_descriptions"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    notification_title: Mapped[str] = mapped_column(Text, default="")
    utm_source: Mapped[str] = mapped_column(String(128), default="")
    utm_medium: Mapped[str] = mapped_column(String(128), default="")
    utm_campaign: Mapped[str] = mapped_column(String(128), default="")
    utm_content: Mapped[str] = mapped_column(String(128), default="")
    utm_term: Mapped[str] = mapped_column(String(128), default="")
    # A JSON object {variant id: title} of an A/B campaign's variants; "{}" without.
    variant_titles: Mapped[str] = mapped_column(Text, default="{}")
    record_time: Mapped[datetime]


class WebhookEndpoint(Model):
    """A URL a site's engagement events are POSTed to, with its signing secret(s)."""

    __tablename__ = "reporting_webhook_endpoints"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # The event types it takes (at least one is true).
    takes_view: Mapped[bool] = mapped_column(default=False)
    takes_click: Mapped[bool] = mapped_column(default=False)
    takes_close: Mapped[bool] = mapped_column(default=False)
    # The site's switch; Clarion's verdicts (paused, disabled) are in `state`.
    active: Mapped[bool] = mapped_column(default=True)
    state: Mapped[WebhookEndpointState] = mapped_column(
        _string_enum(WebhookEndpointState, "state")
    )
    state_reason: Mapped[str] = mapped_column(Text, default="")
    # "whsec_" + base64: kept as is, since signing needs it (never logged, shown once).
    secret: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation, which signs too until it expires.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expire_time: Mapped[datetime | None]
    # The create's idempotency key, and a hash of what it asked for.
    request_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    # Attempts failed in a row (0 after a success).
    consecutive_failures: Mapped[int] = mapped_column(BigInteger, default=0)
    # Messages that became dead letters (attempts exhausted) since the last success:
    # the endpoint is paused when it reaches PAUSE_AFTER_DEAD_LETTERS.
    dead_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_success_time: Mapped[datetime | None]
    last_failure_time: Mapped[datetime | None]
    last_failure: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("site_id", "request_id"),)


class WebhookMessage(Model):
    """One event for one endpoint: the outbox row while pending, the dead letter after.
    Delivered messages are deleted."""

    __tablename__ = "reporting_webhook_messages"

    # The webhook-id it is sent with, on every attempt and replay.
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    endpoint_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    event_type: Mapped[WebhookEventType] = mapped_column(
        _string_enum(WebhookEventType, "event_type")
    )
    # The engagement event it tells of.
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    subscriber_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    button: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    occur_time: Mapped[datetime]
    create_time: Mapped[datetime]
    state: Mapped[WebhookMessageState] = mapped_column(
        _string_enum(WebhookMessageState, "state")
    )
    # Pending: when it may next be claimed (its next attempt, or the end of a claim's
    # lease). Claims move it and set claim_token; only that claim's holder settles it.
    due_time: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The JSON body, built at its first attempt, so every attempt sends the same bytes.
    payload: Mapped[str | None] = mapped_column(Text)
    first_attempt_time: Mapped[datetime | None]
    last_failure: Mapped[str] = mapped_column(Text, default="")
    dead_time: Mapped[datetime | None]

    __table_args__ = (
        # The dispatcher's claim: pending messages by due time.
        Index("ix_reporting_webhook_messages_state_due", "state", "due_time"),
        # An endpoint's backlog and dead letters; a site's dead letters, newest first.
        Index(
            "ix_reporting_webhook_messages_site_endpoint_state",
            "site_id",
            "endpoint_id",
            "state",
        ),
        Index("ix_reporting_webhook_messages_site_state_dead", "site_id", "state", "dead_time"),
    )


class ReportRun(Model):
    """One run as reports see it, kept with its outcomes and audience: the campaign it
    belongs to, whether it is a test send (its audience or any outcome says so), its
    audience, when it started (its first audience or outcome: runs are listed newest
    first by it) and when its last notification was sent."""

    __tablename__ = "reporting_runs"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    audience: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    start_time: Mapped[datetime]
    last_sent_time: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_reporting_runs_site_campaign_start", "site_id", "campaign_id", "start_time"),
    )


class ReportCounter(Model):
    """A run's pre-aggregated report counters, kept in the transaction that stores the
    rows they count (outcomes, engagement, conversions), counting only new rows.

    `metric` is an outcome status ("sent", "failed", ...; `key` its reason), an
    engagement kind ("viewed", "clicked", "closed": distinct recipients), "button"
    (clicks per button, `key` the button), "conversions" (events; `amount` their
    revenue), "converted" (sent recipients with a conversion), "control_converted"
    (held-out recipients whose profile did the goal event) or "unsubscribed".
    `browser` and `variant` are those of the recipient's outcome; engagement that came
    before its outcome is kept under browser "*" until the outcome moves it."""

    __tablename__ = "reporting_counters"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(16), primary_key=True)
    browser: Mapped[str] = mapped_column(String(16), primary_key=True)
    metric: Mapped[str] = mapped_column(String(24), primary_key=True)
    key: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[float] = mapped_column(default=0.0)


class ReportHour(Model):
    """A run's counts per hour (UTC): "sent", "viewed", "clicked" (every click),
    "converted" (conversion events)."""

    __tablename__ = "reporting_hours"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(24), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportVariant(Model):
    """When a run's variant was first seen (its earliest outcome): variants are
    reported in that order."""

    __tablename__ = "reporting_run_variants"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_time: Mapped[datetime]


class UnsubscribeCredit(Model):
    """A site's "Unsubscribed" event credited to the subscriber's last push sent within
    the 24 hours before it: the event id is the key, so it counts once."""

    __tablename__ = "reporting_unsubscribe_credits"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    subscriber_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    occur_time: Mapped[datetime]
