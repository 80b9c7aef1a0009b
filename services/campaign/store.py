"""Persistence of the campaign service: the only module that speaks SQL.

Every tenant query filters on site_id; callers get frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.campaign import models
from services.kit.db import session_factory


class Urgency(StrEnum):
    """RFC 8030 §5.3 Urgency, as stored."""

    VERY_LOW = "very-low"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class RunState(StrEnum):
    PREPARING = "preparing"
    QUEUED = "queued"
    FAILED = "failed"


@dataclass(frozen=True)
class SiteRecord:
    """A site as its owner may see it (no private key)."""

    site_id: str
    name: str
    vapid_public_key: bytes
    vapid_subject: str
    create_time: datetime


@dataclass(frozen=True)
class SiteCredentials:
    site_id: str
    vapid_private_key: bytes
    vapid_public_key: bytes
    vapid_subject: str

    def __repr__(self) -> str:  # keeps the private key out of logs and tracebacks
        return f"SiteCredentials(site_id={self.site_id!r}, vapid_private_key=<redacted>)"


@dataclass(frozen=True)
class Notification:
    title: str
    body: str = ""
    icon_url: str = ""
    image_url: str = ""
    target_url: str = ""


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    site_id: str
    name: str
    notification: Notification
    ttl_seconds: int
    urgency: Urgency
    create_time: datetime


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    site_id: str
    campaign_id: str
    state: RunState
    audience: int
    failure_reason: str
    create_time: datetime


class CampaignStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    # Sites ---------------------------------------------------------------------------

    async def insert_site(
        self, site: SiteRecord, vapid_private_key: bytes, api_key_hash: str
    ) -> None:
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
            await session.flush()  # the key row references the site
            session.add(
                models.SiteApiKey(
                    key_hash=api_key_hash, site_id=site.site_id, create_time=site.create_time
                )
            )

    async def get_site(self, site_id: str) -> SiteRecord | None:
        async with self._sessions() as session:
            row = await session.get(models.Site, site_id)
            if row is None:
                return None
            return SiteRecord(
                site_id=row.site_id,
                name=row.name,
                vapid_public_key=row.vapid_public_key,
                vapid_subject=row.vapid_subject,
                create_time=row.create_time,
            )

    async def get_site_credentials(self, site_id: str) -> SiteCredentials | None:
        async with self._sessions() as session:
            row = await session.get(models.Site, site_id)
            if row is None:
                return None
            return SiteCredentials(
                site_id=row.site_id,
                vapid_private_key=row.vapid_private_key,
                vapid_public_key=row.vapid_public_key,
                vapid_subject=row.vapid_subject,
            )

    async def site_id_for_api_key_hash(self, key_hash: str) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(models.SiteApiKey.site_id).where(models.SiteApiKey.key_hash == key_hash)
            )

    # Campaigns -----------------------------------------------------------------------

    async def insert_campaign(self, campaign: CampaignRecord) -> bool:
        """Stores the campaign; False (nothing stored) when its site does not exist."""
        async with self._sessions.begin() as session:
            if await session.get(models.Site, campaign.site_id) is None:
                return False
            note = campaign.notification
            session.add(
                models.Campaign(
                    campaign_id=campaign.campaign_id,
                    site_id=campaign.site_id,
                    name=campaign.name,
                    title=note.title,
                    body=note.body,
                    icon_url=note.icon_url,
                    image_url=note.image_url,
                    target_url=note.target_url,
                    ttl_seconds=campaign.ttl_seconds,
                    urgency=campaign.urgency.value,
                    create_time=campaign.create_time,
                )
            )
            return True

    async def get_campaign(self, site_id: str, campaign_id: str) -> CampaignRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(models.Campaign).where(
                    models.Campaign.site_id == site_id,
                    models.Campaign.campaign_id == campaign_id,
                )
            )
            return _campaign(row) if row is not None else None

    async def list_campaigns(
        self, site_id: str, after_campaign_id: str, limit: int
    ) -> list[CampaignRecord]:
        """Up to `limit` of the site's campaigns with ids above `after_campaign_id`, by id."""
        query = select(models.Campaign).where(models.Campaign.site_id == site_id)
        if after_campaign_id:
            query = query.where(models.Campaign.campaign_id > after_campaign_id)
        query = query.order_by(models.Campaign.campaign_id).limit(limit)
        async with self._sessions() as session:
            return [_campaign(row) for row in await session.scalars(query)]

    # Runs ----------------------------------------------------------------------------

    async def insert_run(self, run: RunRecord) -> None:
        async with self._sessions.begin() as session:
            session.add(
                models.Run(
                    run_id=run.run_id,
                    site_id=run.site_id,
                    campaign_id=run.campaign_id,
                    state=run.state.value,
                    audience=run.audience,
                    failure_reason=run.failure_reason,
                    create_time=run.create_time,
                    update_time=run.create_time,
                )
            )

    async def finish_run(
        self,
        site_id: str,
        run_id: str,
        state: RunState,
        audience: int,
        failure_reason: str,
        now: datetime,
    ) -> RunRecord | None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(models.Run)
                .where(models.Run.site_id == site_id, models.Run.run_id == run_id)
                .values(
                    state=state.value,
                    audience=audience,
                    failure_reason=failure_reason,
                    update_time=now,
                )
            )
        return await self.get_run(site_id, run_id)

    async def get_run(self, site_id: str, run_id: str) -> RunRecord | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(models.Run).where(models.Run.site_id == site_id, models.Run.run_id == run_id)
            )
            if row is None:
                return None
            return RunRecord(
                run_id=row.run_id,
                site_id=row.site_id,
                campaign_id=row.campaign_id,
                state=RunState(row.state),
                audience=row.audience,
                failure_reason=row.failure_reason,
                create_time=row.create_time,
            )


def _campaign(row: models.Campaign) -> CampaignRecord:
    return CampaignRecord(
        campaign_id=row.campaign_id,
        site_id=row.site_id,
        name=row.name,
        notification=Notification(
            title=row.title,
            body=row.body,
            icon_url=row.icon_url,
            image_url=row.image_url,
            target_url=row.target_url,
        ),
        ttl_seconds=row.ttl_seconds,
        urgency=Urgency(row.urgency),
        create_time=row.create_time,
    )
