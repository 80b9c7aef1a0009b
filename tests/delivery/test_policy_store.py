"""Frequency caps and throttle windows in delivery's database
(services/delivery/policy_store.py), on SQLite and PostgreSQL: the caps count per person
on its local days, a release gives a send back, throttle slots per minute, and two OS
processes racing for the same person or minute never get more than the limit."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.domain.policies import local_day
from services.delivery.models import DeliveryRateWindowRow
from services.delivery.policy_store import (
    person_sends,
    release_sends,
    reserve_sends,
    take_rate_slots,
    take_rate_slots_within,
)
from services.kit.db import create_sync_engine_for

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
DAY = date(2027, 1, 15)
RATE_WINDOWS = DeliveryRateWindowRow.__table__
T = TypeVar("T")


@pytest.fixture
def db(engine: AsyncEngine, private_database_url: str) -> Iterator[Engine]:
    """A synchronous engine on the migrated delivery database, as DeliveryStore has."""
    sync = create_sync_engine_for(private_database_url)
    yield sync
    sync.dispose()


@pytest.fixture
def site_id() -> str:
    return f"site_{uuid.uuid4().hex}"


def reserve(
    db: Engine,
    site_id: str,
    wants: list[tuple[str, date]],
    *,
    per_day: int = 0,
    per_week: int = 0,
    now: datetime = NOW,
) -> list[bool]:
    with db.begin() as conn:
        return reserve_sends(conn, site_id, wants, per_day, per_week, now)


def sends(db: Engine, site_id: str, key: str) -> dict[date, int]:
    with db.connect() as conn:
        return person_sends(conn, site_id, key)


def slots(db: Engine, site_id: str, scope: str, at: datetime, want: int, limit: int) -> int:
    with db.begin() as conn:
        return take_rate_slots(conn, site_id, scope, at, want, limit)


class TestDailyCap:
    def test_the_send_past_the_cap_is_refused(self, db: Engine, site_id: str) -> None:
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=2) == [True]
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=2) == [True]
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=2) == [False]
        assert sends(db, site_id, "p:ann") == {DAY: 2}
        # Someone else, and another site's Ann, are counted apart.
        assert reserve(db, site_id, [("p:bob", DAY)], per_day=2) == [True]
        assert reserve(db, f"{site_id}_other", [("p:ann", DAY)], per_day=2) == [True]

    def test_the_next_local_day_is_granted_again(self, db: Engine, site_id: str) -> None:
        reserve(db, site_id, [("p:ann", DAY), ("p:ann", DAY)], per_day=2)
        tomorrow = DAY + timedelta(days=1)
        assert reserve(db, site_id, [("p:ann", tomorrow)], per_day=2) == [True]
        assert sends(db, site_id, "p:ann") == {DAY: 2, tomorrow: 1}

    def test_the_day_is_the_persons_local_day(self, db: Engine, site_id: str) -> None:
        morning = datetime(2027, 1, 15, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
        evening = datetime(2027, 1, 15, 20, 0, tzinfo=UTC)  # 05:00 on the 16th in Tokyo
        for at in (morning, morning):
            wants = [("s:tokyo", local_day("Asia/Tokyo", at)), ("s:london", local_day("UTC", at))]
            assert reserve(db, site_id, wants, per_day=2, now=at) == [True, True]
        wants = [
            ("s:tokyo", local_day("Asia/Tokyo", evening)),
            ("s:london", local_day("UTC", evening)),
        ]
        # Tokyo's day has turned; London's has not.
        assert reserve(db, site_id, wants, per_day=2, now=evening) == [True, False]

    def test_five_browsers_of_one_profile_in_one_call(self, db: Engine, site_id: str) -> None:
        wants = [("p:ann", DAY)] * 3 + [("s:anon", DAY)] + [("p:ann", DAY)] * 2
        assert reserve(db, site_id, wants, per_day=3) == [True, True, True, True, False, False]
        assert sends(db, site_id, "p:ann") == {DAY: 3}
        assert sends(db, site_id, "s:anon") == {DAY: 1}

    def test_without_a_cap_everything_goes_and_nothing_is_counted(
        self, db: Engine, site_id: str
    ) -> None:
        assert reserve(db, site_id, [("p:ann", DAY)] * 5) == [True] * 5
        assert sends(db, site_id, "p:ann") == {}
        assert reserve(db, site_id, []) == []


class TestWeeklyCap:
    def test_seven_local_days_count_and_the_eighth_frees_the_first(
        self, db: Engine, site_id: str
    ) -> None:
        day = [DAY + timedelta(days=n) for n in range(9)]

        def send(n: int) -> bool:
            at = datetime.combine(day[n], NOW.timetz())
            return reserve(db, site_id, [("p:ann", day[n])], per_week=3, now=at)[0]

        assert [send(0), send(2), send(6)] == [True, True, True]
        assert send(6) is False  # three in the week ending on day 6
        assert send(7) is True  # day 0 is out of the week ending on day 7
        assert send(7) is False  # days 2, 6, 7
        assert send(8) is False  # days 2, 6, 7 still

    def test_both_caps_hold(self, db: Engine, site_id: str) -> None:
        assert reserve(db, site_id, [("p:ann", DAY)] * 3, per_day=2, per_week=3) == [
            True,
            True,
            False,
        ]
        next_day = DAY + timedelta(days=1)
        assert reserve(db, site_id, [("p:ann", next_day)] * 2, per_day=2, per_week=3) == [
            True,
            False,
        ]

    def test_only_recent_days_are_kept(self, db: Engine, site_id: str) -> None:
        reserve(db, site_id, [("p:ann", DAY)], per_day=1)
        later = DAY + timedelta(days=10)
        reserve(db, site_id, [("p:ann", later)], per_day=1, now=NOW + timedelta(days=10))
        assert sends(db, site_id, "p:ann") == {later: 1}


class TestRelease:
    def test_a_released_send_frees_its_slot(self, db: Engine, site_id: str) -> None:
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=1) == [True]
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=1) == [False]
        with db.begin() as conn:
            release_sends(conn, site_id, [("p:ann", DAY)], NOW)
        assert sends(db, site_id, "p:ann") == {}
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=1) == [True]

    def test_a_count_never_goes_below_zero(self, db: Engine, site_id: str) -> None:
        reserve(db, site_id, [("p:ann", DAY)], per_day=2)
        with db.begin() as conn:
            # Three given back for one sent; a person never counted; nothing at all.
            release_sends(conn, site_id, [("p:ann", DAY)] * 3 + [("p:nobody", DAY)], NOW)
            release_sends(conn, site_id, [], NOW)
        assert sends(db, site_id, "p:nobody") == {}
        assert reserve(db, site_id, [("p:ann", DAY)] * 3, per_day=2) == [True, True, False]

    def test_given_back_and_reserved_in_one_call(self, db: Engine, site_id: str) -> None:
        assert reserve(db, site_id, [("p:ann", DAY), ("p:bob", DAY)], per_day=1) == [True, True]
        with db.begin() as conn:
            # Ann's push failed: her slot is free for the next one in the same call.
            wants = [("p:ann", DAY), ("p:bob", DAY)]
            granted = reserve_sends(conn, site_id, wants, 1, 0, NOW, released=[("p:ann", DAY)])
        assert granted == [True, False]
        assert sends(db, site_id, "p:ann") == sends(db, site_id, "p:bob") == {DAY: 1}

    def test_a_rolled_back_reservation_counts_nothing(self, db: Engine, site_id: str) -> None:
        with db.connect() as conn, conn.begin() as transaction:
            assert reserve_sends(conn, site_id, [("p:ann", DAY)], 1, 0, NOW) == [True]
            transaction.rollback()
        assert reserve(db, site_id, [("p:ann", DAY)], per_day=1) == [True]


def window_rows(db: Engine, site_id: str) -> int:
    with db.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(RATE_WINDOWS).where(RATE_WINDOWS.c.site_id == site_id)
        ).scalar_one()


class TestThrottle:
    def test_slots_up_to_the_limit_then_the_next_minute(self, db: Engine, site_id: str) -> None:
        minute = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
        assert slots(db, site_id, "site", minute, 60, 100) == 60
        # Any instant of the minute is the same window.
        assert slots(db, site_id, "site", minute + timedelta(seconds=59.9), 60, 100) == 40
        assert slots(db, site_id, "site", minute + timedelta(seconds=30), 1, 100) == 0
        assert slots(db, site_id, "site", minute + timedelta(minutes=1), 60, 100) == 60
        # Another scope, and another site, have windows of their own.
        assert slots(db, site_id, "campaign:cmp_1", minute, 60, 100) == 60
        assert slots(db, f"{site_id}_other", "site", minute, 100, 100) == 100

    def test_no_limit_grants_all_and_counts_nothing(self, db: Engine, site_id: str) -> None:
        assert slots(db, site_id, "site", NOW, 5000, 0) == 5000
        assert slots(db, site_id, "site", NOW, 0, 10) == 0
        assert window_rows(db, site_id) == 0

    def test_campaign_and_site_limits_together(self, db: Engine, site_id: str) -> None:
        def take(campaign: str, want: int) -> int:
            with db.begin() as conn:
                limits = {f"campaign:{campaign}": 50, "site": 80}
                return take_rate_slots_within(conn, site_id, limits, NOW, want)

        assert take("cmp_a", 60) == 50  # the campaign's limit
        assert take("cmp_b", 60) == 30  # what the site has left
        # cmp_b was counted for the 30 it sent, not the 60 it asked for.
        assert slots(db, site_id, "campaign:cmp_b", NOW, 100, 50) == 20

    def test_old_windows_are_deleted_when_a_new_minute_begins(
        self, db: Engine, site_id: str
    ) -> None:
        start = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
        slots(db, site_id, "campaign:gone", start, 1, 10)
        for minute in range(3):
            slots(db, site_id, "site", start + timedelta(minutes=minute), 1, 10)
        assert window_rows(db, site_id) == 4
        slots(db, site_id, "site", start + timedelta(minutes=61), 1, 10)
        # 10:00 of both scopes is over an hour old; 10:01, 10:02 and 11:01 stay.
        assert window_rows(db, site_id) == 3


# Two OS processes racing. Module-level functions, so a spawned process can import them.


def reserve_repeatedly(url: str, site_id: str, keys: list[str], days: int, rounds: int) -> int:
    """For each of `days` days, `rounds` transactions each reserving one send for each of
    `keys`, in that order, under 5 a day; returns the sends granted. All on the last day's
    clock, as every process shares one: a day a week past it is no longer counted."""
    engine = create_sync_engine_for(url)
    granted = 0
    now = NOW + timedelta(days=days - 1)
    try:
        for n in range(days):
            day = DAY + timedelta(days=n)
            for _ in range(rounds):
                with engine.begin() as conn:
                    wants = [(key, day) for key in keys]
                    granted += sum(reserve_sends(conn, site_id, wants, 5, 0, now))
    finally:
        engine.dispose()
    return granted


def take_repeatedly(url: str, site_id: str, minutes: int, rounds: int, want: int) -> list[int]:
    """For each of `minutes` minutes, `rounds` transactions each taking `want` slots
    under 100 a minute; returns the slots granted per minute."""
    engine = create_sync_engine_for(url)
    granted = [0] * minutes
    try:
        for minute in range(minutes):
            for _ in range(rounds):
                with engine.begin() as conn:
                    at = NOW + timedelta(minutes=minute)
                    granted[minute] += take_rate_slots(conn, site_id, "site", at, want, 100)
    finally:
        engine.dispose()
    return granted


def _report(target: Callable[..., Any], args: tuple[Any, ...], start: Any, results: Any) -> None:
    start.wait(timeout=60)  # both processes begin together
    try:
        results.put(("ok", target(*args)))
    except BaseException as error:  # the test reads it instead of a bare exit code
        results.put(("error", repr(error)))


def in_two_processes(target: Callable[..., T], *calls: tuple[Any, ...]) -> list[T]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start = context.Barrier(len(calls))
    processes = [
        context.Process(target=_report, args=(target, args, start, results)) for args in calls
    ]
    try:
        for process in processes:
            process.start()
        answers = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # stuck (a deadlock would show here): not left behind
                process.kill()
    errors = [detail for kind, detail in answers if kind == "error"]
    assert not errors, errors
    return [value for _, value in answers]


class TestTwoProcesses:
    """Delivery processes share the counts. PostgreSQL serialises them on the rows they
    lock; SQLite on its write lock, which each function's first statement takes."""

    def test_never_more_than_the_cap_for_one_person(
        self, db: Engine, private_database_url: str, site_id: str
    ) -> None:
        # 50 transactions a day each, for a week; each wants both people, the processes
        # in opposite orders (rows are locked in key order, so they never deadlock).
        days = 7
        granted = in_two_processes(
            reserve_repeatedly,
            (private_database_url, site_id, ["p:ann", "p:bob"], days, 50),
            (private_database_url, site_id, ["p:bob", "p:ann"], days, 50),
        )
        assert sum(granted) == 2 * 5 * days
        last = DAY + timedelta(days=days - 1)
        assert sends(db, site_id, "p:ann")[last] == sends(db, site_id, "p:bob")[last] == 5

    def test_never_more_than_the_limit_in_a_minute(
        self, db: Engine, private_database_url: str, site_id: str
    ) -> None:
        # Both ask for 80 a minute, in 4 transactions of 20, minute after minute.
        minutes = 25
        first, second = in_two_processes(
            take_repeatedly,
            (private_database_url, site_id, minutes, 4, 20),
            (private_database_url, site_id, minutes, 4, 20),
        )
        assert [a + b for a, b in zip(first, second, strict=True)] == [100] * minutes
