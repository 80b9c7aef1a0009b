"""Persistence for delivery's policies: frequency-cap counts per person and throttle
windows per minute (the rules themselves are in domain/policies.py).

Every function takes a Connection inside a transaction the caller holds, so a sender
counts its sends in the transaction that records them, and a rollback gives them back.
Both kinds of count are shared by every delivery process, so each function makes its
read-then-write atomic: on PostgreSQL it locks the rows it counts on (`FOR UPDATE`, in
key order, so two transactions wanting the same rows queue instead of deadlocking); on
SQLite its first statement is a write, which takes the database's single write lock
before anything is read.

Rows are locked until the caller commits, and a transaction that locks rows in two
passes can lock crosswise with another one. So in one transaction make at most one cap
call (reserve_sends, with `released=` to give sends back too) and then at most one
throttle call (take_rate_slots_within takes a campaign's and the site's limits
together), both last: every sender of the site waits on the site's throttle row. After
them, giving back sends of people the cap call locked (release_sends) waits on no one:
DeliveryStore.admit_sends does so for the sends the throttle deferred.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from services.delivery.models import DeliveryPersonSendsRow, DeliveryRateWindowRow

PERSON_SENDS = DeliveryPersonSendsRow.__table__
RATE_WINDOWS = DeliveryRateWindowRow.__table__

# A weekly cap counts the 7 local days ending on the send's day (domain/policies.py's
# week_days).
WEEK_DAYS = 7
# Throttle windows older than this (before the newest minute of a scope) are deleted.
RATE_WINDOW_KEEP = timedelta(hours=1)

Counts = dict[date, int]


# Frequency caps.


def reserve_sends(
    conn: Connection,
    site_id: str,
    wants: Sequence[tuple[str, date]],
    cap_per_day: int,
    cap_per_week: int,
    now: datetime,
    *,
    released: Sequence[tuple[str, date]] = (),
) -> list[bool]:
    """For each (person_key, local day) in order, whether one more send is granted
    under the caps (0: none) — at most cap_per_day on that day and cap_per_week in the 7
    local days ending on it — counting each send granted. A person may appear several
    times (the browsers of one profile): granted until a cap is reached, refused after.

    `released` are given back first, as release_sends does: a transaction that both
    records failures and reserves new sends passes both here, so it locks all its people
    in one pass (two passes could lock crosswise with another transaction's).

    Without a cap nothing is counted and everything is granted: a site or campaign
    without a cap leaves no rows. So release only what a capped call granted.
    """
    capped = cap_per_day > 0 or cap_per_week > 0
    counted = wants if capped else ()
    if not counted and not released:
        return [True] * len(wants)
    counts = _lock_people(
        conn, site_id, sorted({key for key, _ in counted}), {key for key, _ in released}, now
    )
    changed: dict[str, date] = {}  # person -> the earliest day written
    for key, day in released:
        days = counts.get(key)
        if days is None or days.get(day, 0) <= 0:
            continue
        days[day] -= 1
        changed[key] = min(day, changed.get(key, day))
    if not capped:
        granted = [True] * len(wants)
    else:
        granted = []
        for key, day in wants:
            under = take_send(counts[key], day, cap_per_day, cap_per_week)
            if under:
                changed[key] = min(day, changed.get(key, day))
            granted.append(under)
    _write_people(conn, site_id, counts, changed, now)
    return granted


def release_sends(
    conn: Connection, site_id: str, released: Sequence[tuple[str, date]], now: datetime
) -> None:
    """Gives back sends reserve_sends granted (one per (person_key, local day), as it
    was reserved) whose push ended without being sent — failed or expired — so the caps
    count pushes sent, not attempts. A count never goes below 0. To reserve in the same
    transaction, pass these to reserve_sends(released=...) instead."""
    reserve_sends(conn, site_id, (), 0, 0, now, released=released)


def person_sends(conn: Connection, site_id: str, key: str) -> dict[date, int]:
    """The sends counted for one person on its recent local days (for tests and
    operators); {} when none."""
    row = conn.execute(
        select(PERSON_SENDS.c.days).where(
            PERSON_SENDS.c.site_id == site_id, PERSON_SENDS.c.person_key == key
        )
    ).first()
    return _parse_days(row.days) if row is not None else {}


def people_sends(conn: Connection, site_id: str, keys: Sequence[str]) -> dict[str, Counts]:
    """The sends counted for these people (person key -> local day -> sends), read
    without locking (the delivery plan preview); people without any are left out."""
    found: dict[str, Counts] = {}
    for start in range(0, len(keys), 1000):
        rows = conn.execute(
            select(PERSON_SENDS.c.person_key, PERSON_SENDS.c.days).where(
                PERSON_SENDS.c.site_id == site_id,
                PERSON_SENDS.c.person_key.in_(keys[start : start + 1000]),
            )
        )
        found.update({row.person_key: _parse_days(row.days) for row in rows})
    return found


def take_send(days: Counts, day: date, cap_per_day: int, cap_per_week: int) -> bool:
    """The cap rule, on one person's sends by local day: whether one more on `day` is
    under both caps (0: none), counting it in `days` when it is. The delivery plan
    preview applies the same rule to counts it reads and adds to."""
    under = (cap_per_day <= 0 or days.get(day, 0) < cap_per_day) and (
        cap_per_week <= 0 or _week_total(days, day) < cap_per_week
    )
    if under:
        days[day] = days.get(day, 0) + 1
    return under


def _week_total(days: Counts, day: date) -> int:
    return sum(days.get(day - timedelta(days=back), 0) for back in range(WEEK_DAYS))


def _lock_people(
    conn: Connection, site_id: str, created: Sequence[str], others: Set[str], now: datetime
) -> dict[str, Counts]:
    """The counts of these people (`created`, sorted, get a row if they have none;
    `others` are read only if they have one), their rows locked in key order on
    PostgreSQL. Under READ COMMITTED a row waited for is read as its holder left it."""
    postgres = conn.dialect.name == "postgresql"
    keys = sorted({*others, *created})
    if created:
        # In key order: two transactions creating the same people wait for each other
        # on the first one they share, never crosswise. On SQLite this write takes the
        # write lock before anything is read.
        dialect_insert = postgresql_insert if postgres else sqlite_insert
        conn.execute(
            dialect_insert(PERSON_SENDS).on_conflict_do_nothing(
                index_elements=[PERSON_SENDS.c.site_id, PERSON_SENDS.c.person_key]
            ),
            [
                {"site_id": site_id, "person_key": key, "days": "{}", "update_time": now}
                for key in created
            ],
        )
    elif not postgres:
        # Nothing to create: a write of the rows themselves takes SQLite's write lock.
        conn.execute(
            update(PERSON_SENDS)
            .where(PERSON_SENDS.c.site_id == site_id, PERSON_SENDS.c.person_key.in_(keys))
            .values(update_time=now)
        )
    statement = (
        select(PERSON_SENDS.c.person_key, PERSON_SENDS.c.days)
        .where(PERSON_SENDS.c.site_id == site_id, PERSON_SENDS.c.person_key.in_(keys))
        .order_by(PERSON_SENDS.c.person_key)
    )
    if postgres:
        statement = statement.with_for_update()
    return {row.person_key: _parse_days(row.days) for row in conn.execute(statement)}


def _write_people(
    conn: Connection,
    site_id: str,
    counts: Mapping[str, Counts],
    changed: Mapping[str, date],
    now: datetime,
) -> None:
    """Writes back the people whose counts changed, keeping only the days a weekly cap
    can still count: local days run from a day before UTC's to a day after it, so a week
    ending on any day from now on starts at or after UTC's date - 7. A day asked for
    further back (a late release) keeps its own week."""
    if not changed:
        return
    today = now.astimezone(UTC).date()
    rows = []
    for key in sorted(changed):
        oldest = min(
            today - timedelta(days=WEEK_DAYS), changed[key] - timedelta(days=WEEK_DAYS - 1)
        )
        kept = {day: n for day, n in counts[key].items() if day >= oldest and n > 0}
        rows.append({"b_site": site_id, "b_key": key, "b_days": _dump_days(kept), "b_time": now})
    conn.execute(
        update(PERSON_SENDS)
        .where(
            PERSON_SENDS.c.site_id == bindparam("b_site"),
            PERSON_SENDS.c.person_key == bindparam("b_key"),
        )
        .values(days=bindparam("b_days"), update_time=bindparam("b_time")),
        rows,
    )


def _parse_days(text: str) -> Counts:
    return {date.fromisoformat(day): int(n) for day, n in json.loads(text or "{}").items()}


def _dump_days(days: Counts) -> str:
    return json.dumps(
        {day.isoformat(): n for day, n in sorted(days.items())}, separators=(",", ":")
    )


# Throttle windows.


def take_rate_slots(
    conn: Connection,
    site_id: str,
    scope: str,
    window_start: datetime,
    want: int,
    limit: int,
) -> int:
    """How many of `want` sends may start in the minute of `window_start` (UTC,
    truncated to the minute) under `limit` sends a minute for `scope` ("site", or
    "campaign:" + a campaign id), counting them. limit 0: no limit, nothing counted."""
    return take_rate_slots_within(conn, site_id, {scope: limit}, window_start, want)


def take_rate_slots_within(
    conn: Connection,
    site_id: str,
    limits: Mapping[str, int],
    window_start: datetime,
    want: int,
) -> int:
    """How many of `want` sends may start in the minute of `window_start` under every
    scope's limit at once (e.g. {"campaign:cmp_1": 100, "site": 1000}; a limit of 0 is
    none), counting the number granted in each scope — so a send the site's ceiling
    refuses uses none of its campaign's."""
    if want <= 0:
        return 0
    limited = {scope: limit for scope, limit in limits.items() if limit > 0}
    if not limited:
        return want
    if window_start.tzinfo is None:
        raise ValueError("naive window_start; pass an aware UTC datetime")
    window = window_start.astimezone(UTC).replace(second=0, microsecond=0)
    scopes = sorted(limited)
    postgres = conn.dialect.name == "postgresql"
    dialect_insert = postgresql_insert if postgres else sqlite_insert
    # Ensures the rows exist (in scope order) so they can be locked; on SQLite this write
    # takes the write lock. The rows it creates say a scope's minute has just begun.
    created = conn.execute(
        dialect_insert(RATE_WINDOWS)
        .values(
            [
                {"site_id": site_id, "scope": scope, "window_start": window, "sends": 0}
                for scope in scopes
            ]
        )
        .on_conflict_do_nothing(
            index_elements=[
                RATE_WINDOWS.c.site_id,
                RATE_WINDOWS.c.scope,
                RATE_WINDOWS.c.window_start,
            ]
        )
        .returning(RATE_WINDOWS.c.scope)
    ).all()
    if created:
        _prune_rate_windows(conn, site_id, window - RATE_WINDOW_KEEP, postgres)
    statement: Any = (
        select(RATE_WINDOWS.c.scope, RATE_WINDOWS.c.sends)
        .where(
            RATE_WINDOWS.c.site_id == site_id,
            RATE_WINDOWS.c.scope.in_(scopes),
            RATE_WINDOWS.c.window_start == window,
        )
        .order_by(RATE_WINDOWS.c.scope)
    )
    if postgres:
        statement = statement.with_for_update()
    sends = {row.scope: int(row.sends) for row in conn.execute(statement)}
    granted = max(0, min(want, *(limited[scope] - sends[scope] for scope in scopes)))
    if granted:
        conn.execute(
            update(RATE_WINDOWS)
            .where(
                RATE_WINDOWS.c.site_id == site_id,
                RATE_WINDOWS.c.scope.in_(scopes),
                RATE_WINDOWS.c.window_start == window,
            )
            .values(sends=RATE_WINDOWS.c.sends + granted)
        )
    return granted


def _prune_rate_windows(conn: Connection, site_id: str, before: datetime, postgres: bool) -> None:
    """Deletes the site's windows that began before `before`, in every scope (a campaign
    that stopped sending leaves its last minutes behind). On PostgreSQL it skips rows
    another transaction holds (one pruning them too), so two pruners never wait on each
    other crosswise."""
    stale = (RATE_WINDOWS.c.site_id == site_id, RATE_WINDOWS.c.window_start < before)
    if not postgres:
        conn.execute(delete(RATE_WINDOWS).where(*stale))
        return
    key = tuple_(RATE_WINDOWS.c.site_id, RATE_WINDOWS.c.scope, RATE_WINDOWS.c.window_start)
    unheld = (
        select(RATE_WINDOWS.c.site_id, RATE_WINDOWS.c.scope, RATE_WINDOWS.c.window_start)
        .where(*stale)
        .with_for_update(skip_locked=True)
    )
    conn.execute(delete(RATE_WINDOWS).where(key.in_(unheld)))
