"""The segment service's tables. Every row belongs to one site and is queried through it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Computed,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

# Push services hand out endpoints well below this; it also keeps the (site_id, endpoint)
# unique index inside PostgreSQL's btree row limit (endpoints are ASCII).
MAX_ENDPOINT_LENGTH = 2048
MAX_PROFILE_ID_LENGTH = 128
MAX_TIMEZONE_LENGTH = 64
# A Website Push ID ("web." and a reverse domain), campaign's limit.
MAX_APNS_TOPIC_LENGTH = 128
MAX_REASON_LENGTH = 128
MAX_EVENT_ID_LENGTH = 128
MAX_EVENT_NAME_LENGTH = 128
MAX_PROPERTY_NAME_LENGTH = 64
# "profile", or "event:" + an event name.
MAX_SCOPE_LENGTH = 6 + MAX_EVENT_NAME_LENGTH
MAX_DISPLAY_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000

# segment_property_types.scope: profile properties, or one event name's properties.
PROFILE_SCOPE = "profile"


def event_scope(event_name: str) -> str:
    """The property-type scope of an event's properties."""
    return f"event:{event_name}"


# A person's sample bucket on PostgreSQL (the migration's generated columns; SQLite
# stores 0 and never samples). Sampling by a hash of the id keeps whole people together.
SAMPLE_BUCKET_OF_PROFILE = "mod(abs(hashtext(profile_id)), 100)"
SAMPLE_BUCKET_OF_SUBSCRIBER = "mod(abs(hashtext(subscriber_id)), 100)"

# Property values: JSONB on PostgreSQL (segments will query into it), JSON text on SQLite.
PropertiesJSON = JSON().with_variant(JSONB(), "postgresql")


class PropertyType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    STRING_LIST = "string_list"


class Browser(StrEnum):
    CHROME = "chrome"
    FIREFOX = "firefox"
    EDGE = "edge"
    OPERA = "opera"
    SAFARI = "safari"
    OTHER = "other"
    # macOS Safari 15 and earlier: an APNs device token, not a Web Push subscription.
    SAFARI_LEGACY = "safari_legacy"


class SubscriberState(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class SubscriberRow(Model):
    """One browser push subscription of one site: a Web Push subscription (endpoint URL,
    p256dh, auth), or a legacy Safari device (browser safari_legacy): its 64-hex-digit
    APNs device token in `endpoint`, the Website Push ID it registered under in
    `apns_topic`, empty p256dh and auth. apns_topic is set exactly for those."""

    __tablename__ = "segment_subscribers"
    __table_args__ = (
        # Registering is idempotent per (site, endpoint): the upsert targets this.
        UniqueConstraint("site_id", "endpoint"),
        # GetProfile and the profiles' side of segments: the subscribers attached to a
        # profile. Every lookup asks for one profile (=, IN, a join on it), so an
        # anonymous browser (most registrations and imports) skips the entry.
        Index(
            "ix_segment_subscribers_site_id_profile_id",
            "site_id",
            "profile_id",
            postgresql_where=text("profile_id IS NOT NULL"),
            sqlite_where=text("profile_id IS NOT NULL"),
        ),
        # Reach estimates: the anonymous browsers of a few sample buckets (a profile's
        # browsers are sampled with their profile, by the profile's bucket).
        Index(
            "ix_segment_subscribers_site_id_sample_bucket",
            "site_id",
            "sample_bucket",
            postgresql_where=text("profile_id IS NULL"),
            sqlite_where=text("profile_id IS NULL"),
        ),
    )

    # The key is (site_id, subscriber_id): every lookup is scoped to a site, and
    # ListSubscribers and ListAudienceMembers read keyset pages of one site in id order
    # (an index range scan). One index instead of the id's and the site's: a row
    # written costs one B-tree entry less.
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # `sub_` + 32 hex digits, time-ordered (services.kit.ids.new_id), so keyset pages
    # over it are in registration order.
    subscriber_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(MAX_ENDPOINT_LENGTH))
    p256dh: Mapped[bytes] = mapped_column(LargeBinary(65))
    auth: Mapped[bytes] = mapped_column(LargeBinary(16))
    browser: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(MAX_TIMEZONE_LENGTH))
    profile_id: Mapped[str | None] = mapped_column(String(MAX_PROFILE_ID_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    unsubscribe_reason: Mapped[str | None] = mapped_column(String(MAX_REASON_LENGTH))
    # Set exactly while the state is UNSUBSCRIBED: a run's audience is the subscribers
    # created by its snapshot time and not unsubscribed by then.
    unsubscribe_time: Mapped[datetime | None]
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    # The site's VAPID key (campaign's vk_ id) the browser subscribed under, for
    # subscriptions imported from another provider; NULL: the site's current key.
    vapid_key_id: Mapped[str | None] = mapped_column(String(64))
    # Legacy Safari: the APNs topic (the site's Website Push ID) the device registered
    # under; NULL for a Web Push subscription.
    apns_topic: Mapped[str | None] = mapped_column(String(MAX_APNS_TOPIC_LENGTH))
    # 0-99 from a hash of subscriber_id, computed by PostgreSQL (0 on SQLite): reach
    # estimates read the anonymous browsers of a few buckets only.
    sample_bucket: Mapped[int] = mapped_column(SmallInteger, Computed(SAMPLE_BUCKET_OF_SUBSCRIBER))


class ProfileRow(Model):
    """A person known to a site, by the site's own id for them."""

    __tablename__ = "segment_profiles"
    __table_args__ = (
        # Reach estimates: the profiles of a few sample buckets.
        Index("ix_segment_profiles_site_id_sample_bucket", "site_id", "sample_bucket"),
    )

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(MAX_PROFILE_ID_LENGTH), primary_key=True)
    # {name: value}: strings, numbers, booleans, timestamps as ISO-8601 text in UTC, lists
    # of strings; a name's type is in segment_property_types.
    properties: Mapped[dict[str, Any]] = mapped_column(PropertiesJSON)
    test_profile: Mapped[bool] = mapped_column(Boolean)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]
    # 0-99 from a hash of profile_id, computed by PostgreSQL (0 on SQLite): reach
    # estimates read the profiles of a few buckets only.
    sample_bucket: Mapped[int] = mapped_column(SmallInteger, Computed(SAMPLE_BUCKET_OF_PROFILE))


