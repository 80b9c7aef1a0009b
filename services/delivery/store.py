"""Persistence for delivery: the only module that speaks SQL.

Three kinds of work are claimed under leases: a run's preparation (pulling its audience),
a chunk of recipients (sending), and outbox rows (telling peers). Claims bump a fence
number; every later write of that work names the fence it holds and is refused once
another process has taken the work over. PostgreSQL claims with `FOR UPDATE SKIP
LOCKED`; SQLite has one writer, so the same single UPDATE .. RETURNING is atomic there.

The hot path (queueing recipients, reading a chunk, recording each commit's outcomes)
runs as fixed SQL text straight on the DBAPI cursor (`_HotSql`): statements the
driver prepares once (SQLite's statement cache, psycopg's prepared statements), id
lists as one parameter, rows as plain tuples, recipients queued by COPY on
PostgreSQL. SQLAlchemy's per-statement work (compiling, expanding IN lists, result
wrapping) cost more than the database itself there. The rest uses Core statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery import policy_store
from services.delivery.models import (
    MAX_ATTEMPT_HISTORY,
    MAX_HOLD_DETAIL_LENGTH,
    ChunkState,
    DeliveryChunkRow,
    DeliveryOutboxRow,
    DeliveryPushServiceHoldRow,
    DeliveryRecipientRow,
    DeliveryRunContextRow,
    DeliveryRunRow,
    DeliveryRunVariantRow,
    OutboxKind,
    RecipientState,
    RunFailure,
    RunState,
    TargetKind,
)
from services.kit.db import create_sync_engine_for
from services.kit.logging import get_logger
from services.kit.metrics import count_outcome, count_outcomes
from services.kit.records import dict_init

log = get_logger(__name__)

T = TypeVar("T")
# Threads running delivery's transactions: the senders, the preparer and the outbox.
DB_THREADS = 6

RUNS = DeliveryRunRow.__table__
CHUNKS = DeliveryChunkRow.__table__
RECIPIENTS = DeliveryRecipientRow.__table__
OUTBOX = DeliveryOutboxRow.__table__
CONTEXTS = DeliveryRunContextRow.__table__
VARIANTS = DeliveryRunVariantRow.__table__
HOLDS = DeliveryPushServiceHoldRow.__table__
# The reason a recipient waits with while its push service holds its site's sends
# (services.delivery.domain.rules.Reason.PUSH_SERVICE_AUTH): only held ones have it
# while pending (a refusal is never retried otherwise).
HELD_REASON = "push_service_auth"
# How a hold names APNs (legacy Safari; services.delivery.domain.apns): its recipients
# are those with an APNs target.
APNS_HOLD_SERVICE = "https://api.push.apple.com"
# Held recipients a probe is picked from (the first whose endpoint is at the origin).
PROBE_CANDIDATES = 20


@dataclass(frozen=True)
class StoredVariant:
    """One A/B variant of a run as delivery_run_variants keeps it."""

    variant_id: str
    weight_percent: int
    payload: bytes = field(repr=False)
    # domain/content.py's JSON of its options ("": its payload as it is).
    content_options: str = ""


@dataclass(frozen=True)
class NewRun:
    site_id: str
    run_id: str
    campaign_id: str
    payload: bytes = field(repr=False)
    ttl_seconds: int
    urgency: str
    audience_filter: tuple[str, ...]
    # A serialized clarion.segment.v1.AudienceSelector; b"": every reachable subscriber.
    selector: bytes = field(default=b"", repr=False)
    # A listed audience's profile ids (with audience_filter's subscriber ids).
    audience_profiles: tuple[str, ...] = ()
    # When recipients are due (domain/timing.py's JSON; "": all at once), and the
    # cut-off it names.
    timing: str = ""
    cut_off_time: datetime | None = None
    # How the payload is made per recipient (domain/content.py's JSON; "": as it is).
    content_options: str = ""
    # The RunPolicy's JSON (server.run_policy_json; "": none).
    policy: str = ""
    # A test send (StartDeliveryRunRequest.test).
    test: bool = False
    # (person key, event properties JSON) of each listed person's template context.
    contexts: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # An A/B test's variants, in the request's order; (): none.
    variants: tuple[StoredVariant, ...] = field(default=(), repr=False)
    # RunAudience.sample as [start, end) basis points; None: the whole audience.
    sample: tuple[int, int] | None = None
    # domain/goals.py's JSON of the conversion goal ("": none).
    conversion_goal: str = ""
    # domain/descriptions.py's JSON of the run's description ("": none).
    description: str = ""


@dataclass(frozen=True)
class Run:
    site_id: str
    run_id: str
    campaign_id: str
    payload: bytes = field(repr=False)
    ttl_seconds: int
    urgency: str
    audience_filter: tuple[str, ...]
    snapshot_time: datetime
    state: RunState
    failure: RunFailure | None
    failure_message: str
    resolved: int
    queued: int
    create_time: datetime
    prepare_time: datetime | None
    finish_time: datetime | None
    selector: bytes = field(default=b"", repr=False)
    audience_profiles: tuple[str, ...] = ()
    timing: str = ""
    content_options: str = field(default="", repr=False)
    policy: str = ""
    sample: tuple[int, int] | None = None
    conversion_goal: str = ""
    description: str = ""


@dataclass(frozen=True)
class RunCounts:
    pending: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    expired: int = 0


@dataclass(frozen=True)
class FinishedRun:
    """A run that just got its finish time: what the "run finished" line says."""

    site_id: str
    run_id: str
    campaign_id: str
    state: RunState
    failure: str
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    seconds: float

    def log(self) -> None:
        """One line per run, written by the transaction that finished it (after commit)."""
        log.info(
            "run finished",
            site_id=self.site_id,
            run_id=self.run_id,
            campaign_id=self.campaign_id,
            state=self.state.value,
            failure=self.failure or None,
            audience=self.audience,
            sent=self.sent,
            failed=self.failed,
            suppressed=self.suppressed,
            expired=self.expired,
            seconds=round(self.seconds, 3),
        )


@dict_init
@dataclass(frozen=True)
class Member:
    """One audience member as segment gave it, ready to queue."""

    subscriber_id: str
    profile_id: str
    timezone: str
    browser: int
    target_kind: TargetKind
    endpoint: str
    p256dh: bytes
    auth: bytes
    # Unsubscribed after the snapshot: recorded as suppressed, never sent.
    unsubscribed: bool = False
    # The site's VAPID key to sign with (campaign's vk_ id); "": its current key.
    vapid_key_id: str = ""
    # The profile properties the run asked for, those its profile has (plain JSON values).
    profile_properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparationLease:
    site_id: str
    run_id: str
    campaign_id: str
    owner: str
    fence: int
    snapshot_time: datetime
    audience_filter: tuple[str, ...]
    page_token: str
    unavailable_since: datetime | None
    # The run's audience selector (serialized; b"" for none), asked for on every page.
    selector: bytes = field(default=b"", repr=False)
    # A listed audience's profile ids (audience_filter has its subscriber ids).
    audience_profiles: tuple[str, ...] = ()
    # When recipients are due (domain/timing.py's JSON; "": all at once).
    timing: str = ""
    # domain/content.py's JSON ("": the payload as it is): the profile properties to ask for.
    content_options: str = ""
    # domain/policies.py's JSON ("": none): the control group and quiet hours planned
    # into each recipient's due time.
    policy: str = ""
    # RunAudience.sample as [start, end) basis points; None: the whole audience.
    sample: tuple[int, int] | None = None


@dataclass(frozen=True)
class ClaimedChunk:
    chunk_id: int
    site_id: str
    run_id: str
    owner: str
    fence: int


@dict_init
@dataclass(frozen=True)
class PendingRecipient:
    recipient_id: int
    subscriber_id: str
    browser: int
    target_kind: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    attempts: int
    # The site's VAPID key to sign with; "": its current key.
    vapid_key_id: str = ""
    # What its templates read (domain/content.py's context JSON; "": nothing).
    context: str = ""
    # Whose push it is and their time zone, for the policies (caps count per person on
    # their local days; quiet hours are local).
    profile_id: str = ""
    timezone: str = ""
    # Its A/B variant; "": the run has none.
    variant: str = ""
    # When its retry (or deferred send) is due; None: due now (its first attempt).
    not_before: datetime | None = None
    # Why its last attempt is retried ("": none yet); push_service_auth: it is held.
    reason: str = ""


@dataclass(frozen=True)
class Hold:
    """A push service holding a site's sends: it refused the site's VAPID signature."""

    site_id: str
    push_service: str
    http_status: int
    detail: str
    credentials_fingerprint: str
    since: datetime
    next_probe_time: datetime
    probe_seconds: int
    # The recipient sent as the probe now (0: none): the only one sent while held.
    probe_recipient_id: int = 0


def _hold(row: Any) -> Hold:
    return Hold(
        site_id=row.site_id,
        push_service=row.push_service,
        http_status=row.http_status,
        detail=row.detail,
        credentials_fingerprint=row.credentials_fingerprint,
        since=_aware(row.since),
        next_probe_time=_aware(row.next_probe_time),
        probe_seconds=row.probe_seconds,
        probe_recipient_id=row.probe_recipient_id,
    )


@dataclass(frozen=True)
class Admission:
    """What the policies let through of a chunk's sends now (DeliveryStore.admit_sends)."""

    admitted: list[int]
    # Refused by the frequency cap: they end suppressed frequency_cap.
    capped: set[int]
    # Over this minute's throttle: due again at the next minute.
    deferred: list[int]


@dict_init
@dataclass(frozen=True)
class Terminal:
    """A recipient's final state, with what reporting needs to hear of it."""

    recipient_id: int
    subscriber_id: str
    browser: int
    state: RecipientState
    reason: str
    # The push service said the subscription is gone: unsubscribe it in segment.
    unsubscribe: bool = False
    # Passed on to reporting with the outcome.
    variant: str = ""
    profile_id: str = ""
    # The attempt that ended it, appended to its attempt_log (attempt_entry); "": none
    # (it ended without a request: expired, suppressed, refused before sending).
    attempt: str = ""


@dataclass(frozen=True)
class Retry:
    recipient_id: int
    reason: str
    not_before: datetime
    # The attempt to be retried, appended to its attempt_log; "": none (deferred
    # before any request was made).
    attempt: str = ""
    # Held: the push service whose hold it waits on ("": not held). Recorded due now
    # instead when that hold is gone by the commit (record_progress).
    held_at: str = ""


def attempt_entry(at: datetime, status: int, reason: str, host: str) -> str:
    """One attempt as delivery_recipients.attempt_log keeps it: "<epoch ms> <HTTP status,
    0: no answer> <DeliveryReason word, -: accepted> <push service host>;"."""
    return f"{int(at.timestamp() * 1000)} {status} {reason or '-'} {host};"


@dataclass(frozen=True)
class Attempt:
    """One request made to a recipient's push service (RecipientOutcome.attempt_history)."""

    attempt_time: datetime
    # 0: no answer (timeout, connection error).
    http_status: int
    # A DeliveryReason word; "": accepted.
    reason: str
    push_service: str


