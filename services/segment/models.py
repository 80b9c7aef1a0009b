"""The segment service's tables. Every row belongs to one site and is queried through it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

# Push services hand out endpoints well below this; it also keeps the (site_id, endpoint)
# unique index inside PostgreSQL's btree row limit (endpoints are ASCII).
MAX_ENDPOINT_LENGTH = 2048
MAX_PROFILE_ID_LENGTH = 128
MAX_TIMEZONE_LENGTH = 64
MAX_REASON_LENGTH = 128


class Browser(StrEnum):
    CHROME = "chrome"
    FIREFOX = "firefox"
    EDGE = "edge"
    OPERA = "opera"
    SAFARI = "safari"
    OTHER = "other"


class SubscriberState(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class SubscriberRow(Model):
    """One browser push subscription of one site."""

    __tablename__ = "segment_subscribers"
    __table_args__ = (
        # Registering is idempotent per (site, endpoint): the upsert targets this.
        UniqueConstraint("site_id", "endpoint"),
        # ListSubscribers and ListAudienceMembers: keyset pages of one site in id order,
        # an index range scan (the audience's time conditions filter the rows it reads).
        Index("ix_segment_subscribers_site_id_subscriber_id", "site_id", "subscriber_id"),
    )

    # `sub_` + 32 hex digits, time-ordered (services.kit.ids.new_id), so keyset pages
    # over it are in registration order.
    subscriber_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
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
