"""Reporting persistence: the only module that speaks SQL.

Recording is insert-on-conflict-do-nothing on each table's natural key, so a resent
batch changes nothing and `recorded` counts only rows that are new.

Reports read pre-aggregated counters (reporting_counters, reporting_hours,
reporting_runs, reporting_run_variants), kept in the transaction that stores the rows
they count and counting only the rows the insert returned as new: increments summed per
key (an outcome batch's by the database, `_new_outcome_sums`), upserted
`n = n + excluded.n` in key order. Engagement before its
outcome is counted under UNATTRIBUTED and moved by the outcome's transaction; advisory
locks (LOCK_BUCKETS) keep the two from passing each other on PostgreSQL.
`recount` recounts a run from its rows, for checks.

Conversions: the follower asks for the pushes a page of goal events may be credited to
in one statement (`goal_touches`), and stores what the page credited in the transaction
that moves its feed cursor, compare-and-set (`apply_conversion_page`).

Webhooks: the engagement events a batch added queue their messages (one per endpoint of
the site that takes the event's type) in the batch's own transaction, so an event
recorded is an event queued. Dispatchers claim due messages (`claim_webhook_messages`:
FOR UPDATE SKIP LOCKED on PostgreSQL, a conditional UPDATE on SQLite, whose one writer
makes it atomic) by moving their due time a lease ahead under a fresh claim token, and
settle them naming that token (`settle_webhook_attempts`), so a claim that lapsed and
was taken over writes nothing. Transactions that change an endpoint and its messages
lock the endpoint row first, then the messages.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.kit.db import UTCDateTime, session_factory
from services.kit.ids import new_id
from services.reporting.models import (
    ControlConversion,
    Conversion,
    DeliveryOutcome,
    DeliveryStatus,
    EngagementEvent,
    EngagementKind,
    FeedCursor,
    ReportCounter,
    ReportHour,
    ReportRun,
    ReportVariant,
    RunAudience,
    RunDescription,
    RunGoal,
    UnsubscribeCredit,
    WebhookEndpoint,
    WebhookEndpointState,
    WebhookEventType,
    WebhookMessage,
    WebhookMessageState,
)

__all__ = [
    "CONTROL_GROUP_REASON",
    "AttemptOutcome",
    "AttemptResult",
    "ClaimedMessage",
    "ControlConversionRecord",
    "ConversionRecord",
    "DeadLetterRecord",
    "DeliveryStatus",
    "DescriptionRecord",
    "EndpointRecord",
    "EngagementKind",
    "EngagementRecord",
    "NewEndpoint",
    "WebhookEndpointState",
    "WebhookEventType",
    "FollowedGoal",
    "GoalRecord",
    "GoalTouch",
    "OutcomeBatch",
    "OutcomeRecord",
    "CounterRow",
    "RecipientActivityRecord",
    "ReportTotals",
    "ReportingStore",
    "RunAudienceRecord",
    "UNATTRIBUTED",
    "UNSUBSCRIBE_CURSOR",
    "UnsubscribeRecord",
]

# The stored reason word of an outcome held out as control group
# (DELIVERY_REASON_CONTROL_GROUP).
CONTROL_GROUP_REASON = "control_group"
# The browser a recipient's engagement is counted under until its outcome (which says
# the browser and variant) is recorded; recording the outcome moves the counts.
UNATTRIBUTED = "*"
# The feed cursor (reporting_feed_cursors.event_name) of a site's "Unsubscribed" events,
# apart from any goal's (a goal's event name is one line: it never holds a newline).
UNSUBSCRIBE_CURSOR = "\nUnsubscribed"
# A timeline holds at most the last this many hours.
MAX_TIMELINE_HOURS = 720
_HOUR_METRICS = ("sent", "viewed", "clicked", "converted")
# Outcome and engagement batches of one run serialize per bucket of recipients
# (PostgreSQL advisory locks: outcomes shared, engagement exclusive), so whichever of a
# recipient's outcome and engagement is stored second sees the first and moves its
# counts: per-browser and per-variant engagement stays exact in any order.
LOCK_BUCKETS = 16


def _hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _lock_key(site_id: str, run_id: str, subscriber_id: str) -> int:
    return _bucket_key(_run_lock_base(site_id, run_id), zlib.crc32(subscriber_id.encode()))


def _run_lock_base(site_id: str, run_id: str) -> int:
    run = hashlib.blake2b(f"{site_id}\0{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(run, "big") & ~(LOCK_BUCKETS - 1)


def _bucket_key(base: int, bucket: int) -> int:
    value = base | (bucket % LOCK_BUCKETS)
    return value - (1 << 64) if value >= 1 << 63 else value


def _lock_keys(site_id: str, run_ids: Sequence[str], subscriber_ids: Sequence[str]) -> list[int]:
    """The sorted advisory lock keys (`_lock_key`) of these (run, subscriber) pairs: each
    run hashed once, a run's buckets gathered until all of them are seen."""
    buckets: dict[str, set[int]] = {}
    crc32 = zlib.crc32
    if len(set(run_ids)) == 1:
        seen = buckets[run_ids[0]] = set()
        for subscriber_id in subscriber_ids:
            seen.add(crc32(subscriber_id.encode()) % LOCK_BUCKETS)
            if len(seen) == LOCK_BUCKETS:
                break
    else:
        for run_id, subscriber_id in zip(run_ids, subscriber_ids, strict=True):
            found = buckets.get(run_id)
            if found is None:
                found = buckets[run_id] = set()
            if len(found) < LOCK_BUCKETS:
                found.add(crc32(subscriber_id.encode()) % LOCK_BUCKETS)
    return sorted(
        {
            _bucket_key(base, bucket)
            for run_id, found in buckets.items()
            for base in (_run_lock_base(site_id, run_id),)
            for bucket in found
        }
    )


@dataclass(frozen=True)
class UnsubscribeRecord:
    """An "Unsubscribed" event credited to the subscriber's last push before it."""

    event_id: str
    run_id: str
    subscriber_id: str
    occur_time: datetime


class _Counts:
    """One transaction's counter and hour increments, summed per key, stored in key
    order (concurrent writers lock counter rows in the same order: no deadlock)."""

    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, str, str, str, str], list[float]] = defaultdict(
            lambda: [0, 0.0]
        )
        self.hours: defaultdict[tuple[str, datetime, str], int] = defaultdict(int)

    def add(
        self,
        run_id: str,
        variant: str,
        browser: str,
        metric: str,
        key: str = "",
        n: int = 1,
        amount: float = 0.0,
    ) -> None:
        slot = self.counters[(run_id, variant, browser, metric, key)]
        slot[0] += n
        slot[1] += amount

    def hour(self, run_id: str, moment: datetime, metric: str, n: int = 1) -> None:
        self.hours[(run_id, _hour_of(moment), metric)] += n


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
class OutcomeBatch:
    """Outcomes as columns, item i of every list being outcome i: a batch of thousands
    is decoded, checked and stored a column at a time (list operations in C), not an
    object per outcome."""

    run_ids: list[str]
    campaign_ids: list[str]
    subscriber_ids: list[str]
    statuses: list[DeliveryStatus]
    reasons: list[str]
    browsers: list[str]
    occur_times: list[datetime]
    tests: list[bool]
    variants: list[str]
    profile_ids: list[str]

    def __len__(self) -> int:
        return len(self.run_ids)

    @classmethod
    def of(cls, records: Sequence[OutcomeRecord]) -> OutcomeBatch:
        return cls(
            [r.run_id for r in records],
            [r.campaign_id for r in records],
            [r.subscriber_id for r in records],
            [r.status for r in records],
            [r.reason for r in records],
            [r.browser for r in records],
            [r.occur_time for r in records],
            [r.test for r in records],
            [r.variant for r in records],
            [r.profile_id for r in records],
        )

    def last_pushes(self) -> dict[str, datetime]:
        """Per run, the latest push (sent, or held out as control group) of the batch."""
        sent, suppressed = DeliveryStatus.SENT, DeliveryStatus.SUPPRESSED
        pushes = (
            (run_id, at)
            for run_id, at, status, reason in zip(
                self.run_ids, self.occur_times, self.statuses, self.reasons, strict=True
            )
            if status is sent or (status is suppressed and reason == CONTROL_GROUP_REASON)
        )
        last: dict[str, datetime] = {}
        if len(set(self.run_ids)) == 1:
            latest = max((at for _, at in pushes), default=None)
            if latest is not None:
                last[self.run_ids[0]] = latest
            return last
        for run_id, at in pushes:
            seen = last.get(run_id)
            if seen is None or at > seen:
                last[run_id] = at
        return last


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


@dataclass(frozen=True, order=True)
class CounterRow:
    """A report counter, summed over the runs a report covers (see ReportCounter)."""

    variant: str
    browser: str
    metric: str
    key: str
    n: int
    amount: float = 0.0


@dataclass(frozen=True)
class ReportTotals:
    """A campaign's (or one run's) stored counters, as summed from the counter tables."""

    campaign_id: str
    runs: int
    audience: int
    last_sent_time: datetime | None
    counters: list[CounterRow]
    # (hour start, metric, count), oldest first.
    hours: list[tuple[datetime, str, int]]
    # Variants in the order first seen.
    variants: list[str]
    # Whether any of its runs has a conversion goal.
    has_goal: bool
    # Of a run: whether it is a test send, and when it started.
    test: bool = False
    run_id: str = ""
    start_time: datetime | None = None