class PropertyTypeRow(Model):
    """The type a property name has in a site, fixed by its first use."""

    __tablename__ = "segment_property_types"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "profile" for profile properties; "event:<event name>" for an event's properties.
    scope: Mapped[str] = mapped_column(String(MAX_SCOPE_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_PROPERTY_NAME_LENGTH), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime]


class EventRow(Model):
    """Something a person did. (site_id, event_id) is unique: tracking is idempotent per
    event id. feed_seq and feed_xid place the event in the site's event feed."""

    __tablename__ = "segment_events"
    __table_args__ = (
        UniqueConstraint("site_id", "event_id"),
        # The event feed: a site's events in (feed_xid, feed_seq) order (store of feed).
        Index("ix_segment_events_site_id_feed_xid_feed_seq", "site_id", "feed_xid", "feed_seq"),
        # What segments will ask: who did this event when; what did this profile or
        # subscriber do when.
        # The people of a behaviour condition come from the index alone on PostgreSQL.
        Index(
            "ix_segment_events_site_id_name_occur_time",
            "site_id",
            "name",
            "occur_time",
            postgresql_include=["profile_id", "subscriber_id"],
        ),
        # Only events of a profile, for the same reason as the subscriber index below:
        # every lookup by profile asks for one, and an anonymous browser's events
        # (Subscribed on registering or importing without a profile) skip the entry.
        Index(
            "ix_segment_events_site_id_profile_id_occur_time",
            "site_id",
            "profile_id",
            "occur_time",
            postgresql_where=text("profile_id IS NOT NULL"),
            sqlite_where=text("profile_id IS NOT NULL"),
        ),
        # Only events that name a subscriber: every lookup by subscriber asks for one
        # (=, IN), and most events a site's servers track name only a profile, so the
        # index entry was a sixth of their insert for nothing.
        Index(
            "ix_segment_events_site_id_subscriber_id_occur_time",
            "site_id",
            "subscriber_id",
            "occur_time",
            postgresql_where=text("subscriber_id IS NOT NULL"),
            sqlite_where=text("subscriber_id IS NOT NULL"),
        ),
    )

    # The order events were stored in: an identity on PostgreSQL, the rowid on SQLite
    # (INTEGER PRIMARY KEY), whose single writer stores and commits in one order.
    feed_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # PostgreSQL: the storing transaction's id (pg_current_xact_id(), its column
    # default), so a reader can tell which numbers may still commit; 0 on SQLite.
    feed_xid: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    site_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(MAX_EVENT_ID_LENGTH))
    name: Mapped[str] = mapped_column(String(MAX_EVENT_NAME_LENGTH))
    profile_id: Mapped[str | None] = mapped_column(String(MAX_PROFILE_ID_LENGTH))
    subscriber_id: Mapped[str | None] = mapped_column(String(128))
    occur_time: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(PropertiesJSON)
    receive_time: Mapped[datetime]


class SegmentRow(Model):
    """A named definition a site keeps (a saved segment)."""

    __tablename__ = "segment_segments"
    __table_args__ = (
        # ListSegments: keyset pages of one site, newest first.
        Index(
            "ix_segment_segments_site_id_create_time_segment_id",
            "site_id",
            "create_time",
            "segment_id",
        ),
    )

    # `seg_` + 32 hex digits (services.kit.ids.new_id).
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(MAX_DISPLAY_NAME_LENGTH))
    description: Mapped[str] = mapped_column(String(MAX_DESCRIPTION_LENGTH))
    # {key: value}, both text.
    labels: Mapped[dict[str, str]] = mapped_column(PropertiesJSON)
    # The condition tree in its stored form (services.segment.definition.to_json).
    definition: Mapped[dict[str, Any]] = mapped_column(PropertiesJSON)
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]


class KeptAudienceRow(Model):
    """A run's audience evaluated once: written with all its members in one transaction,
    so its presence means the members are complete."""

    __tablename__ = "segment_kept_audiences"
    __table_args__ = (
        # Retention: a site's old kept audiences are dropped when it keeps a new one.
        Index("ix_segment_kept_audiences_site_id_create_time", "site_id", "create_time"),
    )

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The run id.
    audience_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    snapshot_time: Mapped[datetime]
    members: Mapped[int]
    create_time: Mapped[datetime]


class KeptAudienceMemberRow(Model):
    """One subscriber of a kept audience; pages read them in subscriber id order."""

    __tablename__ = "segment_kept_audience_members"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    audience_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(String(64), primary_key=True)
