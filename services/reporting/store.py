"""Reporting persistence: the only module that speaks SQL.

Recording is insert-on-conflict-do-nothing on each table's natural key, so a resent
batch changes nothing and `recorded` counts only rows that are new. Reports are
aggregated by the database (GROUP BY / COUNT), never by looping over rows here.

Conversions: the follower asks for the pushes a page of goal events may be credited to
in one statement (`goal_touches`), and stores what the page credited in the transaction
that moves its feed cursor, compare-and-set (`apply_conversion_page`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.kit.db import session_factory
from services.reporting.models import (
    ControlConversion,
    Conversion,
    DeliveryOutcome,
    DeliveryStatus,
    EngagementEvent,
    EngagementKind,
    FeedCursor,
    RunAudience,
    RunGoal,
)

__all__ = [
    "CONTROL_GROUP_REASON",
    "ControlConversionRecord",
    "ConversionRecord",
    "DeliveryStatus",
    "EngagementKind",
    "EngagementRecord",
    "FollowedGoal",
    "GoalRecord",
    "GoalTouch",
    "OutcomeRecord",
    "ReportTotals",
    "ReportingStore",
    "RunAudienceRecord",
    "VariantTotals",
]

# The stored reason word of an outcome held out as control group
# (DELIVERY_REASON_CONTROL_GROUP).
CONTROL_GROUP_REASON = "control_group"


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
    variant: str = ""
    profile_id: str = ""


@dataclass(frozen=True)
class GoalRecord:
    event_name: str
    window_seconds: int
    revenue_property: str


@dataclass(frozen=True)
class EngagementRecord:
    run_id: str
    campaign_id: str
    subscriber_id: str
    kind: EngagementKind
    button: str
    occur_time: datetime


@dataclass(frozen=True)
class VariantTotals:
    variant: str
    sent: int
    # Distinct subscribers of the variant's pushes that viewed / clicked.
    viewed: int
    clicked: int
    conversions: int
    revenue: float


@dataclass(frozen=True)
class ReportTotals:
    """A campaign's (or one run's) stored totals."""

    campaign_id: str
    runs: int
    audience: int
    outcomes: dict[DeliveryStatus, int]
    # Distinct (run, subscriber) pairs per engagement kind.
    engaged: dict[EngagementKind, int]
    last_sent_time: datetime | None
    conversions: int
    revenue: float
    # Outcomes suppressed as control group, and the (run, profile) pairs of them that
    # did the goal event within the window.
    control_group: int
    control_group_conversions: int
    # In the order first seen (the variant's earliest outcome).
    variants: list[VariantTotals]
    # Of a run: whether it is a test send.
    test: bool = False


@dataclass(frozen=True)
class FollowedGoal:
    """A goal event name of a site whose feed the conversion follower reads."""

    site_id: str
    event_name: str


@dataclass(frozen=True)
class GoalTouch:
    """A push a goal event of its profile may be credited to (or, `held_out`, a push
    its profile did not get: the run's control group)."""

    run_id: str
    subscriber_id: str
    campaign_id: str
    variant: str
    profile_id: str
    held_out: bool
    push_time: datetime
    window: timedelta
    revenue_property: str
    # The first view and click of this push; None when there was none.
    first_view_time: datetime | None
    first_click_time: datetime | None


@dataclass(frozen=True)
class ConversionRecord:
    event_id: str
    run_id: str
    subscriber_id: str
    campaign_id: str
    variant: str
    profile_id: str
    revenue: float
    occur_time: datetime


@dataclass(frozen=True)
class ControlConversionRecord:
    run_id: str
    profile_id: str
    campaign_id: str
    event_id: str
    occur_time: datetime


@dataclass(frozen=True)
class _Scope:
    """What a report counts, as a condition on each table."""

    audiences: ColumnElement[bool]
    outcomes: ColumnElement[bool]
    events: ColumnElement[bool]
    conversions: ColumnElement[bool]
    controls: ColumnElement[bool]


def _counts_toward_goal() -> ColumnElement[bool]:
    """An outcome a goal event can be credited to: sent, or held out as control group."""
    return or_(
        DeliveryOutcome.status == DeliveryStatus.SENT,
        and_(
            DeliveryOutcome.status == DeliveryStatus.SUPPRESSED,
            DeliveryOutcome.reason == CONTROL_GROUP_REASON,
        ),
    )


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
                "variant",
                "profile_id",
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

    async def upsert_run_audience(
        self, site_id: str, record: RunAudienceRecord, goal: GoalRecord | None = None
    ) -> None:
        """Stores the run's audience (a repeat replaces it) and, when given, its goal."""
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
            if goal is None:
                return
            # Outcomes may have come first (the audience is recorded when preparing
            # ends, sends overlap it): the window runs from the last of them.
            last_push = (
                await session.execute(
                    select(func.max(DeliveryOutcome.occur_time)).where(
                        DeliveryOutcome.site_id == site_id,
                        DeliveryOutcome.run_id == record.run_id,
                        _counts_toward_goal(),
                    )
                )
            ).scalar_one_or_none()
            start = max(record.record_time, last_push or record.record_time)
            goal_statement = self._insert(RunGoal).values(
                site_id=site_id,
                run_id=record.run_id,
                event_name=goal.event_name,
                window_seconds=goal.window_seconds,
                revenue_property=goal.revenue_property,
                open_until=start + timedelta(seconds=goal.window_seconds),
            )
            goal_statement = goal_statement.on_conflict_do_update(
                index_elements=[RunGoal.site_id, RunGoal.run_id],
                set_={
                    "event_name": goal_statement.excluded.event_name,
                    "window_seconds": goal_statement.excluded.window_seconds,
                    "revenue_property": goal_statement.excluded.revenue_property,
                    "open_until": goal_statement.excluded.open_until,
                },
            )
            await session.execute(goal_statement)

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
                record.variant,
                record.profile_id,
            )
            for record in records
        ]
        # A run's goal stays open for a window after its last push (or held-out one).
        last_push: dict[str, datetime] = {}
        for record in records:
            if record.status is DeliveryStatus.SENT or (
                record.status is DeliveryStatus.SUPPRESSED
                and record.reason == CONTROL_GROUP_REASON
            ):
                seen = last_push.get(record.run_id)
                if seen is None or record.occur_time > seen:
                    last_push[record.run_id] = record.occur_time
        async with self._sessions.begin() as session:
            recorded = await self._outcomes.run(session, site_id, rows)
            await self._extend_goal_windows(session, site_id, last_push)
            return recorded

    async def _extend_goal_windows(
        self, session: AsyncSession, site_id: str, last_push: dict[str, datetime]
    ) -> None:
        if not last_push:
            return
        goals = await session.execute(
            select(RunGoal.run_id, RunGoal.window_seconds, RunGoal.open_until).where(
                RunGoal.site_id == site_id, RunGoal.run_id.in_(list(last_push))
            )
        )
        # In key order, so two batches of the same runs never wait on each other's rows.
        for run_id, window_seconds, open_until in sorted(goals.all()):
            until = last_push[run_id] + timedelta(seconds=window_seconds)
            if until > open_until:
                await session.execute(
                    update(RunGoal)
                    .where(
                        RunGoal.site_id == site_id,
                        RunGoal.run_id == run_id,
                        RunGoal.open_until < until,
                    )
                    .values(open_until=until)
                )

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

    async def campaign_totals(self, site_id: str, campaign_id: str) -> ReportTotals:
        """A campaign's totals over its runs but test sends."""
        audiences = (RunAudience.site_id == site_id) & (RunAudience.campaign_id == campaign_id)
        outcomes = (DeliveryOutcome.site_id == site_id) & (
            DeliveryOutcome.campaign_id == campaign_id
        )
        # Test sends are left out: their audience and outcome rows say so, and the
        # engagement events of those runs go with them. Their pushes are never credited
        # a conversion, nor held out.
        test_runs = union(
            select(RunAudience.run_id).where(audiences & RunAudience.test),
            select(DeliveryOutcome.run_id).where(outcomes & DeliveryOutcome.test),
        )
        scope = _Scope(
            audiences=audiences & ~RunAudience.test,
            outcomes=outcomes & ~DeliveryOutcome.test,
            events=(EngagementEvent.site_id == site_id)
            & (EngagementEvent.campaign_id == campaign_id)
            & EngagementEvent.run_id.not_in(test_runs),
            conversions=(Conversion.site_id == site_id) & (Conversion.campaign_id == campaign_id),
            controls=(ControlConversion.site_id == site_id)
            & (ControlConversion.campaign_id == campaign_id),
        )
        async with self._sessions() as session:
            return await self._totals(session, scope, campaign_id)

    async def run_totals(self, site_id: str, run_id: str) -> ReportTotals | None:
        """One run's totals, a test send's too; None when the run is not recorded."""
        scope = _Scope(
            audiences=(RunAudience.site_id == site_id) & (RunAudience.run_id == run_id),
            outcomes=(DeliveryOutcome.site_id == site_id) & (DeliveryOutcome.run_id == run_id),
            events=(EngagementEvent.site_id == site_id) & (EngagementEvent.run_id == run_id),
            conversions=(Conversion.site_id == site_id) & (Conversion.run_id == run_id),
            controls=(ControlConversion.site_id == site_id)
            & (ControlConversion.run_id == run_id),
        )
        async with self._sessions() as session:
            owner = (
                await session.execute(
                    select(RunAudience.campaign_id, RunAudience.test).where(scope.audiences)
                )
            ).first()
            if owner is None:
                owner = (
                    await session.execute(
                        select(DeliveryOutcome.campaign_id, DeliveryOutcome.test)
                        .where(scope.outcomes)
                        .order_by(DeliveryOutcome.test.desc())
                        .limit(1)
                    )
                ).first()
            if owner is None:
                return None
            test = bool(owner.test) or bool(
                (
                    await session.execute(
                        select(exists().where(scope.outcomes & DeliveryOutcome.test))
                    )
                ).scalar_one()
            )
            totals = await self._totals(session, scope, owner.campaign_id)
        return replace(totals, test=test)

    async def _totals(
        self, session: AsyncSession, scope: _Scope, campaign_id: str
    ) -> ReportTotals:
        # A run counts once it has an audience or an outcome; engagement events come
        # from browsers and alone do not make a run.
        run_ids = union(
            select(RunAudience.run_id).where(scope.audiences),
            select(DeliveryOutcome.run_id).where(scope.outcomes),
        ).subquery()
        engaged_pairs = (
            select(EngagementEvent.kind, EngagementEvent.run_id, EngagementEvent.subscriber_id)
            .where(scope.events)
            .distinct()
            .subquery()
        )
        runs = (await session.execute(select(func.count()).select_from(run_ids))).scalar_one()
        audience = (
            await session.execute(
                select(func.coalesce(func.sum(RunAudience.audience), 0)).where(scope.audiences)
            )
        ).scalar_one()
        outcome_rows = (
            await session.execute(
                select(
                    DeliveryOutcome.status,
                    func.count(),
                    func.max(DeliveryOutcome.occur_time),
                )
                .where(scope.outcomes)
                .group_by(DeliveryOutcome.status)
            )
        ).all()
        control_group = (
            await session.execute(
                select(func.count()).where(
                    scope.outcomes,
                    DeliveryOutcome.status == DeliveryStatus.SUPPRESSED,
                    DeliveryOutcome.reason == CONTROL_GROUP_REASON,
                )
            )
        ).scalar_one()
        engaged_rows = (
            await session.execute(
                select(engaged_pairs.c.kind, func.count()).group_by(engaged_pairs.c.kind)
            )
        ).all()
        conversion_rows = (
            await session.execute(
                select(
                    Conversion.variant,
                    func.count(),
                    func.coalesce(func.sum(Conversion.revenue), 0.0),
                )
                .where(scope.conversions)
                .group_by(Conversion.variant)
            )
        ).all()
        control_conversions = (
            await session.execute(select(func.count()).where(scope.controls))
        ).scalar_one()
        variants = await self._variant_totals(session, scope, conversion_rows)
        last_sent = next(
            (latest for status, _, latest in outcome_rows if status is DeliveryStatus.SENT), None
        )
        return ReportTotals(
            campaign_id=campaign_id,
            runs=int(runs),
            audience=int(audience),
            outcomes={DeliveryStatus(status): int(count) for status, count, _ in outcome_rows},
            engaged={EngagementKind(kind): int(count) for kind, count in engaged_rows},
            last_sent_time=last_sent,
            conversions=sum(int(count) for _, count, _ in conversion_rows),
            revenue=float(sum(revenue for _, _, revenue in conversion_rows)),
            control_group=int(control_group),
            control_group_conversions=int(control_conversions),
            variants=variants,
        )

    async def _variant_totals(
        self, session: AsyncSession, scope: _Scope, conversion_rows: Sequence[Any]
    ) -> list[VariantTotals]:
        has_variant = scope.outcomes & (DeliveryOutcome.variant != "")
        sent_rows = (
            await session.execute(
                select(
                    DeliveryOutcome.variant,
                    func.sum(case((DeliveryOutcome.status == DeliveryStatus.SENT, 1), else_=0)),
                    func.min(DeliveryOutcome.occur_time),
                )
                .where(has_variant)
                .group_by(DeliveryOutcome.variant)
            )
        ).all()
        if not sent_rows:
            return []
        # A subscriber's engagement belongs to the variant of the push it engaged with.
        pairs = (
            select(
                DeliveryOutcome.variant,
                EngagementEvent.kind,
                EngagementEvent.run_id,
                EngagementEvent.subscriber_id,
            )
            .join(
                DeliveryOutcome,
                (DeliveryOutcome.site_id == EngagementEvent.site_id)
                & (DeliveryOutcome.run_id == EngagementEvent.run_id)
                & (DeliveryOutcome.subscriber_id == EngagementEvent.subscriber_id),
            )
            .where(
                scope.events,
                has_variant,
                EngagementEvent.kind.in_([EngagementKind.VIEWED, EngagementKind.CLICKED]),
            )
            .distinct()
            .subquery()
        )
        engaged: defaultdict[str, dict[EngagementKind, int]] = defaultdict(dict)
        for variant, kind, count in (
            await session.execute(
                select(pairs.c.variant, pairs.c.kind, func.count()).group_by(
                    pairs.c.variant, pairs.c.kind
                )
            )
        ).all():
            engaged[variant][EngagementKind(kind)] = int(count)
        converted = {
            variant: (int(count), float(revenue)) for variant, count, revenue in conversion_rows
        }
        ordered = sorted(sent_rows, key=lambda row: (row[2], row[0]))
        return [
            VariantTotals(
                variant=variant,
                sent=int(sent),
                viewed=engaged[variant].get(EngagementKind.VIEWED, 0),
                clicked=engaged[variant].get(EngagementKind.CLICKED, 0),
                conversions=converted.get(variant, (0, 0.0))[0],
                revenue=converted.get(variant, (0, 0.0))[1],
            )
            for variant, sent, _ in ordered
        ]

    # Conversions.

    async def followed_goals(self, since: datetime) -> list[FollowedGoal]:
        """The (site, event name) pairs of goals open at `since` or later."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(RunGoal.site_id, RunGoal.event_name)
                .where(RunGoal.open_until >= since)
                .distinct()
            )
            return [FollowedGoal(site_id, event_name) for site_id, event_name in rows]

    async def drop_unfollowed_cursors(self, since: datetime) -> int:
        """Forgets the cursors of names no goal open at `since` or later has: when one
        opens again, its feed is read from then on, not through the months between."""
        still_open = exists().where(
            RunGoal.site_id == FeedCursor.site_id,
            RunGoal.event_name == FeedCursor.event_name,
            RunGoal.open_until >= since,
        )
        async with self._sessions.begin() as session:
            # Read first: most passes drop nothing, and on SQLite a DELETE would take
            # the database's write lock even then.
            stale = (
                await session.execute(
                    select(FeedCursor.site_id, FeedCursor.event_name, FeedCursor.cursor).where(
                        ~still_open
                    )
                )
            ).all()
            for site_id, event_name, cursor in stale:
                await session.execute(
                    delete(FeedCursor).where(
                        FeedCursor.site_id == site_id,
                        FeedCursor.event_name == event_name,
                        FeedCursor.cursor == cursor,
                        ~still_open,
                    )
                )
            return len(stale)

    async def feed_cursor(self, site_id: str, event_name: str) -> str | None:
        async with self._sessions() as session:
            return (
                await session.execute(
                    select(FeedCursor.cursor).where(
                        FeedCursor.site_id == site_id, FeedCursor.event_name == event_name
                    )
                )
            ).scalar_one_or_none()

    async def start_feed_cursor(
        self, site_id: str, event_name: str, cursor: str, now: datetime
    ) -> str:
        """Stores `cursor` unless another process stored one first; returns the stored one."""
        statement = (
            self._insert(FeedCursor)
            .values(site_id=site_id, event_name=event_name, cursor=cursor, update_time=now)
            .on_conflict_do_nothing(index_elements=[FeedCursor.site_id, FeedCursor.event_name])
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)
            return (
                await session.execute(
                    select(FeedCursor.cursor).where(
                        FeedCursor.site_id == site_id, FeedCursor.event_name == event_name
                    )
                )
            ).scalar_one()

    async def forget_feed_cursor(self, site_id: str, event_name: str, cursor: str) -> None:
        """Drops the cursor if it is still `cursor` (the next pass starts a new one)."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(FeedCursor).where(
                    FeedCursor.site_id == site_id,
                    FeedCursor.event_name == event_name,
                    FeedCursor.cursor == cursor,
                )
            )

    async def goal_touches(
        self,
        site_id: str,
        event_name: str,
        profile_ids: Sequence[str],
        earliest: datetime,
        latest: datetime,
    ) -> list[GoalTouch]:
        """The pushes (and held-out ones) of runs whose goal is `event_name` to these
        profiles that an event between `earliest` and `latest` may be credited to, with
        their first view and click: one statement for a whole page of events."""
        if not profile_ids:
            return []
        goals = (RunGoal.site_id == site_id) & (RunGoal.event_name == event_name)
        first_engagement = {
            kind: select(func.min(EngagementEvent.occur_time))
            .where(
                EngagementEvent.site_id == DeliveryOutcome.site_id,
                EngagementEvent.run_id == DeliveryOutcome.run_id,
                EngagementEvent.subscriber_id == DeliveryOutcome.subscriber_id,
                EngagementEvent.kind == kind,
            )
            .scalar_subquery()
            for kind in (EngagementKind.VIEWED, EngagementKind.CLICKED)
        }
        async with self._sessions() as session:
            widest = (
                await session.execute(select(func.max(RunGoal.window_seconds)).where(goals))
            ).scalar_one_or_none()
            if widest is None:
                return []
            rows = await session.execute(
                select(
                    DeliveryOutcome.run_id,
                    DeliveryOutcome.subscriber_id,
                    DeliveryOutcome.campaign_id,
                    DeliveryOutcome.variant,
                    DeliveryOutcome.profile_id,
                    DeliveryOutcome.status,
                    DeliveryOutcome.occur_time,
                    RunGoal.window_seconds,
                    RunGoal.revenue_property,
                    first_engagement[EngagementKind.VIEWED],
                    first_engagement[EngagementKind.CLICKED],
                )
                .join(
                    RunGoal,
                    (RunGoal.site_id == DeliveryOutcome.site_id)
                    & (RunGoal.run_id == DeliveryOutcome.run_id),
                )
                .where(
                    goals,
                    DeliveryOutcome.site_id == site_id,
                    # Spelled out so PostgreSQL uses the partial index of profiles.
                    DeliveryOutcome.profile_id != "",
                    DeliveryOutcome.profile_id.in_(sorted(set(profile_ids))),
                    DeliveryOutcome.occur_time >= earliest - timedelta(seconds=widest),
                    DeliveryOutcome.occur_time <= latest,
                    ~DeliveryOutcome.test,
                    _counts_toward_goal(),
                )
            )
            return [
                GoalTouch(
                    run_id=row[0],
                    subscriber_id=row[1],
                    campaign_id=row[2],
                    variant=row[3],
                    profile_id=row[4],
                    held_out=DeliveryStatus(row[5]) is DeliveryStatus.SUPPRESSED,
                    push_time=row[6],
                    window=timedelta(seconds=row[7]),
                    revenue_property=row[8],
                    first_view_time=row[9],
                    first_click_time=row[10],
                )
                for row in rows
            ]

    async def apply_conversion_page(
        self,
        site_id: str,
        event_name: str,
        cursor_from: str,
        cursor_to: str,
        conversions: Sequence[ConversionRecord],
        controls: Sequence[ControlConversionRecord],
        now: datetime,
    ) -> bool:
        """Moves the cursor from `cursor_from` to `cursor_to` and stores what the page
        credited, in one transaction; False (nothing stored) when the cursor was no
        longer at `cursor_from` (another replica acted on the page first). A conversion
        whose event is stored already, or a (run, profile) control conversion, is kept
        as it was."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(FeedCursor)
                .where(
                    FeedCursor.site_id == site_id,
                    FeedCursor.event_name == event_name,
                    FeedCursor.cursor == cursor_from,
                )
                .values(cursor=cursor_to, update_time=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return False
            if conversions:
                await session.execute(
                    self._insert(Conversion)
                    .values([{"site_id": site_id, **asdict(c)} for c in conversions])
                    .on_conflict_do_nothing(
                        index_elements=[Conversion.site_id, Conversion.event_id]
                    )
                )
            if controls:
                await session.execute(
                    self._insert(ControlConversion)
                    .values([{"site_id": site_id, **asdict(c)} for c in controls])
                    .on_conflict_do_nothing(
                        index_elements=[
                            ControlConversion.site_id,
                            ControlConversion.run_id,
                            ControlConversion.profile_id,
                        ]
                    )
                )
        return True
