"""Tables of the campaign service: sites and their API keys, campaigns, runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

ID_LENGTH = 64


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
    title: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    icon_url: Mapped[str] = mapped_column(String(2048))
    image_url: Mapped[str] = mapped_column(String(2048))
    target_url: Mapped[str] = mapped_column(String(2048))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    urgency: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime]

    # Listing pages through a site's campaigns by id (keyset).
    __table_args__ = (Index("ix_campaigns_site_id_campaign_id", "site_id", "campaign_id"),)


class Run(Model):
    __tablename__ = "campaign_runs"

    run_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("sites.site_id", ondelete="CASCADE")
    )
    campaign_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("campaigns.campaign_id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    audience: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime]
    update_time: Mapped[datetime]

    __table_args__ = (Index("ix_campaign_runs_site_id_run_id", "site_id", "run_id"),)