@dataclass(frozen=True)
class RecipientActivityRecord:
    """What reporting recorded of one (run, subscriber)."""

    outcome: OutcomeRecord | None
    # Per engagement kind, the first event's time and button.
    first: dict[EngagementKind, tuple[datetime, str]]
    conversions: int
    revenue: float
    first_conversion_time: datetime | None


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
class DescriptionRecord:
    """What webhooks say of a run: its title(s) and UTM parameters as written."""

    notification_title: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""
    # {variant id: title} of an A/B campaign's variants.
    variant_titles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEndpoint:
    endpoint_id: str
    url: str
    event_types: frozenset[WebhookEventType]
    secret: str
    request_id: str | None
    request_fingerprint: str | None
    now: datetime


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint as the site sees it (its secrets stay in the store)."""

    endpoint_id: str
    url: str
    event_types: frozenset[WebhookEventType]
    active: bool
    state: WebhookEndpointState
    state_reason: str
    create_time: datetime
    update_time: datetime
    consecutive_failures: int
    last_success_time: datetime | None
    last_failure_time: datetime | None
    last_failure: str
    previous_secret_expire_time: datetime | None
    # Messages queued for it, neither delivered nor dead.
    backlog: int = 0
    request_fingerprint: str | None = None


@dataclass(frozen=True)
class DeadLetterRecord:
    message_id: str
    endpoint_id: str
    event_type: WebhookEventType
    payload: str
    attempts: int
    last_failure: str
    first_attempt_time: datetime | None
    dead_time: datetime


@dataclass(frozen=True)
class ClaimedMessage:
    """A message a dispatcher holds under `claim_token` until its lease ends, with what
    sending it takes: the endpoint's URL and secrets, and the run's description (None
    when not recorded yet) and the variant its push had, for a body not built yet."""

    message_id: str
    site_id: str
    endpoint_id: str
    claim_token: str
    # Counting the one about to be made.
    attempts: int
    event_type: WebhookEventType
    run_id: str
    campaign_id: str
    subscriber_id: str
    button: str
    payload: str | None
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expire_time: datetime | None
    description: DescriptionRecord | None
    variant: str


class AttemptOutcome(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    # 410 Gone: the endpoint is disabled and its queue dead-lettered.
    GONE = "gone"


@dataclass(frozen=True)
class AttemptResult:
    message: ClaimedMessage
    outcome: AttemptOutcome
    # The body sent (kept, so every later attempt sends the same).
    payload: str
    attempt_time: datetime
    # Why it failed ("HTTP 500", ...); empty when delivered.
    failure: str = ""
    # A failed message's next attempt; None: it is dead (attempts exhausted).
    next_due: datetime | None = None
    # For GONE: the endpoint's state_reason.
    state_reason: str = ""


# Endpoints events are queued for: a paused one keeps its queue growing (it is sent
# once resumed); an inactive or disabled one gets nothing.
_QUEUED_FOR = (WebhookEndpointState.ACTIVE, WebhookEndpointState.PAUSED)

WEBHOOK_EVENT_OF_KIND = {
    EngagementKind.VIEWED: WebhookEventType.VIEW,
    EngagementKind.CLICKED: WebhookEventType.CLICK,
    EngagementKind.CLOSED: WebhookEventType.CLOSE,
}


def _description(row: RunDescription) -> DescriptionRecord:
    try:
        titles = json.loads(row.variant_titles or "{}")
    except ValueError:
        titles = {}
    return DescriptionRecord(
        notification_title=row.notification_title,
        utm_source=row.utm_source,
        utm_medium=row.utm_medium,
        utm_campaign=row.utm_campaign,
        utm_content=row.utm_content,
        utm_term=row.utm_term,
        variant_titles=titles if isinstance(titles, dict) else {},
    )


def _counts_toward_goal() -> ColumnElement[bool]:
    """An outcome a goal event can be credited to: sent, or held out as control group."""
    return or_(
        DeliveryOutcome.status == DeliveryStatus.SENT,
        and_(
            DeliveryOutcome.status == DeliveryStatus.SUPPRESSED,
            DeliveryOutcome.reason == CONTROL_GROUP_REASON,
        ),
    )


def _at_cursor(site_id: str, event_name: str, cursor: str) -> tuple[ColumnElement[bool], ...]:
    """The site's feed cursor of `event_name` while it still reads `cursor`."""
    return (
        FeedCursor.site_id == site_id,
        FeedCursor.event_name == event_name,
        FeedCursor.cursor == cursor,
    )


