"""The delivery service's tables: runs, the chunks workers claim, and one row per recipient.

Every row carries its site; runs are keyed by (site_id, run_id), so another site's run
with the same id is simply a different row.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

MAX_ID_LENGTH = 128
MAX_ENDPOINT_LENGTH = 2048
MAX_REASON_LENGTH = 256


class RunState(StrEnum):
    QUEUEING = "queueing"
    SENDING = "sending"
    DONE = "done"


class ChunkState(StrEnum):
    PENDING = "pending"
    DONE = "done"


class RecipientState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class DeliveryRunRow(Model):
    """One execution of a campaign: what to send, and how far sending has got."""

    __tablename__ = "delivery_runs"

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    icon_url: Mapped[str] = mapped_column(Text)
    image_url: Mapped[str] = mapped_column(Text)
    target_url: Mapped[str] = mapped_column(Text)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    # RFC 8030 Urgency header value: very-low | low | normal | high.
    urgency: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime]
    start_time: Mapped[datetime | None]
    finish_time: Mapped[datetime | None]


class DeliveryChunkRow(Model):
    """A batch of one run's recipients; the unit a worker claims under a lease."""

    __tablename__ = "delivery_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            ondelete="CASCADE",
        ),
        # Claiming scans pending chunks whose retry time has come.
        Index("ix_delivery_chunks_state_not_before", "state", "not_before"),
        Index("ix_delivery_chunks_site_id_run_id", "site_id", "run_id"),
    )

    chunk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    # Earliest time any of its pending recipients may be tried (None: at once).
    not_before: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    create_time: Mapped[datetime]


class DeliveryRecipientRow(Model):
    """One (run, subscriber): its subscription, and its outcome once it has one."""

    __tablename__ = "delivery_recipients"
    __table_args__ = (
        # At most one send per (run, subscriber): a second enqueue is ignored.
        UniqueConstraint("site_id", "run_id", "subscriber_id"),
        ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            ondelete="CASCADE",
        ),
        Index("ix_delivery_recipients_chunk_id_state", "chunk_id", "state"),
        Index("ix_delivery_recipients_site_id_run_id_state", "site_id", "run_id", "state"),
        # The reporter scans terminal outcomes not yet accepted by reporting.
        Index("ix_delivery_recipients_reported_state", "reported", "state"),
        # The pruner scans gone subscribers segment has not unsubscribed yet.
        Index("ix_delivery_recipients_unsubscribe_pending", "unsubscribe_pending"),
    )

    recipient_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    chunk_id: Mapped[str] = mapped_column(
        ForeignKey("delivery_chunks.chunk_id", ondelete="CASCADE")
    )
    subscriber_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    endpoint: Mapped[str] = mapped_column(String(MAX_ENDPOINT_LENGTH))
    p256dh: Mapped[bytes] = mapped_column(LargeBinary)
    auth: Mapped[bytes] = mapped_column(LargeBinary)
    # clarion.common.v1.Browser value, passed through to reporting.
    browser: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(16))
    # Why it failed/expired; while pending, why the last attempt is being retried.
    reason: Mapped[str] = mapped_column(String(MAX_REASON_LENGTH), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None]
    finish_time: Mapped[datetime | None]
    reported: Mapped[bool] = mapped_column(default=False)
    # Set with a 404/410 outcome in the same transaction, cleared once segment has
    # unsubscribed the subscriber: a segment outage delays pruning, never loses it.
    unsubscribe_pending: Mapped[bool] = mapped_column(default=False, server_default=false())
