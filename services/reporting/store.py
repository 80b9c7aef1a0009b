"""Reporting persistence: the only module that speaks SQL.

Recording is insert-on-conflict-do-nothing on each table's natural key, so a resent
batch changes nothing and `recorded` counts only rows that are new. Reports are
aggregated by the database (GROUP BY / COUNT), never by looping over rows here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import session_factory
from services.reporting.models import (
    DeliveryOutcome,
    DeliveryStatus,
    EngagementEvent,
    EngagementKind,
    RunAudience,
)

__all__ = [
    "CampaignTotals",
    "DeliveryStatus",
    "EngagementKind",
    "EngagementRecord",
    "OutcomeRecord",
    "ReportingStore",
    "RunAudienceRecord",
]

# Rows per INSERT statement: keeps bound parameters well under SQLite's and
# PostgreSQL's limits (32,766 / 65,535) for the widest table.
_ROWS_PER_STATEMENT = 1000


@dataclass(frozen=True)
class RunAudienceRecord:
    run_id: str
    campaign_id: str
    audience: int
    record_time: datetime


@dataclass(frozen=True)
class OutcomeRecord:
    run_id: str
    campaign_id: str
    subscriber_id: str
    status: DeliveryStatus
    reason: str
    browser: str
    occur_time: datetime


@dataclass(frozen=True)
class EngagementRecord:
    run_id: str
    campaign_id: str
    subscriber_id: str
    kind: EngagementKind
    button: str
    occur_time: datetime


@dataclass(frozen=True)
class CampaignTotals:
    campaign_id: str
    runs: int
    audience: int
    outcomes: dict[DeliveryStatus, int]
    # Distinct (run, subscriber) pairs per engagement kind.
    engaged: dict[EngagementKind, int]
    last_sent_time: datetime | None


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        yield rows[start : start + _ROWS_PER_STATEMENT]


class ReportingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)
        self._insert = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    async def upsert_run_audience(self, site_id: str, record: RunAudienceRecord) -> None:
        statement = self._insert(RunAudience).values(site_id=site_id, **asdict(record))
        statement = statement.on_conflict_do_update(
            index_elements=[RunAudience.site_id, RunAudience.run_id],
            set_={
                "campaign_id": statement.excluded.campaign_id,
                "audience": statement.excluded.audience,
                "record_time": statement.excluded.record_time,
            },
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def insert_outcomes(self, site_id: str, records: Sequence[OutcomeRecord]) -> int:
        """Stores new outcomes in one transaction; returns how many were new."""
        return await self._insert_ignoring_repeats(
            DeliveryOutcome,
            [DeliveryOutcome.site_id, DeliveryOutcome.run_id, DeliveryOutcome.subscriber_id],
            [{"site_id": site_id, **asdict(record)} for record in records],
        )

    async def insert_engagement_events(
        self, site_id: str, records: Sequence[EngagementRecord]
    ) -> int:
        """Stores new engagement events in one transaction; returns how many were new."""
        return await self._insert_ignoring_repeats(
            EngagementEvent,
            [
                EngagementEvent.site_id,
                EngagementEvent.run_id,
                EngagementEvent.subscriber_id,
                EngagementEvent.kind,
                EngagementEvent.button,
            ],
            [{"site_id": site_id, **asdict(record)} for record in records],
        )

    async def _insert_ignoring_repeats(
        self, model: type[Any], key: list[Any], rows: Sequence[dict[str, Any]]
    ) -> int:
        inserted = 0
        async with self._sessions.begin() as session:
            for chunk in _chunks(rows):
                # RETURNING yields only the rows actually inserted; rowcount is not
                # reliable for multi-row inserts on every driver (psycopg async gives -1).
                statement = (
                    self._insert(model)
                    .values(list(chunk))
                    .on_conflict_do_nothing(index_elements=key)
                    .returning(key[0])
                )
                result = await session.execute(statement)
                inserted += len(result.all())
        return inserted

    async def campaign_totals(self, site_id: str, campaign_id: str) -> CampaignTotals:
        audiences = (RunAudience.site_id == site_id) & (RunAudience.campaign_id == campaign_id)
        outcomes = (DeliveryOutcome.site_id == site_id) & (
            DeliveryOutcome.campaign_id == campaign_id
        )
        events = (EngagementEvent.site_id == site_id) & (
            EngagementEvent.campaign_id == campaign_id
        )
        # A run counts once it has an audience or an outcome; engagement events come
        # from browsers and alone do not make a run.
        run_ids = union(
            select(RunAudience.run_id).where(audiences),
            select(DeliveryOutcome.run_id).where(outcomes),
        ).subquery()
        engaged_pairs = (
            select(EngagementEvent.kind, EngagementEvent.run_id, EngagementEvent.subscriber_id)
            .where(events)
            .distinct()
            .subquery()
        )
        async with self._sessions() as session:
            runs = (await session.execute(select(func.count()).select_from(run_ids))).scalar_one()
            audience = (
                await session.execute(
                    select(func.coalesce(func.sum(RunAudience.audience), 0)).where(audiences)
                )
            ).scalar_one()
            outcome_rows = (
                await session.execute(
                    select(
                        DeliveryOutcome.status,
                        func.count(),
                        func.max(DeliveryOutcome.occur_time),
                    )
                    .where(outcomes)
                    .group_by(DeliveryOutcome.status)
                )
            ).all()
            engaged_rows = (
                await session.execute(
                    select(engaged_pairs.c.kind, func.count())
                    .group_by(engaged_pairs.c.kind)
                )
            ).all()
        last_sent = next(
            (latest for status, _, latest in outcome_rows if status is DeliveryStatus.SENT), None
        )
        return CampaignTotals(
            campaign_id=campaign_id,
            runs=int(runs),
            audience=int(audience),
            outcomes={DeliveryStatus(status): int(count) for status, count, _ in outcome_rows},
            engaged={EngagementKind(kind): int(count) for kind, count in engaged_rows},
            last_sent_time=last_sent,
        )
