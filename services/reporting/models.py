"""Reporting's tables: what each run targeted, how each delivery ended, what browsers reported.

Natural keys are the primary keys: they are exactly the uniqueness that makes recording
idempotent (a resent outcome or event conflicts and is skipped).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, Index, String, Text, false
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

    __table_args__ = (
        Index("ix_reporting_outcomes_site_campaign_status", "site_id", "campaign_id", "status"),
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