def parse_attempt_log(log_text: str) -> tuple[Attempt, ...]:
    """The attempts of an attempt_log, oldest first (at most the last MAX_ATTEMPT_HISTORY)."""
    attempts = []
    for entry in log_text.split(";")[:-1][-MAX_ATTEMPT_HISTORY:]:
        millis, status, reason, host = entry.split(" ", 3)
        attempts.append(
            Attempt(
                datetime.fromtimestamp(int(millis) / 1000, UTC),
                int(status),
                "" if reason == "-" else reason,
                host,
            )
        )
    return tuple(attempts)


class Entry(NamedTuple):
    """One recipient in an outbox row."""

    subscriber_id: str
    state: str
    reason: str
    browser: int
    variant: str = ""
    profile_id: str = ""


@dict_init
@dataclass(frozen=True)
class OutboxItem:
    """One thing a peer has to hear: a recipient's outcome or unsubscribe, or a run's
    audience; the items of one outbox row share its outbox_id."""

    outbox_id: int
    kind: OutboxKind
    site_id: str
    run_id: str
    campaign_id: str
    occur_time: datetime
    count: int = 0
    subscriber_id: str = ""
    state: str = ""
    reason: str = ""
    browser: int = 0
    # Of a test send's run: reporting keeps it out of its counts.
    test: bool = False
    # An outcome's A/B variant and its subscriber's profile ("": none).
    variant: str = ""
    profile_id: str = ""
    # An audience's (or a start's) run's conversion goal (domain/goals.py's JSON; "":
    # none) and description (domain/descriptions.py's JSON; "": none).
    conversion_goal: str = ""
    description: str = ""


@dataclass(frozen=True)
class RecipientView:
    subscriber_id: str
    state: RecipientState
    reason: str
    attempts: int
    variant: str
    due_time: datetime | None
    not_before: datetime | None
    finish_time: datetime | None
    # Every request made to its push service, oldest first (the last 20).
    attempt_history: tuple[Attempt, ...] = ()
    # When it was queued; None for a recipient queued before this was kept.
    queue_time: datetime | None = None


def _run(row: Any) -> Run:
    return Run(
        site_id=row.site_id,
        run_id=row.run_id,
        campaign_id=row.campaign_id,
        payload=bytes(row.payload),
        ttl_seconds=row.ttl_seconds,
        urgency=row.urgency,
        audience_filter=_listed(row.audience_filter),
        snapshot_time=row.snapshot_time,
        state=RunState(row.state),
        failure=RunFailure(row.failure) if row.failure else None,
        failure_message=row.failure_message,
        resolved=row.resolved,
        queued=row.queued,
        create_time=row.create_time,
        prepare_time=row.prepare_time,
        finish_time=row.finish_time,
        selector=bytes(row.audience_selector or b""),
        audience_profiles=_listed(row.audience_profiles),
        timing=row.timing,
        content_options=row.content_options,
        policy=row.policy,
        sample=_sample(row),
        conversion_goal=row.conversion_goal,
        description=row.description,
    )


def _sample(row: Any) -> tuple[int, int] | None:
    if row.sample_start is None or row.sample_end is None:
        return None
    return int(row.sample_start), int(row.sample_end)


def _listed(stored: str) -> tuple[str, ...]:
    """A listed audience's ids as the run row keeps them (newline-separated; no id holds
    a line break: runs.py checks them)."""
    return tuple(stored.split("\n")) if stored else ()


def _aware(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives it back naive)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _lease_free(column: Any, now: datetime) -> Any:
    return or_(column.is_(None), column < now)


_TERMINAL_STATES = ("sent", "failed", "suppressed", "expired")
# The DeliveryReason word of a recipient a cancel ended (services.delivery.domain.rules).
CANCELLED_REASON = "cancelled"
# ... and one the run's cut-off ended.
CUT_OFF_REASON = "cut_off"


# Recipient columns in the order `_HotSql.insert_recipients` takes them.
_RECIPIENT_COLUMNS = (
    "site_id", "run_id", "chunk_id", "subscriber_id", "profile_id", "timezone", "variant",
    "due_time", "browser", "target_kind", "endpoint", "p256dh", "auth", "state", "reason",
    "attempts", "not_before", "finish_time", "vapid_key_id", "context",
)  # fmt: skip
_OUTBOX_COLUMNS = (
    "kind", "site_id", "run_id", "campaign_id", "entries", "count", "occur_time",
    "claim_owner", "claim_expires_at",
)  # fmt: skip