async def _move_cursor(
    session: AsyncSession,
    site_id: str,
    event_name: str,
    cursor_from: str,
    cursor_to: str,
    now: datetime,
) -> bool:
    """Moves the site's feed cursor of `event_name` from `cursor_from` to `cursor_to`;
    False (nothing moved) when it no longer read `cursor_from`."""
    moved = await session.execute(
        update(FeedCursor)
        .where(*_at_cursor(site_id, event_name, cursor_from))
        .values(cursor=cursor_to, update_time=now)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


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
        # The same, answering the keys of the rows it inserted (not the skipped ones).
        self._returned = [name for name in key if name != "site_id"]
        self._returning_statement = text(
            f"{self._statement.text} RETURNING {', '.join(self._returned)}"
        )
        # Timestamps as each database keeps them: ISO 8601 with the offset for
        # PostgreSQL, SQLAlchemy's own text form on SQLite (what reads compare with).
        processor = None
        if times and not postgres:
            time_type = table.c[next(iter(times))].type.dialect_impl(dialect)
            processor = time_type.bind_processor(dialect)
        self._time_at = {n for n, name in enumerate(self._columns) if name in times}
        self._time = processor if processor is not None else (lambda value: value.isoformat())

    @property
    def sql(self) -> str:
        """The statement's text (parameters :site_id and :rows), without RETURNING."""
        return str(self._statement.text)

    async def run(self, session: AsyncSession, site_id: str, rows: Sequence[Sequence[Any]]) -> int:
        """`rows` hold the values of `columns`, in that order."""
        if not rows:
            return 0
        result = await session.execute(self._statement, self._parameters(site_id, rows))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def run_returning(
        self, session: AsyncSession, site_id: str, rows: Sequence[Sequence[Any]]
    ) -> list[tuple[Any, ...]]:
        """Like `run`; answers the key (without site_id) of each row that was new."""
        if not rows:
            return []
        result = await session.execute(
            self._returning_statement, self._parameters(site_id, rows)
        )
        return [tuple(row) for row in result]

    def _parameters(self, site_id: str, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
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
        return {"site_id": site_id, "rows": json.dumps(packed, separators=(",", ":"))}

    def column_parameters(self, site_id: str, columns: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """`_parameters` of rows given as columns (the values of `columns`, in that
        order): zipped and packed in C, each distinct time converted once."""
        packed = list(columns)
        for n in self._time_at:
            texts = {value: self._time(value) for value in set(packed[n])}
            packed[n] = list(map(texts.__getitem__, packed[n]))
        rows = list(zip(*packed, strict=True))
        return {"site_id": site_id, "rows": json.dumps(rows, separators=(",", ":"))}


_SUMMED_OUTCOME_COLUMNS = (
    "run_id", "subscriber_id", "campaign_id", "status", "reason", "browser", "occur_time",
    "test", "variant", "profile_id",
)  # fmt: skip
_LAST_ROWID = text("SELECT last_insert_rowid()")


def _new_outcome_sums(new_rows: str, postgres: bool) -> Any:
    """One statement answering what the outcomes `new_rows` selects (or, a data-modifying
    statement's RETURNING, inserts) add to the counters, as rows
    (part, run_id, a, b, c, d, n, at):

    - status: (variant, browser, status, reason) -> outcomes
    - sent_hour: hour (UTC) -> sent outcomes
    - run: campaign (the least named), n 1 when any is a test send, at the first time
    - last_sent: at the last sent time
    - variant: (variant) -> at its first time
    - moved: (variant, browser, kind) -> recipients with engagement of that kind stored
      before their outcome (counted under UNATTRIBUTED until now)
    - button: (variant, browser, button) -> such clicks
    - control: held-out recipients whose profile's control conversion came first
    """
    if postgres:
        hour = "date_trunc('hour', occur_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        no_time = "CAST(NULL AS timestamptz)"
    else:
        # SQLAlchemy's text form of a time on SQLite ("2026-01-02 03:04:05.000000").
        hour = "substr(occur_time, 1, 13) || ':00:00.000000'"
        no_time = "NULL"
    sql = f"""
WITH added AS ({new_rows}),
moved AS (
  SELECT added.run_id, added.variant, added.browser, e.kind, e.button, added.subscriber_id
  FROM added JOIN {EngagementEvent.__tablename__} AS e
    ON e.site_id = :site_id AND e.run_id = added.run_id AND e.subscriber_id = added.subscriber_id
)
SELECT 'status' AS part, run_id, variant AS a, browser AS b, status AS c, reason AS d,
       count(*) AS n, {no_time} AS at
  FROM added GROUP BY run_id, variant, browser, status, reason
UNION ALL
SELECT 'sent_hour', run_id, '', '', '', '', count(*), {hour}
  FROM added WHERE status = 'sent' GROUP BY run_id, {hour}
UNION ALL
SELECT 'run', run_id, min(campaign_id), '', '', '', max(CASE WHEN test THEN 1 ELSE 0 END),
       min(occur_time)
  FROM added GROUP BY run_id
UNION ALL
SELECT 'last_sent', run_id, '', '', '', '', count(*), max(occur_time)
  FROM added WHERE status = 'sent' GROUP BY run_id
UNION ALL
SELECT 'variant', run_id, variant, '', '', '', count(*), min(occur_time)
  FROM added WHERE variant <> '' GROUP BY run_id, variant
UNION ALL
SELECT 'moved', run_id, variant, browser, kind, '', count(DISTINCT subscriber_id), {no_time}
  FROM moved GROUP BY run_id, variant, browser, kind
UNION ALL
SELECT 'button', run_id, variant, browser, button, '', count(*), {no_time}
  FROM moved WHERE kind = 'clicked' GROUP BY run_id, variant, browser, button
UNION ALL
SELECT 'control', added.run_id, '', '', '', '', count(*), {no_time}
  FROM added JOIN {ControlConversion.__tablename__} AS c
    ON c.site_id = :site_id AND c.run_id = added.run_id AND c.profile_id = added.profile_id
  WHERE added.status = 'suppressed' AND added.reason = '{CONTROL_GROUP_REASON}'
    AND added.profile_id <> ''
  GROUP BY added.run_id
"""
    return text(sql).columns(
        part=String, run_id=String, a=String, b=String, c=String, d=String, n=Integer,
        at=UTCDateTime,
    )  # fmt: skip


class ReportingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)
        postgres = engine.dialect.name == "postgresql"
        self._postgres = postgres
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
        # Recording outcomes (`insert_outcome_batch`), compiled once.
        self._insert_outcomes_sql = text(self._outcomes.sql)
        self._insert_summing_outcomes = _new_outcome_sums(
            f"{self._outcomes.sql} RETURNING {', '.join(_SUMMED_OUTCOME_COLUMNS)}", postgres
        )
        self._new_outcome_sums = _new_outcome_sums(
            f"SELECT {', '.join(_SUMMED_OUTCOME_COLUMNS)} FROM {DeliveryOutcome.__tablename__} "
            "WHERE rowid > :after_rowid",
            postgres,
        )
        self._events = _InsertIgnoringRepeats(
            cast(Table, EngagementEvent.__table__),
            ["site_id", "run_id", "subscriber_id", "kind", "button"],
            ["run_id", "subscriber_id", "kind", "button", "campaign_id", "occur_time"],
            ["occur_time"],
            engine.dialect,
        )

    async def upsert_run_audience(
        self,
        site_id: str,
        record: RunAudienceRecord,
        goal: GoalRecord | None = None,
        description: DescriptionRecord | None = None,
    ) -> None:
        """Stores the run's audience (a repeat replaces it) and, when given, its goal and
        its description (each replacing the stored one)."""
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
            await self._upsert_runs(
                session,
                site_id,
                [
                    {
                        "run_id": record.run_id,
                        "campaign_id": record.campaign_id,
                        "test": record.test,
                        "audience": record.audience,
                        "start_time": record.record_time,
                        "last_sent_time": None,
                    }
                ],
                audience=True,
            )
            if description is not None:
                await self._upsert_description(session, site_id, record, description)
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

    async def _upsert_description(
        self,
        session: AsyncSession,
        site_id: str,
        record: RunAudienceRecord,
        description: DescriptionRecord,
    ) -> None:
        values = asdict(description)
        values["variant_titles"] = json.dumps(description.variant_titles, sort_keys=True)
        statement = self._insert(RunDescription).values(
            site_id=site_id, run_id=record.run_id, record_time=record.record_time, **values
        )
        statement = statement.on_conflict_do_update(
            index_elements=[RunDescription.site_id, RunDescription.run_id],
            set_={name: statement.excluded[name] for name in [*values, "record_time"]},
        )
        await session.execute(statement)

    async def run_description(self, site_id: str, run_id: str) -> DescriptionRecord | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(RunDescription).where(
                        RunDescription.site_id == site_id, RunDescription.run_id == run_id
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else _description(row)

    async def insert_outcomes(self, site_id: str, records: Sequence[OutcomeRecord]) -> int:
        """Stores new outcomes in one transaction; returns how many were new."""
        return await self.insert_outcome_batch(site_id, OutcomeBatch.of(records))

    async def insert_outcome_batch(self, site_id: str, batch: OutcomeBatch) -> int:
        """Stores new outcomes in one transaction, with the counters of the new ones;
        returns how many were new. The first of a key repeated in the batch is the one
        stored.

        What the new rows add is summed by the database (`_new_outcome_sums`: a few rows
        per run, variant and browser) instead of in Python per outcome: on PostgreSQL in
        the insert's own statement (a data-modifying CTE whose RETURNING rows are the
        new outcomes), on SQLite from the rows the insert added (its one writer gives
        them consecutive rowids ending at last_insert_rowid())."""
        if not len(batch):
            return 0
        parameters = self._outcomes.column_parameters(
            site_id,
            (
                batch.run_ids,
                batch.subscriber_ids,
                batch.campaign_ids,
                batch.statuses,
                batch.reasons,
                batch.browsers,
                batch.occur_times,
                batch.tests,
                batch.variants,
                batch.profile_ids,
            ),
        )
        # A run's goal stays open for a window after its last push (or held-out one).
        last_push = batch.last_pushes()
        async with self._sessions.begin() as session:
            if self._postgres:
                await self._lock_recipients(
                    session, _lock_keys(site_id, batch.run_ids, batch.subscriber_ids), shared=True
                )
                sums = (await session.execute(self._insert_summing_outcomes, parameters)).all()
                inserted = sum(row.n for row in sums if row.part == "status")
            else:
                result = await session.execute(self._insert_outcomes_sql, parameters)
                inserted = int(result.rowcount)  # type: ignore[attr-defined]
                if not inserted:
                    return 0
                last = (await session.execute(_LAST_ROWID)).scalar_one()
                sums = (
                    await session.execute(
                        self._new_outcome_sums,
                        {"site_id": site_id, "after_rowid": last - inserted},
                    )
                ).all()
            # Runs, counters, then goals: the order every writer takes these rows in.
            await self._count_outcomes(session, site_id, sums)
            await self._extend_goal_windows(session, site_id, last_push)
            return inserted

    async def _count_outcomes(
        self, session: AsyncSession, site_id: str, sums: Sequence[Any]
    ) -> None:
        """Counts newly stored outcomes from their sums (`_new_outcome_sums`), and moves
        the engagement that came before them to their browser and variant."""
        counts = _Counts()
        runs: dict[str, dict[str, Any]] = {}
        variants: list[dict[str, Any]] = []
        last_sent: dict[str, datetime] = {}
        for part, run_id, a, b, c, d, n, at in sums:
            if part == "status":
                counts.add(run_id, a, b, c, d, n=n)
            elif part == "moved":
                counts.add(run_id, "", UNATTRIBUTED, c, n=-n)
                counts.add(run_id, a, b, c, n=n)
            elif part == "button":
                counts.add(run_id, "", UNATTRIBUTED, "button", c, n=-n)
                counts.add(run_id, a, b, "button", c, n=n)
            elif part == "sent_hour":
                counts.hours[(run_id, at.astimezone(UTC), "sent")] += n
            elif part == "run":
                runs[run_id] = {
                    "run_id": run_id,
                    "campaign_id": a,
                    "test": bool(n),
                    "audience": 0,
                    "start_time": at,
                    "last_sent_time": None,
                }
            elif part == "last_sent":
                last_sent[run_id] = at
            elif part == "variant":
                variants.append(
                    {"site_id": site_id, "run_id": run_id, "variant": a, "first_time": at}
                )
            elif part == "control":
                counts.add(run_id, "", "", "control_converted", n=n)
        for run_id, at in last_sent.items():
            runs[run_id]["last_sent_time"] = at
        await self._upsert_runs(session, site_id, list(runs.values()), audience=False)
        if variants:
            statement = self._insert(ReportVariant).values(
                sorted(variants, key=lambda v: (v["run_id"], v["variant"]))
            )
            statement = statement.on_conflict_do_update(
                index_elements=[ReportVariant.site_id, ReportVariant.run_id, ReportVariant.variant],
                set_={
                    "first_time": case(
                        (
                            statement.excluded.first_time < ReportVariant.first_time,
                            statement.excluded.first_time,
                        ),
                        else_=ReportVariant.first_time,
                    )
                },
            )
            await session.execute(statement)
        await self._apply_counts(session, site_id, counts)

    def _one_of(self, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
        """`column IN values` as one parameter (a batch names up to 10,000 subscribers:
        binding each was most of the cost of counting it)."""
        if self._postgres:
            return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
        rows = select(literal_column("value")).select_from(
            func.json_each(json.dumps(list(values)))
        )
        return column.in_(rows.scalar_subquery())

    async def _lock_recipients(
        self, session: AsyncSession, keys: Sequence[int], *, shared: bool
    ) -> None:
        """Takes these advisory locks (`_lock_keys`: the buckets of (run, subscriber)
        pairs), in key order, for the transaction (PostgreSQL; SQLite has one writer)."""
        if not self._postgres:
            return
        if not keys:
            return
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(
            text(
                f"SELECT count({function}(k)) FROM "
                "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
            ),
            {"keys": keys},
        )

    async def _upsert_runs(
        self,
        session: AsyncSession,
        site_id: str,
        runs: Sequence[dict[str, Any]],
        *,
        audience: bool,
    ) -> None:
        """Creates or widens the runs' rows: a test flag sticks, the start is the
        earliest seen, the last sent time the latest; `audience` replaces the audience."""
        if not runs:
            return
        rows = [{"site_id": site_id, **run} for run in sorted(runs, key=lambda r: r["run_id"])]
        statement = self._insert(ReportRun).values(rows)
        excluded = statement.excluded
        updates: dict[str, Any] = {
            "test": or_(ReportRun.test, excluded.test),
            "start_time": case(
                (excluded.start_time < ReportRun.start_time, excluded.start_time),
                else_=ReportRun.start_time,
            ),
            "last_sent_time": case(
                (
                    or_(
                        ReportRun.last_sent_time.is_(None),
                        excluded.last_sent_time > ReportRun.last_sent_time,
                    ),
                    excluded.last_sent_time,
                ),
                else_=ReportRun.last_sent_time,
            ),
        }
        if audience:
            updates["audience"] = excluded.audience
            updates["campaign_id"] = excluded.campaign_id
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[ReportRun.site_id, ReportRun.run_id], set_=updates
            )
        )

    async def _apply_counts(self, session: AsyncSession, site_id: str, counts: _Counts) -> None:
        """Adds the increments to the counter and hour rows: one upsert per table, rows in
        key order, `n = n + excluded.n`."""
        counters = [
            {
                "site_id": site_id,
                "run_id": run_id,
                "variant": variant,
                "browser": browser,
                "metric": metric,
                "key": key,
                "n": int(n),
                "amount": float(amount),
            }
            for (run_id, variant, browser, metric, key), (n, amount) in sorted(
                counts.counters.items()
            )
            if n or amount
        ]
        for start in range(0, len(counters), 1000):
            statement = self._insert(ReportCounter).values(counters[start : start + 1000])
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[
                        ReportCounter.site_id,
                        ReportCounter.run_id,
                        ReportCounter.variant,
                        ReportCounter.browser,
                        ReportCounter.metric,
                        ReportCounter.key,
                    ],
                    set_={
                        "n": ReportCounter.n + statement.excluded.n,
                        "amount": ReportCounter.amount + statement.excluded.amount,
                    },
                )
            )
        hours = [
            {"site_id": site_id, "run_id": run_id, "hour": hour, "metric": metric, "n": n}
            for (run_id, hour, metric), n in sorted(counts.hours.items())
            if n
        ]
        for start in range(0, len(hours), 1000):
            statement = self._insert(ReportHour).values(hours[start : start + 1000])
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[
                        ReportHour.site_id,
                        ReportHour.run_id,
                        ReportHour.hour,
                        ReportHour.metric,
                    ],
                    set_={"n": ReportHour.n + statement.excluded.n},
                )
            )

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
        self, site_id: str, records: Sequence[EngagementRecord], now: datetime
    ) -> tuple[int, int]:
        """Stores new engagement events in one transaction, with a webhook message for
        each new one per endpoint of the site taking its type (active or paused),
        due `now`; returns how many events were new and how many messages were queued."""
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
        by_key = {}
        for r in records:
            by_key.setdefault((r.run_id, r.subscriber_id, r.kind.value, r.button), r)
        async with self._sessions.begin() as session:
            if self._postgres:
                await self._lock_recipients(
                    session,
                    _lock_keys(
                        site_id, [r.run_id for r in records], [r.subscriber_id for r in records]
                    ),
                    shared=False,
                )
            endpoints = (
                await session.execute(
                    select(
                        WebhookEndpoint.endpoint_id,
                        WebhookEndpoint.takes_view,
                        WebhookEndpoint.takes_click,
                        WebhookEndpoint.takes_close,
                    ).where(
                        WebhookEndpoint.site_id == site_id,
                        WebhookEndpoint.state.in_(_QUEUED_FOR),
                    )
                )
            ).all()
            inserted = await self._events.run_returning(session, site_id, rows)
            await self._count_engagement(session, site_id, [by_key[key] for key in inserted])
            if not endpoints:
                return len(inserted), 0
            taking: dict[WebhookEventType, list[str]] = {
                event_type: [
                    e.endpoint_id
                    for e in endpoints
                    if (e.takes_view, e.takes_click, e.takes_close)[n]
                ]
                for n, event_type in enumerate(
                    (WebhookEventType.VIEW, WebhookEventType.CLICK, WebhookEventType.CLOSE)
                )
            }
            messages = []
            for run_id, subscriber_id, kind, button in inserted:
                record = by_key[(run_id, subscriber_id, kind, button)]
                event_type = WEBHOOK_EVENT_OF_KIND[record.kind]
                for endpoint_id in taking[event_type]:
                    messages.append(
                        {
                            "message_id": new_id("msg"),
                            "site_id": site_id,
                            "endpoint_id": endpoint_id,
                            "event_type": event_type,
                            "run_id": run_id,
                            "campaign_id": record.campaign_id,
                            "subscriber_id": subscriber_id,
                            "button": button,
                            "occur_time": record.occur_time,
                            "create_time": now,
                            "state": WebhookMessageState.PENDING,
                            "due_time": now,
                            "attempts": 0,
                            "last_failure": "",
                        }
                    )
            if messages:
                await session.execute(insert(WebhookMessage), messages)
            return len(inserted), len(messages)

    async def _count_engagement(
        self, session: AsyncSession, site_id: str, records: Sequence[EngagementRecord]
    ) -> None:
        """Counts newly stored engagement: distinct recipients per kind, clicks per
        button, per hour; under the outcome's browser and variant, or UNATTRIBUTED
        while there is none."""
        if not records:
            return
        run_ids = sorted({r.run_id for r in records})
        subscribers = sorted({r.subscriber_id for r in records})
        new_rows: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for r in records:
            new_rows[(r.run_id, r.subscriber_id, r.kind.value)] += 1
        stored = await session.execute(
            select(
                EngagementEvent.run_id,
                EngagementEvent.subscriber_id,
                EngagementEvent.kind,
                func.count(),
            )
            .where(
                EngagementEvent.site_id == site_id,
                EngagementEvent.run_id.in_(run_ids),
                self._one_of(EngagementEvent.subscriber_id, subscribers),
            )
            .group_by(EngagementEvent.run_id, EngagementEvent.subscriber_id, EngagementEvent.kind)
        )
        # A recipient is new to a kind when all its rows of that kind are this batch's.
        first_of_kind = {
            (run_id, sub, EngagementKind(kind).value)
            for run_id, sub, kind, total in stored
            if new_rows.get((run_id, sub, EngagementKind(kind).value)) == total
        }
        dims = {
            (run_id, sub): (variant, browser)
            for run_id, sub, variant, browser in await session.execute(
                select(
                    DeliveryOutcome.run_id,
                    DeliveryOutcome.subscriber_id,
                    DeliveryOutcome.variant,
                    DeliveryOutcome.browser,
                ).where(
                    DeliveryOutcome.site_id == site_id,
                    DeliveryOutcome.run_id.in_(run_ids),
                    self._one_of(DeliveryOutcome.subscriber_id, subscribers),
                )
            )
        }
        counts = _Counts()
        for r in records:
            variant, browser = dims.get((r.run_id, r.subscriber_id), ("", UNATTRIBUTED))
            key = (r.run_id, r.subscriber_id, r.kind.value)
            if key in first_of_kind:
                first_of_kind.discard(key)
                counts.add(r.run_id, variant, browser, r.kind.value)
            if r.kind is EngagementKind.CLICKED:
                counts.add(r.run_id, variant, browser, "button", r.button)
            if r.kind is not EngagementKind.CLOSED:
                counts.hour(r.run_id, r.occur_time, r.kind.value)
        await self._apply_counts(session, site_id, counts)

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
        """A campaign's totals over its runs but test sends: sums of its runs' counters
        (two statements)."""
        runs = (ReportRun.site_id == site_id) & (ReportRun.campaign_id == campaign_id) & (
            ~ReportRun.test
        )
        run_ids = select(ReportRun.run_id).where(runs)
        async with self._sessions() as session:
            count, audience, last_sent, has_goal = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(ReportRun.audience), 0),
                        func.max(ReportRun.last_sent_time),
                        exists()
                        .where(RunGoal.site_id == site_id, RunGoal.run_id.in_(run_ids))
                        .correlate(None),
                    ).where(runs)
                )
            ).one()
            rows = await self._breakdown_rows(session, site_id, run_ids, summed=True)
        return ReportTotals(
            campaign_id=campaign_id,
            runs=int(count),
            audience=int(audience),
            last_sent_time=last_sent,
            has_goal=bool(has_goal),
            **rows,
        )

    async def _breakdown_rows(
        self, session: AsyncSession, site_id: str, run_ids: Any, *, summed: bool
    ) -> dict[str, Any]:
        """The counters, hours and variants of these runs (summed over them when
        `summed`), in one UNION ALL statement: a report is two round trips."""
        no_time = type_coerce(null(), UTCDateTime())

        def total(column: Any) -> Any:
            return func.sum(column) if summed else column

        counter_rows = select(
            literal("c").label("part"),
            ReportCounter.variant,
            ReportCounter.browser,
            ReportCounter.metric,
            ReportCounter.key,
            total(ReportCounter.n).label("n"),
            total(ReportCounter.amount).label("amount"),
            no_time.label("at"),
        ).where(ReportCounter.site_id == site_id, ReportCounter.run_id.in_(run_ids))
        hour_rows = select(
            ReportHour.hour.label("at"),
            ReportHour.metric,
            total(ReportHour.n).label("n"),
        ).where(ReportHour.site_id == site_id, ReportHour.run_id.in_(run_ids))
        variant_rows = select(
            ReportVariant.variant,
            (func.min(ReportVariant.first_time) if summed else ReportVariant.first_time).label(
                "at"
            ),
        ).where(ReportVariant.site_id == site_id, ReportVariant.run_id.in_(run_ids))
        if summed:
            counter_rows = counter_rows.group_by(
                ReportCounter.variant,
                ReportCounter.browser,
                ReportCounter.metric,
                ReportCounter.key,
            )
            hour_rows = hour_rows.group_by(ReportHour.hour, ReportHour.metric)
            variant_rows = variant_rows.group_by(ReportVariant.variant)
        latest_hours = hour_rows.order_by(ReportHour.hour.desc()).limit(
            MAX_TIMELINE_HOURS * len(_HOUR_METRICS)
        ).subquery()
        variants = variant_rows.subquery()
        statement = union_all(
            counter_rows,
            select(
                literal("h"), literal(""), literal(""), latest_hours.c.metric, literal(""),
                latest_hours.c.n, literal(0.0), latest_hours.c.at,
            ),
            select(
                literal("v"), variants.c.variant, literal(""), literal(""), literal(""),
                literal(0), literal(0.0), variants.c.at,
            ),
        )  # fmt: skip
        counters: list[CounterRow] = []
        hours: list[tuple[datetime, str, int]] = []
        firsts: list[tuple[datetime, str]] = []
        for part, variant, browser, metric, key, n, amount, at in await session.execute(statement):
            if part == "c":
                counters.append(CounterRow(variant, browser, metric, key, int(n), float(amount)))
            elif part == "h":
                hours.append((at, metric, int(n)))
            else:
                firsts.append((at, variant))
        return {
            "counters": counters,
            "hours": sorted(hours),
            "variants": [variant for _, variant in sorted(firsts)],
        }

    async def run_totals(self, site_id: str, run_id: str) -> ReportTotals | None:
        """One run's totals, a test send's too; None when the run is not recorded."""
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(
                        ReportRun,
                        exists()
                        .where(RunGoal.site_id == site_id, RunGoal.run_id == run_id)
                        .correlate(None),
                    ).where(ReportRun.site_id == site_id, ReportRun.run_id == run_id)
                )
            ).first()
            if found is None:
                return None
            return await self._run_totals(session, found[0], bool(found[1]))

    async def _run_totals(
        self, session: AsyncSession, run: ReportRun, has_goal: bool
    ) -> ReportTotals:
        rows = await self._breakdown_rows(session, run.site_id, [run.run_id], summed=False)
        return ReportTotals(
            campaign_id=run.campaign_id,
            runs=1,
            audience=run.audience,
            last_sent_time=run.last_sent_time,
            has_goal=has_goal,
            test=run.test,
            run_id=run.run_id,
            start_time=run.start_time,
            **rows,
        )

    async def run_totals_page(
        self,
        site_id: str,
        campaign_id: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        include_test: bool,
    ) -> list[ReportTotals]:
        """A campaign's runs' totals, newest run (start) first, after the position
        (start time, run id) a previous page ended on."""
        where = [ReportRun.site_id == site_id, ReportRun.campaign_id == campaign_id]
        if not include_test:
            where.append(~ReportRun.test)
        if after is not None:
            start, run_id = after
            where.append(
                or_(
                    ReportRun.start_time < start,
                    and_(ReportRun.start_time == start, ReportRun.run_id < run_id),
                )
            )
        has_goal = (
            exists()
            .where(RunGoal.site_id == ReportRun.site_id, RunGoal.run_id == ReportRun.run_id)
            .correlate(ReportRun)
        )
        async with self._sessions() as session:
            runs = (
                await session.execute(
                    select(ReportRun, has_goal)
                    .where(*where)
                    .order_by(ReportRun.start_time.desc(), ReportRun.run_id.desc())
                    .limit(limit)
                )
            ).all()
            return [await self._run_totals(session, run, bool(goal)) for run, goal in runs]

    async def recipient_activity(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientActivityRecord | None:
        """What was recorded of (run, subscriber); None when nothing was."""
        async with self._sessions() as session:
            outcome = (
                await session.execute(
                    select(DeliveryOutcome).where(
                        DeliveryOutcome.site_id == site_id,
                        DeliveryOutcome.run_id == run_id,
                        DeliveryOutcome.subscriber_id == subscriber_id,
                    )
                )
            ).scalar_one_or_none()
            events = (
                await session.execute(
                    select(EngagementEvent.kind, EngagementEvent.occur_time, EngagementEvent.button)
                    .where(
                        EngagementEvent.site_id == site_id,
                        EngagementEvent.run_id == run_id,
                        EngagementEvent.subscriber_id == subscriber_id,
                    )
                    .order_by(EngagementEvent.occur_time, EngagementEvent.button)
                )
            ).all()
            count, revenue, first_conversion = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(Conversion.revenue), 0.0),
                        func.min(Conversion.occur_time),
                    ).where(
                        Conversion.site_id == site_id,
                        Conversion.run_id == run_id,
                        Conversion.subscriber_id == subscriber_id,
                    )
                )
            ).one()
        if outcome is None and not events and not count:
            return None
        first: dict[EngagementKind, tuple[datetime, str]] = {}
        for kind, occur_time, button in events:
            first.setdefault(EngagementKind(kind), (occur_time, button))
        record = None
        if outcome is not None:
            record = OutcomeRecord(
                run_id=outcome.run_id,
                campaign_id=outcome.campaign_id,
                subscriber_id=outcome.subscriber_id,
                status=outcome.status,
                reason=outcome.reason,
                browser=outcome.browser,
                occur_time=outcome.occur_time,
                test=outcome.test,
                variant=outcome.variant,
                profile_id=outcome.profile_id,
            )
        return RecipientActivityRecord(
            outcome=record,
            first=first,
            conversions=int(count),
            revenue=float(revenue),
            first_conversion_time=first_conversion,
        )

    async def recount(self, site_id: str, run_id: str) -> tuple[list[CounterRow], list[tuple]]:
        """The run's counters and hours recounted from its stored rows, as the migration's
        backfill counts them (for checks: reports never call this)."""
        async with self._sessions() as session:
            outcomes = (
                await session.execute(
                    select(DeliveryOutcome).where(
                        DeliveryOutcome.site_id == site_id, DeliveryOutcome.run_id == run_id
                    )
                )
            ).scalars().all()
            events = (
                await session.execute(
                    select(EngagementEvent).where(
                        EngagementEvent.site_id == site_id, EngagementEvent.run_id == run_id
                    )
                )
            ).scalars().all()
            conversions = (
                await session.execute(
                    select(Conversion).where(
                        Conversion.site_id == site_id, Conversion.run_id == run_id
                    )
                )
            ).scalars().all()
            controls = {
                profile_id
                for profile_id in (
                    await session.execute(
                        select(ControlConversion.profile_id).where(
                            ControlConversion.site_id == site_id,
                            ControlConversion.run_id == run_id,
                        )
                    )
                ).scalars()
            }
            unsubscribed = (
                await session.execute(
                    select(func.count()).where(
                        UnsubscribeCredit.site_id == site_id, UnsubscribeCredit.run_id == run_id
                    )
                )
            ).scalar_one()
        counts = _Counts()
        if unsubscribed:
            counts.add(run_id, "", "", "unsubscribed", n=int(unsubscribed))
        by_subscriber = {o.subscriber_id: o for o in outcomes}
        for o in outcomes:
            counts.add(run_id, o.variant, o.browser, o.status.value, o.reason)
            if o.status is DeliveryStatus.SENT:
                counts.hour(run_id, o.occur_time, "sent")
            held_out = o.status is DeliveryStatus.SUPPRESSED and o.reason == CONTROL_GROUP_REASON
            if held_out and o.profile_id in controls:
                counts.add(run_id, "", "", "control_converted")
        pairs = set()
        for e in events:
            o = by_subscriber.get(e.subscriber_id)
            dims = (o.variant, o.browser) if o is not None else ("", UNATTRIBUTED)
            if (e.subscriber_id, e.kind) not in pairs:
                pairs.add((e.subscriber_id, e.kind))
                counts.add(run_id, *dims, e.kind.value)
            if e.kind is EngagementKind.CLICKED:
                counts.add(run_id, *dims, "button", e.button)
            if e.kind is not EngagementKind.CLOSED:
                counts.hour(run_id, e.occur_time, e.kind.value)
        converted = set()
        for c in conversions:
            counts.add(run_id, c.variant, "", "conversions", amount=c.revenue)
            counts.hour(run_id, c.occur_time, "converted")
            if c.subscriber_id not in converted:
                converted.add(c.subscriber_id)
                counts.add(run_id, c.variant, "", "converted")
        return (
            sorted(
                CounterRow(v, b, m, k, int(n), float(a))
                for (_, v, b, m, k), (n, a) in counts.counters.items()
                if n or a
            ),
            sorted((hour, metric, n) for (_, hour, metric), n in counts.hours.items() if n),
        )

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
        still_open = or_(
            FeedCursor.event_name == UNSUBSCRIBE_CURSOR,
            exists().where(
                RunGoal.site_id == FeedCursor.site_id,
                RunGoal.event_name == FeedCursor.event_name,
                RunGoal.open_until >= since,
            ),
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
                    delete(FeedCursor).where(*_at_cursor(site_id, event_name, cursor), ~still_open)
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
                delete(FeedCursor).where(*_at_cursor(site_id, event_name, cursor))
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
            if not await _move_cursor(session, site_id, event_name, cursor_from, cursor_to, now):
                return False
            counts = _Counts()
            if conversions:
                new_ids = {
                    event_id
                    for (event_id,) in await self._insert_new(
                        session, Conversion, site_id, conversions, [Conversion.event_id]
                    )
                }
                # Each new event once (a page naming an event twice stores it once).
                new: dict[str, ConversionRecord] = {}
                for c in conversions:
                    if c.event_id in new_ids:
                        new.setdefault(c.event_id, c)
                await self._count_conversions(session, site_id, list(new.values()), counts)
            if controls:
                new_controls = await self._insert_new(
                    session,
                    ControlConversion,
                    site_id,
                    controls,
                    [ControlConversion.run_id, ControlConversion.profile_id],
                )
                if new_controls:
                    # In recipients: every held-out subscriber of the profile in the run.
                    held_out = await session.execute(
                        select(DeliveryOutcome.run_id, func.count())
                        .where(
                            DeliveryOutcome.site_id == site_id,
                            tuple_(DeliveryOutcome.run_id, DeliveryOutcome.profile_id).in_(
                                [tuple(row) for row in new_controls]
                            ),
                            DeliveryOutcome.status == DeliveryStatus.SUPPRESSED,
                            DeliveryOutcome.reason == CONTROL_GROUP_REASON,
                        )
                        .group_by(DeliveryOutcome.run_id)
                    )
                    for run_id, n in held_out:
                        counts.add(run_id, "", "", "control_converted", n=int(n))
            await self._apply_counts(session, site_id, counts)
        return True

    async def _insert_new(
        self,
        session: AsyncSession,
        model: Any,
        site_id: str,
        records: Sequence[Any],
        keys: Sequence[Any],
    ) -> list[tuple[Any, ...]]:
        """Stores the records (dataclasses) as the site's rows of `model`, but none whose
        key (site_id and `keys`) is stored already; returns the `keys` of those stored."""
        rows = await session.execute(
            self._insert(model)
            .values([{"site_id": site_id, **asdict(record)} for record in records])
            .on_conflict_do_nothing(index_elements=[model.site_id, *keys])
            .returning(*keys)
        )
        return [tuple(row) for row in rows]

    async def _count_conversions(
        self,
        session: AsyncSession,
        site_id: str,
        conversions: Sequence[ConversionRecord],
        counts: _Counts,
    ) -> None:
        """Counts newly stored conversions: events and revenue per variant, per hour, and
        the recipients whose first conversion this is."""
        if not conversions:
            return
        new_per_pair: defaultdict[tuple[str, str], int] = defaultdict(int)
        for c in conversions:
            counts.add(c.run_id, c.variant, "", "conversions", amount=c.revenue)
            counts.hour(c.run_id, c.occur_time, "converted")
            new_per_pair[(c.run_id, c.subscriber_id)] += 1
        stored = await session.execute(
            select(Conversion.run_id, Conversion.subscriber_id, func.count())
            .where(
                Conversion.site_id == site_id,
                tuple_(Conversion.run_id, Conversion.subscriber_id).in_(sorted(new_per_pair)),
            )
            .group_by(Conversion.run_id, Conversion.subscriber_id)
        )
        firsts = {
            (run_id, sub) for run_id, sub, total in stored if new_per_pair[(run_id, sub)] == total
        }
        for c in conversions:
            if (c.run_id, c.subscriber_id) in firsts:
                firsts.discard((c.run_id, c.subscriber_id))
                counts.add(c.run_id, c.variant, "", "converted")

    # Unsubscribes after a push.

    async def sites_sending_since(self, since: datetime) -> list[str]:
        """Sites with a push (not a test send's) sent at `since` or later."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ReportRun.site_id)
                .where(ReportRun.last_sent_time >= since, ~ReportRun.test)
                .distinct()
            )
            return sorted(rows.scalars())

    async def drop_unsubscribe_cursors(self, since: datetime) -> int:
        """Forgets the unsubscribe cursors of sites that sent nothing since `since`: when
        one sends again, its unsubscribes are read from then on."""
        sending = select(ReportRun.site_id).where(
            ReportRun.last_sent_time >= since, ~ReportRun.test
        )
        async with self._sessions.begin() as session:
            stale = (
                await session.execute(
                    select(FeedCursor.site_id, FeedCursor.cursor).where(
                        FeedCursor.event_name == UNSUBSCRIBE_CURSOR,
                        FeedCursor.site_id.not_in(sending),
                    )
                )
            ).all()
            for site_id, cursor in stale:
                await session.execute(
                    delete(FeedCursor).where(*_at_cursor(site_id, UNSUBSCRIBE_CURSOR, cursor))
                )
            return len(stale)

    async def pushes_before(
        self,
        site_id: str,
        subscriber_ids: Sequence[str],
        earliest: datetime,
        latest: datetime,
    ) -> list[tuple[str, str, datetime]]:
        """(run, subscriber, sent time) of these subscribers' pushes (not test sends')
        sent between `earliest` and `latest`: through the runs that sent then, so the
        outcomes are read by their key."""
        if not subscriber_ids:
            return []
        async with self._sessions() as session:
            run_ids = list(
                (
                    await session.execute(
                        select(ReportRun.run_id).where(
                            ReportRun.site_id == site_id,
                            ReportRun.last_sent_time >= earliest,
                            ReportRun.start_time <= latest,
                            ~ReportRun.test,
                        )
                    )
                ).scalars()
            )
            if not run_ids:
                return []
            rows = await session.execute(
                select(
                    DeliveryOutcome.run_id,
                    DeliveryOutcome.subscriber_id,
                    DeliveryOutcome.occur_time,
                ).where(
                    DeliveryOutcome.site_id == site_id,
                    DeliveryOutcome.run_id.in_(run_ids),
                    DeliveryOutcome.subscriber_id.in_(sorted(set(subscriber_ids))),
                    DeliveryOutcome.status == DeliveryStatus.SENT,
                    DeliveryOutcome.occur_time >= earliest,
                    DeliveryOutcome.occur_time <= latest,
                )
            )
            return [(run_id, sub, at) for run_id, sub, at in rows]

    async def apply_unsubscribe_page(
        self,
        site_id: str,
        cursor_from: str,
        cursor_to: str,
        credits: Sequence[UnsubscribeRecord],
        now: datetime,
    ) -> bool:
        """Moves the site's unsubscribe cursor and stores what the page credited, in one
        transaction; False (nothing stored) when another replica moved it first. An
        event credited before is not counted again."""
        async with self._sessions.begin() as session:
            if not await _move_cursor(
                session, site_id, UNSUBSCRIBE_CURSOR, cursor_from, cursor_to, now
            ):
                return False
            if not credits:
                return True
            new_ids = {
                event_id
                for (event_id,) in await self._insert_new(
                    session, UnsubscribeCredit, site_id, credits, [UnsubscribeCredit.event_id]
                )
            }
            counts = _Counts()
            first = {}
            for credit in credits:
                first.setdefault(credit.event_id, credit)
            for credit in first.values():
                if credit.event_id in new_ids:
                    counts.add(credit.run_id, "", "", "unsubscribed")
            await self._apply_counts(session, site_id, counts)
        return True

    # Webhooks.

    def _locked(self, statement: Any, **options: Any) -> Any:
        """`statement` locking the rows it reads (PostgreSQL; SQLite has one writer)."""
        return statement.with_for_update(**options) if self._postgres else statement

    async def insert_webhook_endpoint(self, site_id: str, new: NewEndpoint) -> EndpointRecord:
        """Stores the endpoint; with a request_id already used in the site, stores nothing
        and returns the endpoint that one created (a concurrent repeat too)."""
        statement = (
            self._insert(WebhookEndpoint)
            .values(
                site_id=site_id,
                endpoint_id=new.endpoint_id,
                url=new.url,
                takes_view=WebhookEventType.VIEW in new.event_types,
                takes_click=WebhookEventType.CLICK in new.event_types,
                takes_close=WebhookEventType.CLOSE in new.event_types,
                active=True,
                state=WebhookEndpointState.ACTIVE,
                state_reason="",
                secret=new.secret,
                request_id=new.request_id,
                request_fingerprint=new.request_fingerprint,
                create_time=new.now,
                update_time=new.now,
                consecutive_failures=0,
                dead_streak=0,
                last_failure="",
            )
            .on_conflict_do_nothing()
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)
            condition = (
                WebhookEndpoint.request_id == new.request_id
                if new.request_id
                else WebhookEndpoint.endpoint_id == new.endpoint_id
            )
            row = (
                await session.execute(
                    select(WebhookEndpoint).where(WebhookEndpoint.site_id == site_id, condition)
                )
            ).scalar_one()
            return (await self._endpoint_records(session, site_id, [row]))[0]

    async def webhook_endpoint_by_request(
        self, site_id: str, request_id: str
    ) -> EndpointRecord | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.site_id == site_id,
                        WebhookEndpoint.request_id == request_id,
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            return (await self._endpoint_records(session, site_id, [row]))[0]

    async def webhook_endpoint(self, site_id: str, endpoint_id: str) -> EndpointRecord | None:
        async with self._sessions() as session:
            row = await self._endpoint_row(session, site_id, endpoint_id)
            if row is None:
                return None
            return (await self._endpoint_records(session, site_id, [row]))[0]

    async def webhook_endpoints(
        self, site_id: str, after: str, limit: int
    ) -> list[EndpointRecord]:
        """The site's endpoints by id (ids sort by creation), after `after`."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(WebhookEndpoint)
                    .where(WebhookEndpoint.site_id == site_id, WebhookEndpoint.endpoint_id > after)
                    .order_by(WebhookEndpoint.endpoint_id)
                    .limit(limit)
                )
            ).scalars()
            return await self._endpoint_records(session, site_id, list(rows))

    async def update_webhook_endpoint(
        self,
        site_id: str,
        endpoint_id: str,
        changes: dict[str, Any],
        now: datetime,
    ) -> EndpointRecord | None:
        """Applies `changes` (url, event_types, active). `active` true on an endpoint
        Clarion paused or disabled (or the site switched off) resumes it: its state is
        active again, its reason and dead-letter streak cleared, and its queued
        messages due at once (oldest first); `active` false switches it off."""
        async with self._sessions.begin() as session:
            row = await self._endpoint_row(session, site_id, endpoint_id, lock=True)
            if row is None:
                return None
            values: dict[str, Any] = {"update_time": now}
            if "url" in changes:
                values["url"] = changes["url"]
            if "event_types" in changes:
                types = changes["event_types"]
                values["takes_view"] = WebhookEventType.VIEW in types
                values["takes_click"] = WebhookEventType.CLICK in types
                values["takes_close"] = WebhookEventType.CLOSE in types
            if "active" in changes:
                values["active"] = changes["active"]
                if not changes["active"]:
                    values["state"] = WebhookEndpointState.INACTIVE
                    values["state_reason"] = ""
                elif row.state is not WebhookEndpointState.ACTIVE:
                    values.update(
                        state=WebhookEndpointState.ACTIVE,
                        state_reason="",
                        dead_streak=0,
                    )
                    await session.execute(
                        update(WebhookMessage)
                        .where(
                            WebhookMessage.site_id == site_id,
                            WebhookMessage.endpoint_id == endpoint_id,
                            WebhookMessage.state == WebhookMessageState.PENDING,
                            WebhookMessage.due_time > now,
                            # A message a dispatcher holds stays with it.
                            WebhookMessage.claim_token.is_(None),
                        )
                        .values(due_time=now)
                    )
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.site_id == site_id,
                    WebhookEndpoint.endpoint_id == endpoint_id,
                )
                .values(**values)
            )
            row = await self._endpoint_row(session, site_id, endpoint_id)
            assert row is not None
            await session.refresh(row)
            return (await self._endpoint_records(session, site_id, [row]))[0]

    async def delete_webhook_endpoint(self, site_id: str, endpoint_id: str) -> bool:
        """Deletes the endpoint with its queue and dead letters; False when unknown."""
        async with self._sessions.begin() as session:
            row = await self._endpoint_row(session, site_id, endpoint_id, lock=True)
            if row is None:
                return False
            await session.execute(
                delete(WebhookMessage).where(
                    WebhookMessage.site_id == site_id, WebhookMessage.endpoint_id == endpoint_id
                )
            )
            await session.execute(
                delete(WebhookEndpoint).where(
                    WebhookEndpoint.site_id == site_id,
                    WebhookEndpoint.endpoint_id == endpoint_id,
                )
            )
            return True

    async def rotate_webhook_secret(
        self,
        site_id: str,
        endpoint_id: str,
        secret: str,
        previous_expire_time: datetime | None,
        now: datetime,
    ) -> EndpointRecord | None:
        """Makes `secret` the endpoint's; the one it replaces keeps signing until
        `previous_expire_time` (None: dropped at once). An older previous one is dropped."""
        async with self._sessions.begin() as session:
            row = await self._endpoint_row(session, site_id, endpoint_id, lock=True)
            if row is None:
                return None
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.site_id == site_id,
                    WebhookEndpoint.endpoint_id == endpoint_id,
                )
                .values(
                    secret=secret,
                    previous_secret=row.secret if previous_expire_time is not None else None,
                    previous_secret_expire_time=previous_expire_time,
                    update_time=now,
                )
            )
            await session.refresh(row)
            return (await self._endpoint_records(session, site_id, [row]))[0]

    async def webhook_dead_letters(
        self,
        site_id: str,
        endpoint_id: str | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[DeadLetterRecord]:
        """Dead letters newest first (dead time, then message id), after `before`."""
        conditions = [
            WebhookMessage.site_id == site_id,
            WebhookMessage.state == WebhookMessageState.DEAD,
        ]
        if endpoint_id is not None:
            conditions.append(WebhookMessage.endpoint_id == endpoint_id)
        if before is not None:
            dead_time, message_id = before
            conditions.append(
                or_(
                    WebhookMessage.dead_time < dead_time,
                    and_(
                        WebhookMessage.dead_time == dead_time,
                        WebhookMessage.message_id < message_id,
                    ),
                )
            )
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(WebhookMessage)
                    .where(*conditions)
                    .order_by(WebhookMessage.dead_time.desc(), WebhookMessage.message_id.desc())
                    .limit(limit)
                )
            ).scalars()
            return [
                DeadLetterRecord(
                    message_id=row.message_id,
                    endpoint_id=row.endpoint_id,
                    event_type=row.event_type,
                    payload=row.payload or "",
                    attempts=row.attempts,
                    last_failure=row.last_failure,
                    first_attempt_time=row.first_attempt_time,
                    dead_time=row.dead_time or row.create_time,
                )
                for row in rows
            ]

    async def replay_webhook_dead_letters(
        self, site_id: str, endpoint_id: str, message_ids: Sequence[str] | None, now: datetime
    ) -> int | None:
        """Queues the endpoint's dead letters (these, or all) again, due now, with a
        fresh schedule of attempts; returns how many, None when the endpoint is unknown.
        They keep their message id and body."""
        async with self._sessions.begin() as session:
            row = await self._endpoint_row(session, site_id, endpoint_id, lock=True)
            if row is None:
                return None
            statement = update(WebhookMessage).where(
                WebhookMessage.site_id == site_id,
                WebhookMessage.endpoint_id == endpoint_id,
                WebhookMessage.state == WebhookMessageState.DEAD,
            )
            if message_ids is not None:
                statement = statement.where(WebhookMessage.message_id.in_(sorted(set(message_ids))))
            result = await session.execute(
                statement.values(
                    state=WebhookMessageState.PENDING,
                    due_time=now,
                    claim_token=None,
                    attempts=0,
                    dead_time=None,
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def _endpoint_row(
        self, session: AsyncSession, site_id: str, endpoint_id: str, *, lock: bool = False
    ) -> WebhookEndpoint | None:
        statement = select(WebhookEndpoint).where(
            WebhookEndpoint.site_id == site_id, WebhookEndpoint.endpoint_id == endpoint_id
        )
        if lock:
            statement = self._locked(statement)
        return cast(
            WebhookEndpoint | None, (await session.execute(statement)).scalar_one_or_none()
        )

    async def _endpoint_records(
        self, session: AsyncSession, site_id: str, rows: Sequence[WebhookEndpoint]
    ) -> list[EndpointRecord]:
        """The rows as records, with their backlogs (one query for all)."""
        if not rows:
            return []
        backlogs = dict(
            (
                await session.execute(
                    select(WebhookMessage.endpoint_id, func.count())
                    .where(
                        WebhookMessage.site_id == site_id,
                        WebhookMessage.endpoint_id.in_([row.endpoint_id for row in rows]),
                        WebhookMessage.state == WebhookMessageState.PENDING,
                    )
                    .group_by(WebhookMessage.endpoint_id)
                )
            ).all()
        )
        return [
            EndpointRecord(
                endpoint_id=row.endpoint_id,
                url=row.url,
                event_types=frozenset(
                    event_type
                    for event_type, takes in (
                        (WebhookEventType.VIEW, row.takes_view),
                        (WebhookEventType.CLICK, row.takes_click),
                        (WebhookEventType.CLOSE, row.takes_close),
                    )
                    if takes
                ),
                active=row.active,
                state=row.state,
                state_reason=row.state_reason,
                create_time=row.create_time,
                update_time=row.update_time,
                consecutive_failures=row.consecutive_failures,
                last_success_time=row.last_success_time,
                last_failure_time=row.last_failure_time,
                last_failure=row.last_failure,
                previous_secret_expire_time=row.previous_secret_expire_time,
                backlog=int(backlogs.get(row.endpoint_id, 0)),
                request_fingerprint=row.request_fingerprint,
            )
            for row in rows
        ]

    async def claim_webhook_messages(
        self, now: datetime, lease: timedelta, limit: int
    ) -> list[ClaimedMessage]:
        """Claims up to `limit` due messages of active endpoints, oldest due first: their
        due time moves to the lease's end (so nobody else claims them meanwhile, and a
        claimer that dies leaves them due again then), their attempts count the one
        about to be made, and they carry a new claim token."""
        candidates = (
            select(WebhookMessage.message_id)
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.site_id == WebhookMessage.site_id)
                & (WebhookEndpoint.endpoint_id == WebhookMessage.endpoint_id),
            )
            .where(
                WebhookMessage.state == WebhookMessageState.PENDING,
                WebhookMessage.due_time <= now,
                WebhookEndpoint.state == WebhookEndpointState.ACTIVE,
            )
            .order_by(WebhookMessage.due_time, WebhookMessage.message_id)
            .limit(limit)
        )
        candidates = self._locked(candidates, skip_locked=True, of=WebhookMessage)
        token = uuid.uuid4().hex
        async with self._sessions.begin() as session:
            ids = list((await session.execute(candidates)).scalars())
            if not ids:
                return []
            claimed = list(
                (
                    await session.execute(
                        update(WebhookMessage)
                        .where(
                            WebhookMessage.message_id.in_(ids),
                            WebhookMessage.state == WebhookMessageState.PENDING,
                            WebhookMessage.due_time <= now,
                        )
                        .values(
                            due_time=now + lease,
                            claim_token=token,
                            attempts=WebhookMessage.attempts + 1,
                            first_attempt_time=func.coalesce(
                                WebhookMessage.first_attempt_time, now
                            ),
                        )
                        .returning(WebhookMessage.message_id)
                    )
                ).scalars()
            )
            if not claimed:
                return []
            rows = (
                await session.execute(
                    select(WebhookMessage, WebhookEndpoint, RunDescription, DeliveryOutcome.variant)
                    .join(
                        WebhookEndpoint,
                        (WebhookEndpoint.site_id == WebhookMessage.site_id)
                        & (WebhookEndpoint.endpoint_id == WebhookMessage.endpoint_id),
                    )
                    .outerjoin(
                        RunDescription,
                        (RunDescription.site_id == WebhookMessage.site_id)
                        & (RunDescription.run_id == WebhookMessage.run_id),
                    )
                    .outerjoin(
                        DeliveryOutcome,
                        (DeliveryOutcome.site_id == WebhookMessage.site_id)
                        & (DeliveryOutcome.run_id == WebhookMessage.run_id)
                        & (DeliveryOutcome.subscriber_id == WebhookMessage.subscriber_id),
                    )
                    .where(WebhookMessage.message_id.in_(claimed))
                    .order_by(WebhookMessage.due_time, WebhookMessage.message_id)
                )
            ).all()
            return [
                ClaimedMessage(
                    message_id=message.message_id,
                    site_id=message.site_id,
                    endpoint_id=message.endpoint_id,
                    claim_token=token,
                    attempts=message.attempts,
                    event_type=message.event_type,
                    run_id=message.run_id,
                    campaign_id=message.campaign_id,
                    subscriber_id=message.subscriber_id,
                    button=message.button,
                    payload=message.payload,
                    url=endpoint.url,
                    secret=endpoint.secret,
                    previous_secret=endpoint.previous_secret,
                    previous_secret_expire_time=endpoint.previous_secret_expire_time,
                    description=None if description is None else _description(description),
                    variant=variant or "",
                )
                for message, endpoint, description, variant in rows
            ]

    async def settle_webhook_attempts(
        self,
        results: Sequence[AttemptResult],
        now: datetime,
        *,
        pause_after_dead_letters: int,
        pause_reason: Callable[[int, str, datetime], str],
    ) -> list[tuple[str, str]]:
        """Records what the attempts of one claim came to, in one transaction: a
        delivered message is deleted; a failed one is due again at its `next_due`, or
        dead; a GONE one is dead and its endpoint disabled with its whole queue
        dead-lettered. Only messages still held under the result's claim token are
        touched. Each endpoint's counters move by what its results add (reset by a
        delivery), relative to the stored values, so settles running side by side add
        up; one whose dead-letter streak reaches `pause_after_dead_letters` is paused,
        with `pause_reason(streak, last failure, now)` as its reason. Returns the
        (site, endpoint) pairs this paused."""
        if not results:
            return []
        keys = sorted({(r.message.site_id, r.message.endpoint_id) for r in results})
        tallies: dict[tuple[str, str], _Tally] = {}
        async with self._sessions.begin() as session:
            # Endpoints first, in key order: the lock order every writer keeps.
            known = {
                (site_id, endpoint_id)
                for site_id, endpoint_id in (
                    await session.execute(
                        self._locked(
                            select(WebhookEndpoint.site_id, WebhookEndpoint.endpoint_id)
                            .where(
                                tuple_(WebhookEndpoint.site_id, WebhookEndpoint.endpoint_id).in_(
                                    keys
                                )
                            )
                            .order_by(WebhookEndpoint.site_id, WebhookEndpoint.endpoint_id)
                        )
                    )
                )
            }
            for result in results:
                message = result.message
                key = (message.site_id, message.endpoint_id)
                if key not in known:  # deleted meanwhile, with its messages
                    continue
                held = (
                    WebhookMessage.message_id == message.message_id,
                    WebhookMessage.claim_token == message.claim_token,
                    WebhookMessage.state == WebhookMessageState.PENDING,
                )
                tally = tallies.setdefault(key, _Tally())
                if result.outcome is AttemptOutcome.DELIVERED:
                    done = await session.execute(delete(WebhookMessage).where(*held))
                    if done.rowcount == 1:  # type: ignore[attr-defined]
                        tally.delivered(result.attempt_time)
                    continue
                dead = result.outcome is AttemptOutcome.GONE or result.next_due is None
                settled = await session.execute(
                    update(WebhookMessage)
                    .where(*held)
                    .values(
                        payload=result.payload,
                        last_failure=result.failure,
                        claim_token=None,
                        **(
                            {"state": WebhookMessageState.DEAD, "dead_time": now}
                            if dead
                            else {"due_time": result.next_due}
                        ),
                    )
                )
                if settled.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                tally.failed(result, dead)
                if result.outcome is AttemptOutcome.GONE:
                    await session.execute(
                        update(WebhookMessage)
                        .where(
                            WebhookMessage.site_id == message.site_id,
                            WebhookMessage.endpoint_id == message.endpoint_id,
                            WebhookMessage.state == WebhookMessageState.PENDING,
                        )
                        .values(
                            state=WebhookMessageState.DEAD,
                            dead_time=now,
                            claim_token=None,
                            last_failure=f"not sent: {result.state_reason}",
                        )
                    )
            paused: list[tuple[str, str]] = []
            for key, tally in sorted(tallies.items()):
                streak = await self._apply_tally(session, key, tally)
                if (
                    streak is not None
                    and tally.dead
                    and tally.gone_reason is None
                    and streak >= pause_after_dead_letters
                ):
                    site_id, endpoint_id = key
                    moved = await session.execute(
                        update(WebhookEndpoint)
                        .where(
                            WebhookEndpoint.site_id == site_id,
                            WebhookEndpoint.endpoint_id == endpoint_id,
                            WebhookEndpoint.state == WebhookEndpointState.ACTIVE,
                        )
                        .values(
                            state=WebhookEndpointState.PAUSED,
                            state_reason=pause_reason(streak, tally.last_failure, now),
                        )
                    )
                    if moved.rowcount == 1:  # type: ignore[attr-defined]
                        paused.append(key)
            return paused

    async def _apply_tally(
        self, session: AsyncSession, key: tuple[str, str], tally: _Tally
    ) -> int | None:
        """Moves the endpoint's counters by `tally`; returns its dead-letter streak."""
        values: dict[str, Any] = {}
        if tally.reset:
            values.update(
                consecutive_failures=tally.failures,
                dead_streak=tally.dead,
                last_success_time=tally.last_success_time,
            )
        else:
            values.update(
                consecutive_failures=WebhookEndpoint.consecutive_failures + tally.failures,
                dead_streak=WebhookEndpoint.dead_streak + tally.dead,
            )
        if tally.last_failure_time is not None:
            values.update(
                last_failure=tally.last_failure, last_failure_time=tally.last_failure_time
            )
        if tally.gone_reason is not None:
            values.update(state=WebhookEndpointState.DISABLED, state_reason=tally.gone_reason)
        site_id, endpoint_id = key
        return cast(
            int | None,
            (
                await session.execute(
                    update(WebhookEndpoint)
                    .where(
                        WebhookEndpoint.site_id == site_id,
                        WebhookEndpoint.endpoint_id == endpoint_id,
                    )
                    .values(**values)
                    .returning(WebhookEndpoint.dead_streak)
                )
            ).scalar_one_or_none(),
        )

    # Metrics.

    async def webhook_backlog(self, now: datetime) -> tuple[int, datetime | None, int]:
        """For the webhook gauges: messages pending (waiting or being attempted), the
        earliest due time of one due by `now` (None: none waiting), and dead letters;
        each read from the (state, due_time) index."""
        pending = WebhookMessage.state == WebhookMessageState.PENDING
        async with self._sessions() as session:
            waiting = (
                await session.execute(
                    select(func.count()).select_from(WebhookMessage).where(pending)
                )
            ).scalar_one()
            oldest = (
                await session.execute(
                    select(func.min(WebhookMessage.due_time)).where(
                        pending, WebhookMessage.due_time <= now
                    )
                )
            ).scalar_one_or_none()
            dead = (
                await session.execute(
                    select(func.count())
                    .select_from(WebhookMessage)
                    .where(WebhookMessage.state == WebhookMessageState.DEAD)
                )
            ).scalar_one()
        return int(waiting), oldest, int(dead)


@dataclass
class _Tally:
    """What one settle's results do to an endpoint's counters, in order: a delivery
    resets them (`reset`), failures after it count on."""

    reset: bool = False
    failures: int = 0
    dead: int = 0
    last_success_time: datetime | None = None
    last_failure_time: datetime | None = None
    last_failure: str = ""
    gone_reason: str | None = None

    def delivered(self, at: datetime) -> None:
        self.reset, self.failures, self.dead = True, 0, 0
        self.last_success_time = at

    def failed(self, result: AttemptResult, dead: bool) -> None:
        self.failures += 1
        if dead and result.outcome is not AttemptOutcome.GONE:
            self.dead += 1
        self.last_failure_time = result.attempt_time
        self.last_failure = result.failure
        if result.outcome is AttemptOutcome.GONE:
            self.gone_reason = result.state_reason
