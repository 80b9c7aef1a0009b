"""Reporting persistence: the only module that speaks SQL.

Recording is insert-on-conflict-do-nothing on each table's natural key, so a resent
batch changes nothing and `recorded` counts only rows that are new. Reports are
aggregated by the database (GROUP BY / COUNT), never by looping over rows here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

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


@dataclass(frozen=True)
class RunAudienceRecord:
    run_id: str
    campaign_id: str
    audience: int
    record_time: datetime
    test: bool = False


@dataclass(frozen=True)
class OutcomeRecord:
    run_id: str
    campaign_id: str
    subscriber_id: str
    status: DeliveryStatus
    reason: str
    browser: str
    occur_time: datetime
    test: bool = False


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


class _InsertIgnoringRepeats:
    """One statement per table, fixed text, that inserts a whole batch of one site's
    rows and skips rows whose natural key is already stored (or repeated in the batch);
    `run` returns how many rows were new.

    The batch travels as one JSON array of rows (json.dumps is C; a driver adapting
    thousands of values one by one was most of the cost), unpacked by the database
    (jsonb_array_elements on PostgreSQL, json_each on SQLite) into INSERT .. SELECT ..
    ON CONFLICT DO NOTHING, whose row count is the number inserted.
    """

    def __init__(
        self,
        table: Table,
        key: Sequence[str],
        columns: Sequence[str],
        time_columns: Sequence[str],
        dialect: Any,
        bool_columns: Sequence[str] = (),
    ) -> None:
        # Per-row columns; site_id is one parameter for the whole batch.
        self._columns = list(columns)
        postgres = dialect.name == "postgresql"
        times = set(time_columns)
        casts = {name: "timestamptz" for name in times} | {name: "boolean" for name in bool_columns}
        if postgres:
            values = [
                f"(r ->> {n})::{casts[name]}" if name in casts else f"r ->> {n}"
                for n, name in enumerate(self._columns)
            ]
            # jsonb: parsed once, where each ->> on json would parse the row again.
            source = "FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"
        else:
            values = [f"json_extract(value, '$[{n}]')" for n in range(len(self._columns))]
            # WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT.
            source = "FROM json_each(:rows) WHERE true"
        self._statement = text(
            f"INSERT INTO {table.name} (site_id, {', '.join(self._columns)}) "
            f"SELECT :site_id, {', '.join(values)} {source} "
            f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        )
        # Timestamps as each database keeps them: ISO 8601 with the offset for
        # PostgreSQL, SQLAlchemy's own text form on SQLite (what reads compare with).
        processor = None
        if times and not postgres:
            time_type = table.c[next(iter(times))].type.dialect_impl(dialect)
            processor = time_type.bind_processor(dialect)
        self._time_at = {n for n, name in enumerate(self._columns) if name in times}
        self._time = processor if processor is not None else (lambda value: value.isoformat())

    async def run(self, session: AsyncSession, site_id: str, rows: Sequence[Sequence[Any]]) -> int:
        """`rows` hold the values of `columns`, in that order."""
        if not rows:
            return 0
        time_at, to_text = self._time_at, self._time
        # A batch shares a few times: each is converted once.
        texts: dict[Any, Any] = {}
        packed = []
        for row in rows:
            values = list(row)
            for n in time_at:
                value = values[n]
                text_value = texts.get(value)
                if text_value is None:
                    text_value = texts[value] = to_text(value)
                values[n] = text_value
            packed.append(values)
        result = await session.execute(
            self._statement,
            {"site_id": site_id, "rows": json.dumps(packed, separators=(",", ":"))},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class ReportingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert
        self._outcomes = _InsertIgnoringRepeats(
            cast(Table, DeliveryOutcome.__table__),
            ["site_id", "run_id", "subscriber_id"],
            [
                "run_id",
                "subscriber_id",
                "campaign_id",
                "status",
                "reason",
                "browser",
                "occur_time",
                "test",
            ],
            ["occur_time"],
            engine.dialect,
            bool_columns=["test"],
        )
        self._events = _InsertIgnoringRepeats(
            cast(Table, EngagementEvent.__table__),
            ["site_id", "run_id", "subscriber_id", "kind", "button"],
            ["run_id", "subscriber_id", "kind", "button", "campaign_id", "occur_time"],
            ["occur_time"],
            engine.dialect,
        )

    async def upsert_run_audience(self, site_id: str, record: RunAudienceRecord) -> None:
        statement = self._insert(RunAudience).values(site_id=site_id, **asdict(record))
        statement = statement.on_conflict_do_update(
            index_elements=[RunAudience.site_id, RunAudience.run_id],
            set_={
                "campaign_id": statement.excluded.campaign_id,
                "audience": statement.excluded.audience,
                "record_time": statement.excluded.record_time,
                "test": statement.excluded.test,
            },
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def insert_outcomes(self, site_id: str, records: Sequence[OutcomeRecord]) -> int:
        """Stores new outcomes in one transaction; returns how many were new."""
        rows = [
            (
                record.run_id,
                record.subscriber_id,
                record.campaign_id,
                record.status.value,
                record.reason,
                record.browser,
                record.occur_time,
                record.test,
            )
            for record in records
        ]
        async with self._sessions.begin() as session:
            return await self._outcomes.run(session, site_id, rows)

    async def insert_engagement_events(
        self, site_id: str, records: Sequence[EngagementRecord]
    ) -> int:
        """Stores new engagement events in one transaction; returns how many were new."""
        rows = [
            (
                record.run_id,
                record.subscriber_id,
                record.kind.value,
                record.button,
                record.campaign_id,
                record.occur_time,
            )
            for record in records
        ]
        async with self._sessions.begin() as session:
            return await self._events.run(session, site_id, rows)

    async def campaigns_of_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, str]:
        """The campaign of each of these runs that reporting knows (from its audience)."""
        if not run_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(RunAudience.run_id, RunAudience.campaign_id).where(
                    RunAudience.site_id == site_id, RunAudience.run_id.in_(list(set(run_ids)))
                )
            )
            return {run_id: campaign_id for run_id, campaign_id in rows}

    async def campaign_totals(self, site_id: str, campaign_id: str) -> CampaignTotals:
        audiences = (RunAudience.site_id == site_id) & (RunAudience.campaign_id == campaign_id)
        outcomes = (DeliveryOutcome.site_id == site_id) & (
            DeliveryOutcome.campaign_id == campaign_id
        )
        events = (EngagementEvent.site_id == site_id) & (EngagementEvent.campaign_id == campaign_id)
        # Test sends are left out: their audience and outcome rows say so, and the
        # engagement events of those runs go with them.
        test_runs = union(
            select(RunAudience.run_id).where(audiences & RunAudience.test),
            select(DeliveryOutcome.run_id).where(outcomes & DeliveryOutcome.test),
        )
        audiences &= ~RunAudience.test
        outcomes &= ~DeliveryOutcome.test
        events &= EngagementEvent.run_id.not_in(test_runs)
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
                    select(engaged_pairs.c.kind, func.count()).group_by(engaged_pairs.c.kind)
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