class _HotSql:
    """The hot path's SQL as fixed text for one dialect, run on the DBAPI cursor.

    `{p}` is a parameter, `{ids}` membership in a list of recipient ids passed as one
    text parameter (a JSON array on SQLite, an array literal on PostgreSQL), as are
    lists of subscriber ids (JSON), so each text is the same on every call and the
    driver prepares it once; no per-element work in the driver.
    """

    def __init__(self, postgres: bool, dialect: Any) -> None:
        self.postgres = postgres
        p = "%s" if postgres else "?"
        ids = "= ANY(%s::bigint[])" if postgres else "IN (SELECT value FROM json_each(?))"
        # Timestamps are written as SQLAlchemy writes them (SQLite keeps text).
        time_type = RECIPIENTS.c.finish_time.type.dialect_impl(dialect)
        self.time = time_type.bind_processor(dialect) or (lambda value: value)
        self.read_time = time_type.result_processor(dialect, None) or (lambda value: value)

        def sql(text: str) -> str:
            return text.format(p=p, ids=ids)

        # PostgreSQL: a commit locks its chunk's row before its recipients' rows, the
        # order a cancel takes them in (run, chunks, recipients), so neither ever waits
        # on the other while holding what the other waits for. SQLite has one writer.
        # It also turns sequential scans off for the rest of the commit's transaction:
        # on a table without statistics yet (a run's first minutes) the planner guessed a
        # handful of pending recipients and hash-joined the commit's answers against a
        # scan of all of them, per commit (5 s of PostgreSQL per 100,000 messages, growing
        # with the run); by primary key each answer is one index lookup.
        self.lock_chunk = (
            "SELECT chunk_id, set_config('enable_seqscan', 'off', true) FROM delivery_chunks "
            "WHERE chunk_id = %s AND fence = %s AND state = 'pending' FOR UPDATE"
            if postgres
            else None
        )
        self.hold_chunk = sql(
            "UPDATE delivery_chunks SET lease_expires_at = {p}, in_flight = {p}, "
            "pending = pending - {p}, "
            "sent = sent + {p}, failed = failed + {p}, suppressed = suppressed + {p}, "
            "expired = expired + {p} "
            "WHERE chunk_id = {p} AND fence = {p} AND state = 'pending'"
        )
        # Each name looked up in the unique index on its own (LATERAL .. LIMIT 1): with
        # fresh tables and no statistics, PostgreSQL's generic plan for "= ANY(...)" or
        # a join read the whole run per page instead, making queueing quadratic.
        self.already_queued = (
            "SELECT n.name FROM json_array_elements_text(%s::json) AS n(name) "
            "CROSS JOIN LATERAL (SELECT 1 FROM delivery_recipients AS r "
            "WHERE r.site_id = %s AND r.run_id = %s AND r.subscriber_id = n.name LIMIT 1) AS found"
            if postgres
            else "SELECT subscriber_id FROM delivery_recipients WHERE subscriber_id IN "
            "(SELECT value FROM json_each(?)) AND site_id = ? AND run_id = ?"
        )
        # The attempt that answered is appended to the recipient's attempt_log by the
        # statement recording its outcome, so the history costs no statement of its
        # own; once it holds MAX_ATTEMPT_HISTORY entries the oldest goes.
        first_end = "strpos({log}, ';')" if postgres else "instr({log}, ';')"

        def appended(log: str, entry: str) -> str:
            return (
                f"CASE WHEN {entry} <> '' AND length({log}) - length(replace({log}, ';', '')) "
                f">= {MAX_ATTEMPT_HISTORY} THEN substr({log}, {first_end.format(log=log)} + 1) "
                f"ELSE {log} END || {entry}"
            )

        # A commit's outcomes as one JSON parameter, a row per recipient: [recipient_id,
        # attempt entry, attempts to add (1: the answer to a request counted in flight),
        # state, reason, its outbox entry, 1 if its subscriber is gone]. jsonb on
        # PostgreSQL: it parses the text once, where json re-reads an element's text
        # for each of its seven fields (8 µs of PostgreSQL per answer).
        rows = (
            "(SELECT (e->>0)::bigint AS id, e->>1 AS entry, (e->>2)::int AS inc, "
            "e->>3 AS state, e->>4 AS reason, e->5 AS item, (e->>6)::int AS gone "
            "FROM jsonb_array_elements(%(outcomes)s::jsonb) AS e)"
            if postgres
            else "(SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS entry, "
            "json_extract(value, '$[2]') AS inc, json_extract(value, '$[3]') AS state, "
            "json_extract(value, '$[4]') AS reason FROM json_each(?))"
        )
        now = "%(now)s" if postgres else "?"
        # Only a recipient still pending gets an outcome (never overwritten); RETURNING
        # says which did. The answer's attempt is added by the same statement.
        self.record_terminal = (
            "UPDATE delivery_recipients SET state = v.state, reason = v.reason, "
            f"finish_time = {now}, not_before = NULL, "
            "attempts = delivery_recipients.attempts + v.inc, "
            f"attempt_log = {appended('delivery_recipients.attempt_log', 'v.entry')} "
            f"FROM {rows} AS v WHERE delivery_recipients.recipient_id = v.id "
            "AND delivery_recipients.state = 'pending' "
            "RETURNING delivery_recipients.recipient_id AS id"
        )
        # The site's holds as the commit finds them, locked against a lift until the
        # commit ends (PostgreSQL; SQLite's one writer runs one transaction at a time).
        self.holds_of_site = sql(
            "SELECT push_service FROM delivery_push_service_holds WHERE site_id = {p}"
            + (" FOR SHARE" if postgres else "")
        )
        self.record_retry = sql(
            "UPDATE delivery_recipients SET reason = {p}, not_before = {p}, "
            "attempts = attempts + {p}, "
            f"attempt_log = {appended('attempt_log', '{p}')} "
            "WHERE recipient_id = {p} AND state = 'pending'"
        )
        # PostgreSQL: a commit's outcomes, their outbox rows (the outcomes for reporting,
        # the gone subscribers for segment) and the chunk's fenced lease renewal with its
        # per-state counts are one statement; it answers whether the fence held and
        # which recipients got their outcome.
        outbox_values = (
            "SELECT '{kind}', %(site_id)s, %(run_id)s, %(campaign_id)s, json_agg(v.item)::text, "
            "0, %(now)s, NULL, NULL FROM v JOIN done ON done.id = v.id {where} "
            "HAVING count(*) > 0"
        )
        outbox = f"INSERT INTO delivery_outbox ({', '.join(_OUTBOX_COLUMNS)}) "

        def counted(state: str) -> str:
            return f"(SELECT count(*) FROM done WHERE done.state = '{state}')"

        self.commit_outcomes = (
            f"WITH v AS {rows}, "
            f"done AS ({self.record_terminal.replace(f'FROM {rows} AS v', 'FROM v')}, "
            "delivery_recipients.state AS state), "
            f"outcomes AS ({outbox}"
            f"{outbox_values.format(kind=OutboxKind.OUTCOME.value, where='')}), "
            f"gone AS ({outbox}"
            + outbox_values.format(kind=OutboxKind.UNSUBSCRIBE.value, where="WHERE v.gone = 1")
            + "), "
            "held AS (UPDATE delivery_chunks SET lease_expires_at = %(lease)s, "
            "in_flight = %(in_flight)s, pending = pending - (SELECT count(*) FROM done), "
            + ", ".join(f"{state} = {state} + {counted(state)}" for state in _TERMINAL_STATES)
            + " WHERE chunk_id = %(chunk_id)s AND fence = %(fence)s AND state = 'pending' "
            "RETURNING 1) "
            "SELECT (SELECT count(*) FROM held), ARRAY(SELECT id FROM done)"
            if postgres
            else None
        )
        self.insert_outbox = sql(
            f"INSERT INTO delivery_outbox ({', '.join(_OUTBOX_COLUMNS)}) "
            f"VALUES ({', '.join(['{p}'] * len(_OUTBOX_COLUMNS))})"
        )
        self.due_recipients = sql(
            "SELECT recipient_id, subscriber_id, browser, target_kind, endpoint, p256dh, auth, "
            "attempts, vapid_key_id, context, profile_id, timezone, variant, not_before, reason "
            "FROM delivery_recipients "
            "WHERE chunk_id = {p} AND state = 'pending' AND (not_before IS NULL OR not_before <= {p}) "
            "ORDER BY recipient_id"
        )
        columns = ", ".join(_RECIPIENT_COLUMNS)
        self.copy_recipients = f"COPY delivery_recipients ({columns}) FROM STDIN"
        self.insert_recipients = sql(
            f"INSERT INTO delivery_recipients ({columns}) "
            f"VALUES ({', '.join(['{p}'] * len(_RECIPIENT_COLUMNS))})"
        )

    def ids(self, ids: Sequence[int]) -> str:
        if self.postgres:
            return "{" + ",".join(map(str, ids)) + "}"
        return json.dumps(list(ids))

    def pipelined(self, raw: Any) -> Any:
        """psycopg's pipeline mode on PostgreSQL (yields the pipeline); nothing on SQLite."""
        return raw.pipeline() if self.postgres else contextlib.nullcontext()

    @staticmethod
    def names(names: Sequence[str]) -> str:
        return json.dumps(list(names))

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """The DBAPI cursor of `conn`, inside its transaction."""
        return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def outbox_row(
        self,
        kind: OutboxKind,
        site_id: str,
        run_id: str,
        campaign_id: str,
        entries: Sequence[Entry],
        now: datetime,
    ) -> tuple[Any, ...]:
        listed = json.dumps([list(e) for e in entries], separators=(",", ":"))
        return (kind.value, site_id, run_id, campaign_id, listed, 0, self.time(now), None, None)

    def add_outbox(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        self.cursor(conn).executemany(self.insert_outbox, rows)

    def add_recipients(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        cursor = self.cursor(conn)
        if self.postgres:
            with cursor.copy(self.copy_recipients) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(self.insert_recipients, rows)


def _unless_lifted(
    raw: Any, holds_of_site: str, site_id: str, retries: Sequence[Retry], now: datetime
) -> list[Retry]:
    """`retries` with each held one whose hold is gone due now. A lift (another sender,
    another process) makes the held recipients it finds due, but not one whose retry is
    still being committed, which would otherwise wait HELD_WAIT_SECONDS. First in the
    commit: the holds are locked before the chunk and the recipients, as a lift locks
    them (lift_holds), so the two cannot wait on each other."""
    cursor = raw.cursor()
    cursor.execute(holds_of_site, (site_id,))
    holding = {row[0] for row in cursor.fetchall()}
    return [
        replace(r, not_before=now) if r.held_at and r.held_at not in holding else r
        for r in retries
    ]


def _in_db_thread(method: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def run(self: DeliveryStore, *args: Any, **kwargs: Any) -> T:
        call = functools.partial(method, self, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    return run


class DeliveryStore:
    """Runs its SQL on a synchronous engine in a small thread pool of its own: a whole
    transaction is one hop off the event loop (the database driver releases the GIL
    while it works), where an async driver pays a hop per statement."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite has one writer: more threads would only wait on its lock (its busy
        # handler sleeps), so there one thread runs every transaction, in turn.
        threads = DB_THREADS if self._postgres else 1
        self._sync = create_sync_engine_for(
            engine.url.render_as_string(hide_password=False), connections=threads
        )
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="delivery-db")
        self._hot = _HotSql(self._postgres, self._sync.dialect)
        # (chunk_id, fence) -> the recipients of the chunk's in-flight list as this
        # store last wrote it (record_progress); only the fence's holder writes it.
        self._in_flight: dict[tuple[int, int], frozenset[int]] = {}

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._sync.dispose()

    def _skip_locked(self, statement: Any) -> Any:
        return statement.with_for_update(skip_locked=True) if self._postgres else statement

    def _for_update(self, statement: Any) -> Any:
        """`statement` locking the rows it reads, waiting for them (PostgreSQL)."""
        return statement.with_for_update() if self._postgres else statement

    # Runs.

    @_in_db_thread
    def create_run(self, run: NewRun, now: datetime) -> tuple[Run, bool]:
        """Inserts the run (PREPARING, snapshot taken now) unless (site, run_id) exists;
        returns the stored run and whether this call created it."""
        # One statement decides, so concurrent starts of the same run make one row
        # (a select-then-insert lets both see nothing and one fail on the key).
        dialect_insert = postgresql_insert if self._postgres else sqlite_insert
        with self._sync.begin() as conn:
            inserted = conn.execute(
                dialect_insert(RUNS)
                .values(
                    site_id=run.site_id,
                    run_id=run.run_id,
                    campaign_id=run.campaign_id,
                    payload=run.payload,
                    ttl_seconds=run.ttl_seconds,
                    urgency=run.urgency,
                    audience_filter="\n".join(run.audience_filter),
                    audience_profiles="\n".join(run.audience_profiles),
                    audience_selector=run.selector or None,
                    snapshot_time=now,
                    timing=run.timing,
                    content_options=run.content_options,
                    policy=run.policy,
                    test=run.test,
                    sample_start=run.sample[0] if run.sample else None,
                    sample_end=run.sample[1] if run.sample else None,
                    conversion_goal=run.conversion_goal,
                    description=run.description,
                    cut_off_time=run.cut_off_time,
                    state=RunState.PREPARING.value,
                    failure="",
                    failure_message="",
                    audience_page_token="",
                    resolved=0,
                    queued=0,
                    chunks=0,
                    prepare_fence=0,
                    create_time=now,
                )
                .on_conflict_do_nothing(index_elements=[RUNS.c.site_id, RUNS.c.run_id])
                .returning(RUNS.c.run_id)
            )
            created = inserted.first() is not None
            if created:
                # Reporting hears of the run before any of its outcomes (claim_outbox
                # relays nothing else of it first), so a conversion or a webhook of its
                # first recipients finds its goal and description there.
                conn.execute(
                    insert(OUTBOX).values(
                        kind=OutboxKind.START.value,
                        site_id=run.site_id,
                        run_id=run.run_id,
                        campaign_id=run.campaign_id,
                        count=0,
                        occur_time=now,
                    )
                )
            if created and run.contexts:
                # With the run, in its transaction: a retried start writes none twice.
                conn.execute(
                    insert(CONTEXTS),
                    [
                        {
                            "site_id": run.site_id,
                            "run_id": run.run_id,
                            "person_key": key,
                            "event_properties": event_properties,
                        }
                        for key, event_properties in run.contexts
                    ],
                )
            if created and run.variants:
                conn.execute(
                    insert(VARIANTS),
                    [
                        {
                            "site_id": run.site_id,
                            "run_id": run.run_id,
                            "variant_id": variant.variant_id,
                            "position": position,
                            "weight_percent": variant.weight_percent,
                            "payload": variant.payload,
                            "content_options": variant.content_options,
                        }
                        for position, variant in enumerate(run.variants)
                    ],
                )
            row = (
                conn.execute(
                    select(RUNS).where(RUNS.c.site_id == run.site_id, RUNS.c.run_id == run.run_id)
                )
            ).one()
            return _run(row), created

    async def get_run(self, site_id: str, run_id: str) -> Run | None:
        runs = await self.get_runs(site_id, [run_id])
        return runs[0] if runs else None

    @_in_db_thread
    def run_variants(self, site_id: str, run_id: str) -> list[StoredVariant]:
        """The run's A/B variants in their order; [] for a run without."""
        with self._sync.connect() as conn:
            rows = conn.execute(
                select(
                    VARIANTS.c.variant_id,
                    VARIANTS.c.weight_percent,
                    VARIANTS.c.payload,
                    VARIANTS.c.content_options,
                )
                .where(VARIANTS.c.site_id == site_id, VARIANTS.c.run_id == run_id)
                .order_by(VARIANTS.c.position)
            )
            return [
                StoredVariant(variant_id, weight, bytes(payload), options)
                for variant_id, weight, payload, options in rows
            ]

    @_in_db_thread
    def get_runs(self, site_id: str, run_ids: Sequence[str]) -> list[Run]:
        if not run_ids:
            return []
        with self._sync.connect() as conn:
            rows = conn.execute(
                select(RUNS).where(RUNS.c.site_id == site_id, RUNS.c.run_id.in_(list(run_ids)))
            )
            return [_run(row) for row in rows]

    @_in_db_thread
    def run_counts(self, site_id: str, run_ids: Sequence[str]) -> dict[str, RunCounts]:
        if not run_ids:
            return {}
        states = [state for state in RecipientState]
        statement = (
            select(
                CHUNKS.c.run_id, *(func.coalesce(func.sum(CHUNKS.c[s.value]), 0) for s in states)
            )
            .where(CHUNKS.c.site_id == site_id, CHUNKS.c.run_id.in_(list(run_ids)))
            .group_by(CHUNKS.c.run_id)
        )
        counts = {run_id: RunCounts() for run_id in run_ids}
        with self._sync.connect() as conn:
            for run_id, *sums in conn.execute(statement):
                counts[run_id] = RunCounts(
                    **{s.value: int(n) for s, n in zip(states, sums, strict=True)}
                )
        return counts

    @_in_db_thread
    def cancel_run(self, site_id: str, run_id: str, now: datetime) -> tuple[Run, int] | None:
        """Cancels the run in one transaction and returns it with the number of
        recipients this call ended; None when the site has no such run. A run that
        already has its finish time (done, failed and finished, cancelled) is returned
        unchanged, with 0.

        The run is CANCELLED with its finish time, so its preparation stops: the
        queueing transaction holds the run's row and requires it PREPARING, so a page is
        either queued before this commits (and cancelled below) or not at all. Every
        pending chunk has its fence bumped and is released DONE, so a sender holding one
        has its next write refused and stops. Every recipient still pending ends
        suppressed with reason cancelled, counted into its chunk's counters (a run's
        progress is their sum) and written to the outbox for reporting; recipients that
        already had an outcome keep it.
        """
        return self._end_run(site_id, run_id, now, RunState.CANCELLED, CANCELLED_REASON)

    @_in_db_thread
    def cut_off_due_runs(self, now: datetime, limit: int) -> list[tuple[str, str, int]]:
        """Ends up to `limit` runs whose cut-off has passed as a cancel does, but DONE
        and with reason cut_off; returns (site_id, run_id, recipients ended) of each."""
        due = (
            select(RUNS.c.site_id, RUNS.c.run_id)
            .where(RUNS.c.cut_off_time <= now, RUNS.c.finish_time.is_(None))
            .order_by(RUNS.c.cut_off_time)
            .limit(limit)
        )
        with self._sync.connect() as conn:
            runs = conn.execute(due).all()
        ended = []
        for site_id, run_id in runs:
            result = self._end_run(site_id, run_id, now, RunState.DONE, CUT_OFF_REASON)
            if result is not None:
                ended.append((site_id, run_id, result[1]))
        return ended

    def _end_run(
        self, site_id: str, run_id: str, now: datetime, end_state: RunState, reason: str
    ) -> tuple[Run, int] | None:
        """cancel_run's transaction, for any end: the run gets `end_state` and its finish
        time, and every recipient still pending ends suppressed with `reason`."""
        finished: FinishedRun | None = None
        cancelled_recipients = 0
        end_run = {
            "state": end_state.value,
            "finish_time": now,
            "cut_off_time": None,
            "prepare_owner": None,
            "prepare_lease_expires_at": None,
            "prepare_fence": RUNS.c.prepare_fence + 1,
        }
        this_run = (RUNS.c.site_id == site_id, RUNS.c.run_id == run_id)
        returned = (RUNS.c.campaign_id, RUNS.c.failure, RUNS.c.resolved)
        with self._sync.begin() as conn:
            # The run's row first (then chunks, then recipients: the order every
            # transaction that writes them keeps). Still PREPARING: no audience row was
            # written, so this one writes it with what was resolved so far.
            ended = conn.execute(
                update(RUNS)
                .where(*this_run, RUNS.c.state == RunState.PREPARING.value)
                .values(**end_run)
                .returning(*returned)
            ).first()
            preparing = ended is not None
            if ended is None:
                ended = conn.execute(
                    update(RUNS)
                    .where(
                        *this_run,
                        RUNS.c.state.in_([RunState.SENDING.value, RunState.FAILED.value]),
                        RUNS.c.finish_time.is_(None),
                    )
                    .values(**end_run)
                    .returning(*returned)
                ).first()
            if ended is not None:
                cancelled_recipients = self._cancel_recipients(
                    conn, site_id, run_id, ended.campaign_id, now, reason
                )
                if preparing:
                    self._drop_contexts(conn, site_id, run_id)
                    conn.execute(
                        insert(OUTBOX).values(
                            kind=OutboxKind.AUDIENCE.value,
                            site_id=site_id,
                            run_id=run_id,
                            campaign_id=ended.campaign_id,
                            count=ended.resolved,
                            occur_time=now,
                        )
                    )
                finished = self._finished_run(
                    conn,
                    site_id,
                    run_id,
                    end_state,
                    ended.campaign_id,
                    ended.failure,
                    ended.resolved,
                    now,
                )
            row = conn.execute(select(RUNS).where(*this_run)).first()
        count_outcome(RecipientState.SUPPRESSED.value, reason, cancelled_recipients)
        if finished is not None:
            finished.log()
        if row is None:
            return None
        return _run(row), cancelled_recipients

    def _cancel_recipients(
        self,
        conn: Connection,
        site_id: str,
        run_id: str,
        campaign_id: str,
        now: datetime,
        reason: str = "cancelled",
    ) -> int:
        """Within _end_run: takes every pending chunk of the run from its sender and
        ends its pending recipients suppressed with `reason`; returns how many."""
        chunk_ids = list(
            conn.execute(
                self._for_update(
                    select(CHUNKS.c.chunk_id)
                    .where(
                        CHUNKS.c.site_id == site_id,
                        CHUNKS.c.run_id == run_id,
                        CHUNKS.c.state == ChunkState.PENDING.value,
                    )
                    .order_by(CHUNKS.c.chunk_id)
                )
            ).scalars()
        )
        if not chunk_ids:
            return 0
        ended = conn.execute(
            update(RECIPIENTS)
            .where(
                RECIPIENTS.c.site_id == site_id,
                RECIPIENTS.c.run_id == run_id,
                RECIPIENTS.c.state == RecipientState.PENDING.value,
            )
            .values(
                state=RecipientState.SUPPRESSED.value,
                reason=reason,
                finish_time=now,
                not_before=None,
            )
            .returning(
                RECIPIENTS.c.chunk_id,
                RECIPIENTS.c.subscriber_id,
                RECIPIENTS.c.browser,
                RECIPIENTS.c.variant,
                RECIPIENTS.c.profile_id,
            )
        ).all()
        per_chunk: dict[int, list[Entry]] = {}
        for chunk_id, subscriber_id, browser, variant, profile_id in ended:
            per_chunk.setdefault(chunk_id, []).append(
                Entry(
                    subscriber_id,
                    RecipientState.SUPPRESSED.value,
                    reason,
                    browser,
                    variant,
                    profile_id,
                )
            )
        if per_chunk:
            conn.execute(
                update(CHUNKS)
                .where(CHUNKS.c.chunk_id == bindparam("b_chunk_id"))
                .values(
                    pending=CHUNKS.c.pending - bindparam("b_ended"),
                    suppressed=CHUNKS.c.suppressed + bindparam("b_ended"),
                ),
                [
                    {"b_chunk_id": chunk_id, "b_ended": len(entries)}
                    for chunk_id, entries in per_chunk.items()
                ],
            )
            # One outbox row per chunk, so no row holds more than a chunk's recipients.
            hot = self._hot
            hot.add_outbox(
                conn,
                [
                    hot.outbox_row(OutboxKind.OUTCOME, site_id, run_id, campaign_id, entries, now)
                    for entries in per_chunk.values()
                ],
            )
        # Bumping the fence takes each chunk from whoever holds it: a sender's next
        # commit matches no row, so it starts nothing more and stops.
        conn.execute(
            update(CHUNKS)
            .where(CHUNKS.c.chunk_id.in_(chunk_ids))
            .values(
                state=ChunkState.DONE.value,
                fence=CHUNKS.c.fence + 1,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return len(ended)

    def _finish_run_if_complete(
        self, conn: Connection, site_id: str, run_id: str, now: datetime
    ) -> FinishedRun | None:
        """Gives the run its finish time once no chunk of it is pending; returns what
        finished (for one log line after commit), None when the run goes on or another
        transaction finished it first."""
        # A chunk is DONE only once none of its recipients is pending. Two processes
        # releasing a run's last two chunks at once would each see the other's chunk
        # still pending (uncommitted) and neither would finish the run: so the run's
        # row is locked first, and whoever gets it second reads the other's commit
        # (READ COMMITTED takes a new snapshot per statement). SQLite has one writer.
        self._lock_run(conn, site_id, run_id)
        pending = (
            select(CHUNKS.c.chunk_id)
            .where(
                CHUNKS.c.site_id == site_id,
                CHUNKS.c.run_id == run_id,
                CHUNKS.c.state == ChunkState.PENDING.value,
            )
            .exists()
        )
        finished = conn.execute(
            update(RUNS)
            .where(
                RUNS.c.site_id == site_id,
                RUNS.c.run_id == run_id,
                RUNS.c.state.in_([RunState.SENDING.value, RunState.FAILED.value]),
                RUNS.c.finish_time.is_(None),
                ~pending,
            )
            .values(
                # A failed run stays FAILED; it only gains its finish time.
                state=func.coalesce(
                    func.nullif(RUNS.c.state, RunState.SENDING.value), RunState.DONE.value
                ),
                finish_time=now,
                # The sweep has nothing left to do for it.
                cut_off_time=None,
            )
            .returning(RUNS.c.state, RUNS.c.campaign_id, RUNS.c.failure, RUNS.c.resolved)
        ).first()
        if finished is None:
            return None
        return self._finished_run(
            conn,
            site_id,
            run_id,
            RunState(finished.state),
            finished.campaign_id,
            finished.failure,
            finished.resolved,
            now,
        )

    def _lock_run(self, conn: Connection, site_id: str, run_id: str) -> None:
        """Locks the run's row (PostgreSQL; SQLite has one writer). A transaction that
        writes a run's row and its chunks takes the run's first."""
        if self._postgres:
            conn.execute(
                select(RUNS.c.run_id)
                .where(RUNS.c.site_id == site_id, RUNS.c.run_id == run_id)
                .with_for_update()
            )

    def _finished_run(
        self,
        conn: Connection,
        site_id: str,
        run_id: str,
        state: RunState,
        campaign_id: str,
        failure: str,
        resolved: int,
        now: datetime,
    ) -> FinishedRun:
        """What the "run finished" line says of a run that just got its finish time."""
        counted = (
            RecipientState.SENT,
            RecipientState.FAILED,
            RecipientState.SUPPRESSED,
            RecipientState.EXPIRED,
        )
        sums = conn.execute(
            select(*(func.coalesce(func.sum(CHUNKS.c[s.value]), 0) for s in counted)).where(
                CHUNKS.c.site_id == site_id, CHUNKS.c.run_id == run_id
            )
        ).one()
        created = conn.execute(
            select(RUNS.c.create_time).where(RUNS.c.site_id == site_id, RUNS.c.run_id == run_id)
        ).scalar_one()
        if created.tzinfo is None:  # SQLite gives the stored UTC time back naive
            created = created.replace(tzinfo=now.tzinfo)
        sent, failed, suppressed, expired = (int(n) for n in sums)
        return FinishedRun(
            site_id=site_id,
            run_id=run_id,
            campaign_id=campaign_id,
            state=state,
            failure=failure or "",
            audience=int(resolved),
            sent=sent,
            failed=failed,
            suppressed=suppressed,
            expired=expired,
            seconds=max(0.0, (now - created).total_seconds()),
        )

    # Preparation: pulling a run's audience snapshot.

    @_in_db_thread
    def claim_preparation(
        self, owner: str, now: datetime, lease_seconds: float
    ) -> PreparationLease | None:
        """Leases the oldest PREPARING run no live process is preparing."""
        candidate = self._skip_locked(
            select(RUNS.c.site_id, RUNS.c.run_id)
            .where(
                RUNS.c.state == RunState.PREPARING.value,
                _lease_free(RUNS.c.prepare_lease_expires_at, now),
            )
            .order_by(RUNS.c.create_time)
            .limit(1)
        )
        with self._sync.begin() as conn:
            found = (conn.execute(candidate)).first()
            if found is None:
                return None
            row = (
                conn.execute(
                    update(RUNS)
                    .where(
                        RUNS.c.site_id == found.site_id,
                        RUNS.c.run_id == found.run_id,
                        RUNS.c.state == RunState.PREPARING.value,
                        _lease_free(RUNS.c.prepare_lease_expires_at, now),
                    )
                    .values(
                        prepare_owner=owner,
                        prepare_lease_expires_at=now + timedelta(seconds=lease_seconds),
                        prepare_fence=RUNS.c.prepare_fence + 1,
                    )
                    .returning(RUNS)
                )
            ).first()
        if row is None:
            return None
        return PreparationLease(
            site_id=row.site_id,
            run_id=row.run_id,
            campaign_id=row.campaign_id,
            owner=owner,
            fence=row.prepare_fence,
            snapshot_time=row.snapshot_time,
            audience_filter=_listed(row.audience_filter),
            page_token=row.audience_page_token,
            unavailable_since=row.audience_unavailable_since,
            selector=bytes(row.audience_selector or b""),
            audience_profiles=_listed(row.audience_profiles),
            timing=row.timing,
            content_options=row.content_options,
            policy=row.policy,
            sample=_sample(row),
        )

    @_in_db_thread
    def run_contexts(self, site_id: str, run_id: str) -> dict[str, str]:
        """The run's template contexts: event properties JSON by person key."""
        with self._sync.connect() as conn:
            rows = conn.execute(
                select(CONTEXTS.c.person_key, CONTEXTS.c.event_properties).where(
                    CONTEXTS.c.site_id == site_id, CONTEXTS.c.run_id == run_id
                )
            )
            return {key: event_properties for key, event_properties in rows}

    def _drop_contexts(self, conn: Connection, site_id: str, run_id: str) -> None:
        """Preparation is over: the contexts are in the recipients' rows, or not needed."""
        conn.execute(
            delete(CONTEXTS).where(CONTEXTS.c.site_id == site_id, CONTEXTS.c.run_id == run_id)
        )

    def _hold_preparation(
        self, conn: Connection, lease: PreparationLease, now: datetime, lease_seconds: float
    ) -> bool:
        held = conn.execute(
            update(RUNS)
            .where(
                RUNS.c.site_id == lease.site_id,
                RUNS.c.run_id == lease.run_id,
                RUNS.c.state == RunState.PREPARING.value,
                RUNS.c.prepare_fence == lease.fence,
            )
            .values(prepare_lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
        return held.rowcount == 1

    @_in_db_thread
    def queue_page(
        self,
        lease: PreparationLease,
        members: Sequence[Member],
        next_page_token: str,
        *,
        chunk_size: int,
        now: datetime,
        lease_seconds: float,
        plan: Callable[[Member], tuple[datetime | None, str]] | None = None,
        context: Callable[[Member], str] | None = None,
        in_sample: Callable[[Member], bool] | None = None,
        variant: Callable[[Member], str] | None = None,
    ) -> bool:
        """Queues one audience page and moves the run's page token past it, atomically,
        so a page is queued exactly once whoever resumes the run. The last page (empty
        next token) ends preparation. False: the lease was lost, nothing written.

        In this order, per member: `in_sample` says whether it is in the run at all
        (None: everyone is; one outside is not queued, counted or reported); `variant`
        gives its A/B variant (None: "" for all), the suppressed ones' too; `plan` says
        when it is due (None: now) or why it is not sent at all (a reason word: it is
        queued suppressed); members due at different times go in different chunks, each
        claimable from its due time. `context` gives each member's template context
        (None: "" for all)."""
        if in_sample is not None:
            members = [member for member in members if in_sample(member)]
        finished: FinishedRun | None = None
        with self._sync.begin() as conn:
            if not self._hold_preparation(conn, lease, now, lease_seconds):
                return False
            run = (
                conn.execute(
                    select(RUNS.c.chunks, RUNS.c.resolved).where(
                        RUNS.c.site_id == lease.site_id, RUNS.c.run_id == lease.run_id
                    )
                )
            ).one()
            # Queueing a member again is ignored (a retried page, or an id twice in it).
            hot = self._hot
            cursor = hot.cursor(conn)
            cursor.execute(
                hot.already_queued,
                (hot.names([m.subscriber_id for m in members]), lease.site_id, lease.run_id),
            )
            already = {row[0] for row in cursor.fetchall()}
            fresh: dict[str, Member] = {}
            for member in members:
                if member.subscriber_id not in already:
                    fresh.setdefault(member.subscriber_id, member)
            members = list(fresh.values())
            seq, queued = run.chunks, 0
            recipients: list[tuple[Any, ...]] = []
            outbox: list[Entry] = []
            db_now = hot.time(now)
            planned: dict[str, tuple[datetime | None, str]] = {}
            variants: dict[str, str] = {}
            for member in members:
                if variant is not None:
                    variants[member.subscriber_id] = variant(member)
                due, reason = plan(member) if plan is not None else (None, "")
                if member.unsubscribed:
                    reason = "unsubscribed"
                planned[member.subscriber_id] = (None, reason) if reason else (due, "")
            # Chunks by due time (the suppressed, and those due now, first).
            members.sort(key=lambda m: planned[m.subscriber_id][0] or now)
            parts: list[list[Member]] = []
            for member in members:
                due_time = planned[member.subscriber_id][0]
                last = parts[-1] if parts else None
                if (
                    last is None
                    or len(last) >= chunk_size
                    or planned[last[0].subscriber_id][0] != due_time
                ):
                    parts.append([])
                parts[-1].append(member)
            for part in parts:
                chunk_due = planned[part[0].subscriber_id][0]
                suppressed_here = sum(bool(planned[m.subscriber_id][1]) for m in part)
                chunk_id = (
                    conn.execute(
                        insert(CHUNKS)
                        .values(
                            site_id=lease.site_id,
                            run_id=lease.run_id,
                            seq=seq,
                            state=ChunkState.PENDING.value,
                            due_time=chunk_due or now,
                            fence=0,
                            pending=len(part) - suppressed_here,
                            sent=0,
                            failed=0,
                            suppressed=suppressed_here,
                            expired=0,
                            queue_time=now,
                        )
                        .returning(CHUNKS.c.chunk_id)
                    )
                ).scalar_one()
                seq += 1
                for member in part:
                    member_due, why = planned[member.subscriber_id]
                    suppressed = bool(why)
                    chosen = variants.get(member.subscriber_id, "")
                    queued += not suppressed
                    # In _RECIPIENT_COLUMNS order.
                    recipients.append(
                        (
                            lease.site_id,
                            lease.run_id,
                            chunk_id,
                            member.subscriber_id,
                            member.profile_id,
                            member.timezone,
                            chosen,
                            hot.time(member_due) if member_due is not None else None,
                            member.browser,
                            member.target_kind.value,
                            member.endpoint,
                            member.p256dh,
                            member.auth,
                            "suppressed" if suppressed else "pending",
                            why,
                            0,
                            None,
                            db_now if suppressed else None,
                            member.vapid_key_id,
                            context(member) if context is not None else "",
                        )
                    )
                    if suppressed:
                        outbox.append(
                            Entry(
                                member.subscriber_id,
                                RecipientState.SUPPRESSED.value,
                                why,
                                member.browser,
                                chosen,
                                member.profile_id,
                            )
                        )
            if recipients:
                hot.add_recipients(conn, recipients)
            if outbox:
                hot.add_outbox(
                    conn,
                    [
                        hot.outbox_row(
                            OutboxKind.OUTCOME,
                            lease.site_id,
                            lease.run_id,
                            lease.campaign_id,
                            outbox,
                            now,
                        )
                    ],
                )
            done = not next_page_token
            changes: dict[str, Any] = {
                "audience_page_token": next_page_token,
                "resolved": RUNS.c.resolved + len(members),
                "queued": RUNS.c.queued + queued,
                "chunks": seq,
                "audience_unavailable_since": None,
            }
            if done:
                changes.update(
                    state=RunState.SENDING.value,
                    prepare_time=now,
                    prepare_owner=None,
                    prepare_lease_expires_at=None,
                )
            conn.execute(
                update(RUNS)
                .where(RUNS.c.site_id == lease.site_id, RUNS.c.run_id == lease.run_id)
                .values(**changes)
            )
            if done:
                conn.execute(
                    insert(OUTBOX).values(
                        kind=OutboxKind.AUDIENCE.value,
                        site_id=lease.site_id,
                        run_id=lease.run_id,
                        campaign_id=lease.campaign_id,
                        count=run.resolved + len(members),
                        occur_time=now,
                    )
                )
                self._drop_contexts(conn, lease.site_id, lease.run_id)
                finished = self._finish_run_if_complete(conn, lease.site_id, lease.run_id, now)
        count_outcomes((entry.state, entry.reason) for entry in outbox)  # committed only
        if finished is not None:
            finished.log()
        return True

    @_in_db_thread
    def postpone_preparation(
        self, lease: PreparationLease, retry_at: datetime, unavailable_since: datetime
    ) -> bool:
        """Segment could not be read: give the run back, claimable again at retry_at."""
        with self._sync.begin() as conn:
            result = conn.execute(
                update(RUNS)
                .where(
                    RUNS.c.site_id == lease.site_id,
                    RUNS.c.run_id == lease.run_id,
                    RUNS.c.prepare_fence == lease.fence,
                    RUNS.c.state == RunState.PREPARING.value,
                )
                .values(
                    prepare_owner=None,
                    # Not claimable before retry_at: the lease "expires" then.
                    prepare_lease_expires_at=retry_at,
                    audience_unavailable_since=unavailable_since,
                )
            )
            return result.rowcount == 1

    @_in_db_thread
    def fail_preparation(
        self, lease: PreparationLease, failure: RunFailure, message: str, now: datetime
    ) -> bool:
        """Ends preparation for good; recipients already queued are still sent."""
        with self._sync.begin() as conn:
            result = conn.execute(
                update(RUNS)
                .where(
                    RUNS.c.site_id == lease.site_id,
                    RUNS.c.run_id == lease.run_id,
                    RUNS.c.prepare_fence == lease.fence,
                    RUNS.c.state == RunState.PREPARING.value,
                )
                .values(
                    state=RunState.FAILED.value,
                    failure=failure.value,
                    failure_message=message[:1000],
                    prepare_time=now,
                    prepare_owner=None,
                    prepare_lease_expires_at=None,
                )
            )
            if result.rowcount != 1:
                return False
            resolved = (
                conn.execute(
                    select(RUNS.c.resolved).where(
                        RUNS.c.site_id == lease.site_id, RUNS.c.run_id == lease.run_id
                    )
                )
            ).scalar_one()
            conn.execute(
                insert(OUTBOX).values(
                    kind=OutboxKind.AUDIENCE.value,
                    site_id=lease.site_id,
                    run_id=lease.run_id,
                    campaign_id=lease.campaign_id,
                    count=resolved,
                    occur_time=now,
                )
            )
            self._drop_contexts(conn, lease.site_id, lease.run_id)
            finished = self._finish_run_if_complete(conn, lease.site_id, lease.run_id, now)
        if finished is not None:
            finished.log()
        return True

    # Chunks: sending.

    @_in_db_thread
    def claim_chunk(self, owner: str, now: datetime, lease_seconds: float) -> ClaimedChunk | None:
        """Leases the due chunk with the lowest seq (round robin across runs), bumping
        its fence."""
        candidate = self._skip_locked(
            select(CHUNKS.c.chunk_id)
            .where(
                CHUNKS.c.state == ChunkState.PENDING.value,
                CHUNKS.c.due_time <= now,
                _lease_free(CHUNKS.c.lease_expires_at, now),
            )
            .order_by(CHUNKS.c.seq, CHUNKS.c.chunk_id)
            .limit(1)
        )
        with self._sync.begin() as conn:
            chunk_id = (conn.execute(candidate)).scalar()
            if chunk_id is None:
                return None
            row = (
                conn.execute(
                    update(CHUNKS)
                    .where(
                        CHUNKS.c.chunk_id == chunk_id,
                        CHUNKS.c.state == ChunkState.PENDING.value,
                        _lease_free(CHUNKS.c.lease_expires_at, now),
                    )
                    .values(
                        lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        fence=CHUNKS.c.fence + 1,
                    )
                    .returning(
                        CHUNKS.c.chunk_id,
                        CHUNKS.c.site_id,
                        CHUNKS.c.run_id,
                        CHUNKS.c.fence,
                        CHUNKS.c.in_flight,
                    )
                )
            ).first()
            if row is not None and row.in_flight:
                # The previous holder's requests that were never answered (it died or
                # lost its lease): their attempts were made, count them now.
                self._count_in_flight(conn, row.chunk_id, row.in_flight)
        if row is None:
            return None
        return ClaimedChunk(row.chunk_id, row.site_id, row.run_id, owner, row.fence)

    @staticmethod
    def _count_in_flight(conn: Connection, chunk_id: int, in_flight: str) -> None:
        """Adds the attempt of each recipient on a chunk's in-flight list to its row and
        empties the list (the chunk's row is locked by the caller's fenced write)."""
        ids = [int(i) for i in in_flight.split(",") if i]
        conn.execute(
            update(RECIPIENTS)
            .where(RECIPIENTS.c.chunk_id == chunk_id, RECIPIENTS.c.recipient_id.in_(ids))
            .values(attempts=RECIPIENTS.c.attempts + 1)
        )
        conn.execute(update(CHUNKS).where(CHUNKS.c.chunk_id == chunk_id).values(in_flight=""))

    @_in_db_thread
    def due_recipients(self, chunk: ClaimedChunk, now: datetime) -> list[PendingRecipient]:
        """The chunk's pending recipients due by `now` (a sender passes a time a little
        ahead, to send retries due while it holds the chunk at their own time)."""
        with self._sync.connect() as conn:
            cursor = self._hot.cursor(conn)
            cursor.execute(self._hot.due_recipients, (chunk.chunk_id, self._hot.time(now)))
            rows = cursor.fetchall()
        read_time = self._hot.read_time
        return [
            PendingRecipient(
                rid,
                sid,
                browser,
                kind,
                endpoint,
                bytes(p256dh),
                bytes(auth),
                attempts,
                key_id,
                context,
                profile_id,
                timezone,
                variant,
                _aware(read_time(not_before)) if not_before is not None else None,
                reason,
            )
            for (
                rid,
                sid,
                browser,
                kind,
                endpoint,
                p256dh,
                auth,
                attempts,
                key_id,
                context,
                profile_id,
                timezone,
                variant,
                not_before,
                reason,
            ) in rows
        ]

    @_in_db_thread
    def admit_sends(
        self,
        chunk: ClaimedChunk,
        candidates: Sequence[int],
        *,
        reservations: Mapping[int, tuple[str, date]],
        cap_per_day: int,
        cap_per_week: int,
        rate_limits: Mapping[str, int],
        now: datetime,
    ) -> Admission | None:
        """Which of `candidates` (recipient ids, in send order) may be sent now, in one
        fenced transaction: those in `reservations` (first attempts of a capped run,
        with their person and local day) take a send under the frequency caps or are
        capped; the rest share this minute's throttle slots (`rate_limits` per scope),
        the first ones admitted, the others deferred. The admitted have their attempt
        counted here, so a send counted against a cap is never counted twice, even if
        this process dies before sending it. None: the lease was lost."""
        with self._sync.begin() as conn:
            if not self._fence_holds(conn, chunk):
                return None
            order = [rid for rid in candidates if rid in reservations]
            granted = policy_store.reserve_sends(
                conn,
                chunk.site_id,
                [reservations[rid] for rid in order],
                cap_per_day,
                cap_per_week,
                now,
            )
            capped = {rid for rid, ok in zip(order, granted, strict=True) if not ok}
            open_ = [rid for rid in candidates if rid not in capped]
            slots = policy_store.take_rate_slots_within(
                conn, chunk.site_id, rate_limits, now.replace(second=0, microsecond=0), len(open_)
            )
            admitted, deferred = open_[:slots], open_[slots:]
            # A first attempt the throttle defers comes back as a first attempt and takes
            # its send then: the one it took now is given back, or it would count twice.
            # Its person's row is locked by this transaction already, so this waits on
            # no one.
            untaken = [reservations[rid] for rid in deferred if rid in reservations]
            if untaken:
                policy_store.release_sends(conn, chunk.site_id, untaken, now)
            if admitted:
                conn.execute(
                    update(RECIPIENTS)
                    .where(RECIPIENTS.c.recipient_id.in_(admitted))
                    .values(attempts=RECIPIENTS.c.attempts + 1)
                )
        return Admission(admitted=admitted, capped=capped, deferred=deferred)

    @_in_db_thread
    def release_sends(
        self, site_id: str, released: Sequence[tuple[str, date]], now: datetime
    ) -> None:
        """Gives back frequency-cap sends whose push ended failed or expired."""
        if not released:
            return
        with self._sync.begin() as conn:
            policy_store.release_sends(conn, site_id, released, now)

    @_in_db_thread
    def people_sends(self, site_id: str, keys: Sequence[str]) -> dict[str, policy_store.Counts]:
        """The frequency-cap counts of these people as they are now, unlocked (the
        delivery plan preview); people without any are left out."""
        with self._sync.connect() as conn:
            return policy_store.people_sends(conn, site_id, keys)

    def _fence_holds(self, conn: Connection, chunk: ClaimedChunk) -> bool:
        # A write that changes nothing: it locks the chunk's row (PostgreSQL) or takes
        # SQLite's write lock before anything is read, so what follows is atomic.
        result = conn.execute(
            update(CHUNKS)
            .where(
                CHUNKS.c.chunk_id == chunk.chunk_id,
                CHUNKS.c.fence == chunk.fence,
                CHUNKS.c.state == ChunkState.PENDING.value,
            )
            .values(fence=CHUNKS.c.fence)
        )
        return result.rowcount == 1

    def _execute_hold(
        self,
        cursor: Any,
        chunk: ClaimedChunk,
        now: datetime,
        lease_seconds: float,
        terminal: Sequence[Terminal],
        in_flight: str,
    ) -> None:
        """Renews the chunk's lease and writes its in-flight list if its fence still holds
        (the cursor's row count is 1), counting `terminal` into its per-state totals in
        the same statement."""
        by_state = Counter(t.state.value for t in terminal)
        cursor.execute(
            self._hot.hold_chunk,
            (
                self._hot.time(now + timedelta(seconds=lease_seconds)),
                in_flight,
                len(terminal),
                *(by_state[state] for state in _TERMINAL_STATES),
                chunk.chunk_id,
                chunk.fence,
            ),
        )

    @_in_db_thread
    def record_progress(
        self,
        chunk: ClaimedChunk,
        campaign_id: str,
        *,
        attempting: Sequence[int] = (),
        terminal: Sequence[Terminal] = (),
        retries: Sequence[Retry] = (),
        now: datetime,
        lease_seconds: float,
    ) -> bool:
        """One fenced transaction: renews the lease, counts the attempts about to be
        made, records finished sends (and their outbox rows). False: the lease was lost
        to another worker and nothing was written; stop working on the chunk.

        The attempts of `attempting` are counted in the chunk's in-flight list (one
        column of the row the commit updates anyway), not in each recipient's row: an
        outcome or retry recorded later for a recipient on that list adds its attempt
        in the statement that records it, and takes it off the list. This store knows
        the list of each chunk it holds (it wrote it under the chunk's fence)."""
        hot = self._hot
        db_now = hot.time(now)
        key = (chunk.chunk_id, chunk.fence)
        flying = self._in_flight.get(key, frozenset())
        answered = {t.recipient_id for t in terminal} | {r.recipient_id for r in retries}
        still = (flying - answered) | set(attempting)
        in_flight = ",".join(map(str, sorted(still)))
        outcomes = [
            [
                t.recipient_id,
                t.attempt,
                int(t.recipient_id in flying),
                t.state.value,
                t.reason,
                Entry(t.subscriber_id, t.state.value, t.reason, t.browser, t.variant, t.profile_id),
                int(t.unsubscribe),
            ]
            for t in terminal
        ]
        with self._sync.connect() as conn:
            transaction = conn.begin()
            raw = conn.connection.driver_connection
            assert raw is not None
            if any(r.held_at for r in retries):
                retries = _unless_lifted(raw, hot.holds_of_site, chunk.site_id, retries, now)
            # On PostgreSQL the statements go out pipelined: a commit waits for the
            # database once, not once per statement (each wait also means taking the
            # GIL back from a busy event loop).
            with hot.pipelined(raw) as pipeline:
                if hot.lock_chunk is not None:
                    raw.cursor().execute(hot.lock_chunk, (chunk.chunk_id, chunk.fence))
                if retries:
                    raw.cursor().executemany(
                        hot.record_retry,
                        [
                            (
                                r.reason,
                                hot.time(r.not_before),
                                int(r.recipient_id in flying),
                                r.attempt,
                                r.attempt,
                                r.recipient_id,
                            )
                            for r in retries
                        ],
                    )
                if hot.commit_outcomes is not None:
                    # Outcomes, outbox rows and the fenced lease renewal: one statement.
                    committed = raw.cursor()
                    committed.execute(
                        hot.commit_outcomes,
                        {
                            "outcomes": json.dumps(outcomes, separators=(",", ":")),
                            "now": db_now,
                            "site_id": chunk.site_id,
                            "run_id": chunk.run_id,
                            "campaign_id": campaign_id,
                            "lease": hot.time(now + timedelta(seconds=lease_seconds)),
                            "in_flight": in_flight,
                            "chunk_id": chunk.chunk_id,
                            "fence": chunk.fence,
                        },
                    )
                    if pipeline is not None:
                        pipeline.sync()
                    held_count, ended_ids = committed.fetchone()
                    held = held_count == 1
                    ended = set(ended_ids)
                    terminal = [t for t in terminal if t.recipient_id in ended]
                else:
                    changed = raw.cursor()
                    if outcomes:
                        changed.execute(
                            hot.record_terminal,
                            (db_now, json.dumps(outcomes, separators=(",", ":"))),
                        )
                        ended = {row[0] for row in changed.fetchall()}
                        terminal = [t for t in terminal if t.recipient_id in ended]
                    if terminal:
                        entries = [
                            Entry(
                                t.subscriber_id,
                                t.state.value,
                                t.reason,
                                t.browser,
                                t.variant,
                                t.profile_id,
                            )
                            for t in terminal
                        ]
                        rows = [
                            hot.outbox_row(
                                OutboxKind.OUTCOME,
                                chunk.site_id,
                                chunk.run_id,
                                campaign_id,
                                entries,
                                now,
                            )
                        ]
                        gone = [e for e, t in zip(entries, terminal, strict=True) if t.unsubscribe]
                        if gone:
                            rows.append(
                                hot.outbox_row(
                                    OutboxKind.UNSUBSCRIBE,
                                    chunk.site_id,
                                    chunk.run_id,
                                    campaign_id,
                                    gone,
                                    now,
                                )
                            )
                        hot.add_outbox(conn, rows)
                    # The fence last: if another worker holds the chunk now, all of the
                    # above is rolled back and nothing of this commit is written.
                    hold = raw.cursor()
                    self._execute_hold(hold, chunk, now, lease_seconds, terminal, in_flight)
                    held = hold.rowcount == 1
            if not held:
                transaction.rollback()
                self._in_flight.pop(key, None)
                return False
            transaction.commit()
            if still:
                self._in_flight[key] = frozenset(still)
            else:
                self._in_flight.pop(key, None)
            count_outcomes((t.state.value, t.reason) for t in terminal)  # committed only
            return True

    @_in_db_thread
    def release_chunk(
        self, chunk: ClaimedChunk, now: datetime, *, not_before: datetime | None = None
    ) -> bool:
        """Gives the chunk up: DONE when nothing in it is pending, else claimable again
        at its earliest retry time (or `not_before`). Finishes the run when it was the
        last. False: the lease had been lost."""
        finished: FinishedRun | None = None
        with self._sync.begin() as conn:
            pending, next_due = (
                conn.execute(
                    select(func.count(), func.min(RECIPIENTS.c.not_before)).where(
                        RECIPIENTS.c.chunk_id == chunk.chunk_id,
                        RECIPIENTS.c.state == RecipientState.PENDING.value,
                    )
                )
            ).one()
            due = not_before or next_due or now
            if not pending:
                # The run's row before the chunk's, as a cancel takes them (see
                # _finish_run_if_complete for why it is locked at all).
                self._lock_run(conn, chunk.site_id, chunk.run_id)
            result = conn.execute(
                update(CHUNKS)
                .where(CHUNKS.c.chunk_id == chunk.chunk_id, CHUNKS.c.fence == chunk.fence)
                .values(
                    state=(ChunkState.PENDING if pending else ChunkState.DONE).value,
                    due_time=due,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            flying = self._in_flight.pop((chunk.chunk_id, chunk.fence), None)
            if result.rowcount != 1:
                return False
            if flying:
                # Requests given up unanswered (the pass ended with an error).
                self._count_in_flight(conn, chunk.chunk_id, ",".join(map(str, flying)))
            if not pending:
                finished = self._finish_run_if_complete(conn, chunk.site_id, chunk.run_id, now)
        if finished is not None:
            finished.log()
        return True

    # The outbox.

    @_in_db_thread
    def claim_outbox(
        self,
        kinds: Sequence[OutboxKind],
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
    ) -> list[OutboxItem]:
        """Leases up to `limit` rows (each one commit's recipients) no live process holds,
        oldest first, and returns their items."""
        candidates = self._skip_locked(
            select(OUTBOX.c.outbox_id, OUTBOX.c.site_id, OUTBOX.c.run_id)
            .where(
                OUTBOX.c.kind.in_([kind.value for kind in kinds]),
                _lease_free(OUTBOX.c.claim_expires_at, now),
            )
            .order_by(OUTBOX.c.outbox_id)
            .limit(limit)
        )
        with self._sync.begin() as conn:
            found = conn.execute(candidates).all()
            if not found:
                return []
            ids = [row.outbox_id for row in found]
            # A run's START row goes first: while one not in this batch waits (a peer
            # failed it, or another process holds it), the run's later rows wait too.
            waiting = conn.execute(
                select(OUTBOX.c.site_id, OUTBOX.c.run_id, OUTBOX.c.outbox_id).where(
                    OUTBOX.c.kind == OutboxKind.START.value,
                    tuple_(OUTBOX.c.site_id, OUTBOX.c.run_id).in_(
                        {(row.site_id, row.run_id) for row in found}
                    ),
                    OUTBOX.c.outbox_id.not_in(ids),
                )
            ).all()
            if waiting:
                first = {(site_id, run_id): outbox_id for site_id, run_id, outbox_id in waiting}
                ids = [
                    row.outbox_id
                    for row in found
                    if row.outbox_id < first.get((row.site_id, row.run_id), row.outbox_id + 1)
                ]
                if not ids:
                    return []
            rows = conn.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.outbox_id.in_(ids),
                    _lease_free(OUTBOX.c.claim_expires_at, now),
                )
                .values(claim_owner=owner, claim_expires_at=now + timedelta(seconds=lease_seconds))
                .returning(OUTBOX)
            )
            rows = rows.all()
            # One look-up per batch (not per row): which of its runs are test sends,
            # and the conversion goals of those with one (handed over with the audience).
            tests: set[tuple[str, str]] = set()
            goals: dict[tuple[str, str], str] = {}
            descriptions: dict[tuple[str, str], str] = {}
            for site_id, run_id, test, goal, description in conn.execute(
                select(
                    RUNS.c.site_id,
                    RUNS.c.run_id,
                    RUNS.c.test,
                    RUNS.c.conversion_goal,
                    RUNS.c.description,
                ).where(
                    tuple_(RUNS.c.site_id, RUNS.c.run_id).in_(
                        {(row.site_id, row.run_id) for row in rows}
                    ),
                    or_(RUNS.c.test, RUNS.c.conversion_goal != "", RUNS.c.description != ""),
                )
            ):
                if test:
                    tests.add((site_id, run_id))
                if goal:
                    goals[(site_id, run_id)] = goal
                if description:
                    descriptions[(site_id, run_id)] = description
            items = []
            for row in sorted(rows, key=lambda row: row.outbox_id):
                run_key = (row.site_id, row.run_id)
                # The fields every item of the row shares, in OutboxItem's field order.
                head: tuple[int, OutboxKind, str, str, str, datetime, int] = (
                    row.outbox_id,
                    OutboxKind(row.kind),
                    row.site_id,
                    row.run_id,
                    row.campaign_id,
                    row.occur_time,
                    row._mapping["count"],  # not row.count: a Row is a tuple
                )
                test = run_key in tests
                if not row.entries:
                    items.append(
                        OutboxItem(
                            *head,
                            test=test,
                            conversion_goal=goals.get(run_key, ""),
                            description=descriptions.get(run_key, ""),
                        )
                    )
                    continue
                # Rows written before variants hold [subscriber, state, reason, browser].
                # Positional: thousands per batch.
                items += [
                    OutboxItem(
                        *head, sid, state, reason, browser, test,
                        rest[0] if rest else "",
                        rest[1] if len(rest) > 1 else "",
                    )  # fmt: skip
                    for sid, state, reason, browser, *rest in json.loads(row.entries)
                ]
            return items

    @_in_db_thread
    def settle_outbox(self, owner: str, outbox_ids: Sequence[int]) -> None:
        """Deletes rows a peer has accepted (only while this owner still holds them)."""
        if not outbox_ids:
            return
        with self._sync.begin() as conn:
            conn.execute(
                delete(OUTBOX).where(
                    OUTBOX.c.outbox_id.in_(list(outbox_ids)), OUTBOX.c.claim_owner == owner
                )
            )

    @_in_db_thread
    def release_outbox(self, owner: str, outbox_ids: Sequence[int], retry_at: datetime) -> None:
        """A peer failed: the rows are claimable again from retry_at."""
        if not outbox_ids:
            return
        with self._sync.begin() as conn:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.outbox_id.in_(list(outbox_ids)), OUTBOX.c.claim_owner == owner)
                .values(claim_owner=None, claim_expires_at=retry_at)
            )

    @_in_db_thread
    def outbox_size(self) -> int:
        with self._sync.connect() as conn:
            return int((conn.execute(select(func.count()).select_from(OUTBOX))).scalar_one())

    # One recipient.

    def _recipient_row(self, statement: Any, site_id: str, run_id: str, subscriber_id: str) -> Any:
        """`statement`'s row for the run's recipient `subscriber_id`; None when the run
        has no such recipient. (In the database thread.)"""
        with self._sync.connect() as conn:
            return conn.execute(
                statement.where(
                    RECIPIENTS.c.site_id == site_id,
                    RECIPIENTS.c.run_id == run_id,
                    RECIPIENTS.c.subscriber_id == subscriber_id,
                )
            ).first()

    @_in_db_thread
    def recipient(self, site_id: str, run_id: str, subscriber_id: str) -> RecipientView | None:
        statement = select(RECIPIENTS, CHUNKS.c.queue_time, CHUNKS.c.in_flight).join(
            CHUNKS, CHUNKS.c.chunk_id == RECIPIENTS.c.chunk_id, isouter=True
        )
        row = self._recipient_row(statement, site_id, run_id, subscriber_id)
        if row is None:
            return None
        # A request started and not answered yet counts (the chunk's in-flight list).
        in_flight = str(row.recipient_id) in (row.in_flight or "").split(",")
        return RecipientView(
            subscriber_id=row.subscriber_id,
            state=RecipientState(row.state),
            reason=row.reason,
            attempts=row.attempts + in_flight,
            variant=row.variant,
            due_time=row.due_time,
            not_before=row.not_before,
            finish_time=row.finish_time,
            attempt_history=parse_attempt_log(row.attempt_log),
            queue_time=row.queue_time,
        )

    # Clicks.

    @_in_db_thread
    def click_recipient(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> ClickRecipient | None:
        """What a recipient's push was made of (its run's, or its variant's, payload and
        options, its browser and template context) and whether and when it was sent;
        None when the run has no such recipient."""
        variant_joined = (
            (VARIANTS.c.site_id == RECIPIENTS.c.site_id)
            & (VARIANTS.c.run_id == RECIPIENTS.c.run_id)
            & (VARIANTS.c.variant_id == RECIPIENTS.c.variant)
        )
        statement = select(
            RECIPIENTS.c.state,
            RECIPIENTS.c.finish_time,
            RECIPIENTS.c.browser,
            RECIPIENTS.c.variant,
            RECIPIENTS.c.context,
            RUNS.c.campaign_id,
            RUNS.c.payload,
            RUNS.c.content_options,
            VARIANTS.c.payload.label("variant_payload"),
            VARIANTS.c.content_options.label("variant_options"),
        ).select_from(
            RECIPIENTS.join(
                RUNS,
                (RUNS.c.site_id == RECIPIENTS.c.site_id) & (RUNS.c.run_id == RECIPIENTS.c.run_id),
            ).outerjoin(VARIANTS, variant_joined)
        )
        row = self._recipient_row(statement, site_id, run_id, subscriber_id)
        if row is None:
            return None
        return ClickRecipient(
            campaign_id=row.campaign_id,
            state=RecipientState(row.state),
            finish_time=row.finish_time,
            browser=row.browser,
            variant=row.variant,
            context=row.context,
            payload=bytes(row.payload),
            content_options=row.content_options,
            variant_payload=None if row.variant_payload is None else bytes(row.variant_payload),
            variant_options=row.variant_options or "",
        )

    # Push services holding a site's sends (they refused its VAPID signature).

    @_in_db_thread
    def site_holds(self, site_id: str) -> dict[str, Hold]:
        """The site's holds by push service origin ({}: none)."""
        with self._sync.connect() as conn:
            return self._site_holds(conn, site_id)

    def _site_holds(self, conn: Connection, site_id: str) -> dict[str, Hold]:
        rows = conn.execute(select(HOLDS).where(HOLDS.c.site_id == site_id))
        return {row.push_service: _hold(row) for row in rows}

    @_in_db_thread
    def run_and_holds(self, site_id: str, run_id: str) -> tuple[Run | None, dict[str, Hold]]:
        """A chunk's run and its site's holds, read together (one trip to the database
        thread per chunk claimed, as the run alone was)."""
        with self._sync.connect() as conn:
            row = conn.execute(
                select(RUNS).where(RUNS.c.site_id == site_id, RUNS.c.run_id == run_id)
            ).first()
            return (_run(row) if row is not None else None), self._site_holds(conn, site_id)

    @_in_db_thread
    def all_holds(self) -> list[Hold]:
        """Every hold of every site (few: one per site and push service refusing it)."""
        with self._sync.connect() as conn:
            return [_hold(row) for row in conn.execute(select(HOLDS))]

    @_in_db_thread
    def hold_push_service(
        self,
        site_id: str,
        push_service: str,
        *,
        http_status: int,
        detail: str,
        fingerprint: str,
        now: datetime,
        probe_seconds: int,
        refused_probe: int = 0,
    ) -> Hold:
        """Holds the site's sends to `push_service` (refused with `http_status`): its
        first probe after `probe_seconds`. Already held (another sender, another
        process): the hold is kept as it is, with this refusal's status, detail and
        fingerprint; `refused_probe` (a recipient id) was its probe, refused: none is
        sent until the next probe time. Returns the hold as stored."""
        dialect_insert = postgresql_insert if self._postgres else sqlite_insert
        detail = detail[:MAX_HOLD_DETAIL_LENGTH]
        where = (HOLDS.c.site_id == site_id, HOLDS.c.push_service == push_service)
        with self._sync.begin() as conn:
            inserted = conn.execute(
                dialect_insert(HOLDS)
                .values(
                    site_id=site_id,
                    push_service=push_service,
                    http_status=http_status,
                    detail=detail,
                    credentials_fingerprint=fingerprint,
                    since=now,
                    next_probe_time=now + timedelta(seconds=probe_seconds),
                    probe_seconds=probe_seconds,
                    probe_recipient_id=0,
                    update_time=now,
                )
                .on_conflict_do_nothing(index_elements=[HOLDS.c.site_id, HOLDS.c.push_service])
                .returning(HOLDS.c.site_id)
            ).first()
            if inserted is None:
                changes: dict[str, Any] = {
                    "http_status": http_status,
                    "detail": detail,
                    "credentials_fingerprint": fingerprint,
                    "update_time": now,
                }
                if refused_probe:
                    conn.execute(
                        update(HOLDS)
                        .where(*where, HOLDS.c.probe_recipient_id == refused_probe)
                        .values(probe_recipient_id=0)
                    )
                conn.execute(update(HOLDS).where(*where).values(**changes))
            return _hold(conn.execute(select(HOLDS).where(*where)).one())

    @_in_db_thread
    def lift_holds(
        self, site_id: str, push_services: Sequence[str] | None, now: datetime
    ) -> list[str]:
        """Lifts the site's holds on `push_services` (None: all of them); every recipient
        of the site still held (pending with reason push_service_auth) is due now, its
        chunk too. Returns the push services whose hold this call lifted."""
        statement = delete(HOLDS).where(HOLDS.c.site_id == site_id)
        if push_services is not None:
            if not push_services:
                return []
            statement = statement.where(HOLDS.c.push_service.in_(list(push_services)))
        with self._sync.begin() as conn:
            lifted = [row[0] for row in conn.execute(statement.returning(HOLDS.c.push_service))]
            if lifted:
                self._wake_held(conn, site_id, now)
        return lifted

    def _wake_held(self, conn: Connection, site_id: str, now: datetime) -> None:
        """Every recipient of the site still held is due now, and so is its chunk (a
        recipient held at a push service still holding is deferred again unsent)."""
        site_chunks = select(CHUNKS.c.chunk_id).where(
            CHUNKS.c.site_id == site_id, CHUNKS.c.state == ChunkState.PENDING.value
        )
        if self._postgres:
            # The chunks before their recipients, as a commit locks them: a commit of a
            # chunk whose held recipients this lift would update otherwise waits on
            # the lift while the lift waits on the commit's chunk.
            conn.execute(site_chunks.order_by(CHUNKS.c.chunk_id).with_for_update())
        chunk_ids = {
            row[0]
            for row in conn.execute(
                update(RECIPIENTS)
                .where(
                    RECIPIENTS.c.chunk_id.in_(site_chunks),
                    RECIPIENTS.c.state == RecipientState.PENDING.value,
                    RECIPIENTS.c.reason == HELD_REASON,
                )
                .values(not_before=now)
                .returning(RECIPIENTS.c.chunk_id)
            )
        }
        if chunk_ids:
            conn.execute(
                update(CHUNKS)
                .where(CHUNKS.c.chunk_id.in_(sorted(chunk_ids)), CHUNKS.c.due_time > now)
                .values(due_time=now)
            )

    @_in_db_thread
    def claim_due_probes(
        self, now: datetime, max_probe_seconds: int, limit: int = 100
    ) -> list[tuple[Hold, int]]:
        """For each hold whose probe time has come (at most `limit`): one recipient it
        holds is due now, as its probe (the only one sent to that push service while it
        holds), and the probe after it is due after twice the wait (at most
        `max_probe_seconds`). A hold nobody waits on any more (its recipients ended:
        expired, cancelled) is dropped: a new run's first refusal sets it again. Returns
        (hold as it was, probe recipient id; 0: dropped) for each this call handled;
        every process may call it, each hold's probe is claimed once."""
        with self._sync.connect() as conn:
            due = conn.execute(
                select(HOLDS).where(HOLDS.c.next_probe_time <= now).limit(limit)
            ).all()
        handled: list[tuple[Hold, int]] = []
        for row in due:
            hold = _hold(row)
            where = (
                HOLDS.c.site_id == hold.site_id,
                HOLDS.c.push_service == hold.push_service,
                HOLDS.c.next_probe_time <= now,
            )
            prefix = hold.push_service.replace("\\", "\\\\").replace("%", "\\%")
            prefix = prefix.replace("_", "\\_") + "/%"
            # APNs (legacy Safari) recipients' endpoints are device tokens, not URLs.
            held_here = (
                RECIPIENTS.c.target_kind == TargetKind.APNS.value
                if hold.push_service == APNS_HOLD_SERVICE
                else RECIPIENTS.c.endpoint.like(prefix, escape="\\")
            )
            with self._sync.begin() as conn:
                candidate = conn.execute(
                    select(RECIPIENTS.c.recipient_id, RECIPIENTS.c.chunk_id)
                    .where(
                        RECIPIENTS.c.chunk_id.in_(
                            select(CHUNKS.c.chunk_id).where(
                                CHUNKS.c.site_id == hold.site_id,
                                CHUNKS.c.state == ChunkState.PENDING.value,
                            )
                        ),
                        RECIPIENTS.c.state == RecipientState.PENDING.value,
                        RECIPIENTS.c.reason == HELD_REASON,
                        held_here,
                    )
                    .order_by(RECIPIENTS.c.recipient_id)
                    .limit(1)
                ).first()
                if candidate is None:
                    if conn.execute(delete(HOLDS).where(*where)).rowcount == 1:
                        handled.append((hold, 0))
                    continue
                grown = min(max_probe_seconds, hold.probe_seconds * 2)
                claimed = conn.execute(
                    update(HOLDS)
                    .where(*where)
                    .values(
                        next_probe_time=now + timedelta(seconds=grown),
                        probe_seconds=grown,
                        probe_recipient_id=candidate.recipient_id,
                        update_time=now,
                    )
                )
                if claimed.rowcount != 1:
                    continue  # another process claimed it
                conn.execute(
                    update(RECIPIENTS)
                    .where(RECIPIENTS.c.recipient_id == candidate.recipient_id)
                    .values(not_before=now)
                )
                conn.execute(
                    update(CHUNKS)
                    .where(CHUNKS.c.chunk_id == candidate.chunk_id, CHUNKS.c.due_time > now)
                    .values(due_time=now)
                )
                handled.append((hold, candidate.recipient_id))
        return handled

    # Metrics.

    @_in_db_thread
    def queue_stats(self, now: datetime) -> tuple[int, datetime | None, dict[str, int]]:
        """For the queue gauges: recipients still pending (summed over the pending
        chunks' counters, not counted over recipients), the earliest due time of a
        pending chunk due by `now` (None: none waiting), and the runs by state. The
        chunks and runs are found by indexes led by their state."""
        with self._sync.connect() as conn:
            depth = conn.execute(
                select(func.coalesce(func.sum(CHUNKS.c.pending), 0)).where(
                    CHUNKS.c.state == ChunkState.PENDING.value
                )
            ).scalar_one()
            oldest = conn.execute(
                select(func.min(CHUNKS.c.due_time)).where(
                    CHUNKS.c.state == ChunkState.PENDING.value,
                    CHUNKS.c.due_time <= now,
                )
            ).scalar_one_or_none()
            runs = conn.execute(select(RUNS.c.state, func.count()).group_by(RUNS.c.state)).all()
        return int(depth), oldest, {str(state): int(count) for state, count in runs}


@dataclass(frozen=True)
class ClickRecipient:
    """One recipient as a click on its push needs it (DeliveryStore.click_recipient)."""

    campaign_id: str
    state: RecipientState
    # When it ended (for a sent one: when the push service accepted it).
    finish_time: datetime | None
    browser: int
    variant: str
    # Its template context (domain/content.py's JSON; "": none).
    context: str = field(repr=False)
    # The run's payload and options (domain/content.py's JSON; "": as it is) ...
    payload: bytes = field(repr=False)
    content_options: str = field(repr=False)
    # ... and its variant's, when it has one.
    variant_payload: bytes | None = field(default=None, repr=False)
    variant_options: str = field(default="", repr=False)


__all__ = [
    "Attempt",
    "ClaimedChunk",
    "DeliveryStore",
    "Hold",
    "Member",
    "NewRun",
    "OutboxItem",
    "PendingRecipient",
    "PreparationLease",
    "RecipientView",
    "Retry",
    "Run",
    "RunCounts",
    "StoredVariant",
    "Terminal",
]
