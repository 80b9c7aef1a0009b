"""Segments at scale: load, count, estimate, match one, ingest, stream a run's audience.

    python -m benchmarks.segments --json             # PostgreSQL 1M profiles / 10M events,
                                                     # then SQLite 100k / 1M
    python -m benchmarks.segments --quick --json     # 20k / 200k and 5k / 50k: a smoke run
    python -m benchmarks.segments --only postgres --profiles 200000
    python -m benchmarks.segments --only postgres --profiles 100000 \
        --figures import,register --repeat 3           # a few minutes: those two, 3 times

Each database gets a fresh embedded stack (clarion.embedded: the services in this
process, delivery and the gateway in processes of their own, one database) and one site.
The data is generated here and loaded with COPY on PostgreSQL, then VACUUM ANALYZE and a
CHECKPOINT (executemany of plain rows on SQLite), never through the ORM:

- profiles with typed properties (city from 20 values, plan, age, vip, signup time);
- subscribers, 1.2 per profile: most profiles have one browser, some two, some none,
  and 4% are anonymous browsers; 3% unsubscribed;
- events over the last 90 days (Product Viewed, Added To Cart, Charged with an amount,
  Page Viewed), 95% by a profile, the rest by an anonymous browser.

Then, each through the public gRPC API of the running stack with the site's key:

- count_behaviour_s: EstimateReach(exact) of "did Added To Cart in the last 7 days AND
  did not Charged in the last 7 days AND city in three values", the median of three
  counts; count_behaviour_first_s is the first, right after the load (pages cold);
- count_property_s (and _first_s): likewise of "city in three values AND age > 30";
- estimate_reach_s / estimate_error_pct: EstimateReach (not exact) of the behaviour
  segment, and how far its reachable subscribers are from the exact count;
- match_one_profile_ms: MatchProfile of the behaviour segment for one profile, median
  over 50 random profiles;
- ingest_events_per_s: TrackEvents batches of 5000 (4 in flight), end to end;
- stream_1m_s / stream_rss_growth_mb: a run's audience as delivery reads it,
  ListAudienceMembers with the segment "reachable" over ~all subscribers, 5000 a
  page, until the last page; RSS growth of this process (server and client; the
  loader ran in a process of its own, so none of its memory is counted or reused);
- register_per_s: browsers registering through the gateway's HTTP API, 64 in flight,
  sent by a load generator in a process of its own (a lean HTTP/1.1 client, requests
  encoded before the clock starts, as wrk would send them);
- import_per_s: subscriptions imported as `clarion import subscribers` streams them,
  ImportSubscribers with --import-rows rows a message (the CLI's batch size), from a
  process of its own (as the CLI is), the messages built before the clock starts;
- reimport_per_s: the same file again right after each import run (a re-run after an
  interrupted import): every row already there as given, so every row `unchanged`.

--figures picks which figures to measure (the data is loaded whatever is picked, unless
--profiles 0); --repeat N (default 3: one run of either swings by a fifth on this
shared VM) measures register, import and reimport N times each, interleaved, and
reports the median, as the counts are, with every run and the load average before each
(`register_runs`, `import_runs`, `reimport_runs`), each with the CPU it cost a row: this process's
(`process_cpu_us`: the services; `gateway_cpu_us`: the gateway, which runs in a
process of its own as `clarion up` and compose run it), the PostgreSQL cluster's
(`database_cpu_us`) and the client's (`client_cpu_us`: the registrations' load
generator, the importing client), which a shared machine's load changes far less than the rate
(`register_process_cpu_us` etc.: their medians).

Targets on the 2-core machine (PostgreSQL at full size): behaviour count < 2 s,
estimate < 0.3 s within 2 %, one-profile match < 10 ms, ingest >= 20,000 events/s,
stream 1M with RSS growth < 100 MB, register >= 1,500/s, import >= 20,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.delivery import (
    Postgres,
    b64url,
    loadavg,
    process_tree_cpu_seconds,
    progress,
    status_mb,
)
from clarion.demo_segments import TARGET_CITIES  # the segment the demo sends to

FULL = {"postgres": (1_000_000, 10_000_000), "sqlite": (100_000, 1_000_000)}
QUICK = {"postgres": (20_000, 200_000), "sqlite": (5_000, 50_000)}
TARGETS = {
    "count_behaviour_s": ("<", 2.0),
    "estimate_reach_s": ("<", 0.3),
    "estimate_error_pct": ("<", 2.0),
    "match_one_profile_ms": ("<", 10.0),
    "ingest_events_per_s": (">=", 20_000),
    "stream_rss_growth_mb": ("<", 100.0),
    "register_per_s": (">=", 1_500),
    "import_per_s": (">=", 20_000),
}
CITIES = [
    "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Prague", "Warsaw", "Dublin",
    "Amsterdam", "Brussels", "Copenhagen", "Oslo", "Stockholm", "Helsinki", "Athens",
    "Budapest", "Zurich", "Milan", "Munich",
]  # fmt: skip
BROWSERS = ["chrome"] * 6 + ["safari"] * 2 + ["firefox", "edge"]
EVENT_NAMES = ["Product Viewed"] * 23 + ["Added To Cart"] * 20 + ["Charged"] * 7 + ["Page Viewed"] * 50
CATEGORIES = ["shoes", "shirts", "bags", "hats", "socks"]
HISTORY_DAYS = 90
COPY_ROWS = 50_000


# --- data -----------------------------------------------------------------------------


class Generated:
    """What was generated, kept small: counts and a sample of profile ids."""

    def __init__(self) -> None:
        self.profiles = 0
        self.subscribers = 0
        self.events = 0
        self.profile_sample: list[str] = []


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _profile_rows(site_id: str, count: int, now: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for index in range(count):
        signup = now - timedelta(days=rng.uniform(0, 720))
        properties = {
            "city": CITIES[min(int(rng.paretovariate(1.2)) - 1, len(CITIES) - 1)]
            if rng.random() < 0.6
            else rng.choice(CITIES),
            "plan": rng.choice(("free", "free", "pro", "team")),
            "age": float(rng.randint(16, 80)),
            "vip": rng.random() < 0.05,
            "signup": _iso(signup.astimezone(UTC)),
        }
        yield (site_id, f"u{index}", json.dumps(properties), rng.random() < 0.001, signup, now)


def _subscriber_rows(
    site_id: str, profiles: int, now: datetime, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    """1.2 subscribers a profile on average: ~70% one, ~23% two, ~5% none, plus
    anonymous browsers (4% of all)."""
    number = 0

    def row(profile_id: str | None) -> tuple[Any, ...]:
        nonlocal number
        number += 1
        created = now - timedelta(days=rng.uniform(0, 365))
        unsubscribed = rng.random() < 0.03
        return (
            f"sub_{number:032x}",
            site_id,
            f"https://fcm.googleapis.com/fcm/send/bench-{number}-{secrets.token_hex(6)}",
            b"\x04" + rng.randbytes(64),
            rng.randbytes(16),
            rng.choice(BROWSERS),
            "Europe/Berlin",
            profile_id,
            "unsubscribed" if unsubscribed else "active",
            "bench" if unsubscribed else None,
            now if unsubscribed else None,
            created,
            now,
        )

    for index in range(profiles):
        draw = rng.random()
        browsers = 0 if draw < 0.05 else 2 if draw < 0.28 else 1
        for _ in range(browsers):
            yield row(f"u{index}")
        if rng.random() < 0.05:
            yield row(None)


def _event_rows(
    site_id: str, count: int, profiles: int, anonymous: list[str], now: datetime, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    """Events in chunks drawn from pools (times, amounts): the generator, not the
    database, would otherwise be what the load measures."""
    times = [now - timedelta(seconds=rng.uniform(60, HISTORY_DAYS * 86400)) for _ in range(200_000)]
    charged = [json.dumps({"amount": round(rng.uniform(5, 300), 2)}) for _ in range(5000)]
    viewed = [json.dumps({"category": c}) for c in CATEGORIES]
    done = 0
    while done < count:
        size = min(COPY_ROWS, count - done)
        names = rng.choices(EVENT_NAMES, k=size)
        moments = rng.choices(times, k=size)
        people = [rng.randrange(profiles) for _ in range(size)]
        for offset in range(size):
            name = names[offset]
            if anonymous and people[offset] % 20 == 0:
                profile_id, subscriber_id = None, anonymous[people[offset] % len(anonymous)]
            else:
                profile_id, subscriber_id = f"u{people[offset]}", None
            properties = rng.choice(charged) if name == "Charged" else rng.choice(viewed)
            occur = moments[offset]
            yield (site_id, f"ev{done + offset}", name, profile_id, subscriber_id, occur, properties, occur)
        done += size


def _copy_text(value: Any) -> str:
    """A value in COPY's text format (the generated values need no escaping)."""
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


PROFILE_COLUMNS = ("site_id", "profile_id", "properties", "test_profile", "create_time", "update_time")
SUBSCRIBER_COLUMNS = (
    "subscriber_id", "site_id", "endpoint", "p256dh", "auth", "browser", "timezone",
    "profile_id", "state", "unsubscribe_reason", "unsubscribe_time", "create_time", "update_time",
)  # fmt: skip
EVENT_COLUMNS = (
    "site_id", "event_id", "name", "profile_id", "subscriber_id", "occur_time", "properties",
    "receive_time",
)  # fmt: skip
TYPES = [
    ("profile", "city", "string"), ("profile", "plan", "string"), ("profile", "age", "number"),
    ("profile", "vip", "boolean"), ("profile", "signup", "timestamp"),
    ("event:Charged", "amount", "number"), ("event:Added To Cart", "category", "string"),
    ("event:Product Viewed", "category", "string"), ("event:Page Viewed", "category", "string"),
]  # fmt: skip


def _connect(url: str) -> Any:
    """A plain psycopg connection (autocommit) to the database of SQLAlchemy URL `url`."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, dbname=parsed.database, autocommit=True,
    )  # fmt: skip


def load_postgres(url: str, site_id: str, profiles: int, events: int, rng: random.Random) -> Generated:
    generated = Generated()
    now = datetime.now(UTC)
    with _connect(url) as connection:
        def copy(table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> int:
            done, lines = 0, []
            with connection.cursor() as cursor, cursor.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            ) as copying:
                for row in rows:
                    lines.append("\t".join(map(_copy_text, row)))
                    if len(lines) == COPY_ROWS:
                        copying.write("\n".join(lines) + "\n")
                        done += len(lines)
                        lines.clear()
                if lines:
                    copying.write("\n".join(lines) + "\n")
                    done += len(lines)
            return done

        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO segment_property_types VALUES (%s, %s, %s, %s, now())",
                [(site_id, scope, name, type_) for scope, name, type_ in TYPES],
            )
        progress(f"  COPY {profiles:,} profiles")
        generated.profiles = copy("segment_profiles", PROFILE_COLUMNS, _profile_rows(site_id, profiles, now, rng))
        progress("  COPY subscribers")
        anonymous: list[str] = []

        def subscribers() -> Iterator[tuple[Any, ...]]:
            for row in _subscriber_rows(site_id, profiles, now, rng):
                if row[7] is None and len(anonymous) < 200_000:
                    anonymous.append(row[0])
                yield row

        generated.subscribers = copy("segment_subscribers", SUBSCRIBER_COLUMNS, subscribers())
        progress(f"  COPY {events:,} events")
        generated.events = copy(
            "segment_events", EVENT_COLUMNS, _event_rows(site_id, events, profiles, anonymous, now, rng)
        )
        # As autovacuum would soon: statistics, and the visibility map that lets the
        # events' covering index answer without the table.
        progress("  VACUUM ANALYZE")
        connection.execute("VACUUM ANALYZE")
        # The load's dirty pages written now, as pgbench does before it measures: else
        # the checkpoint the load's WAL started writes gigabytes while the figures run,
        # on the cores they are measured on.
        progress("  CHECKPOINT")
        connection.execute("CHECKPOINT")
    generated.profile_sample = [f"u{rng.randrange(profiles)}" for _ in range(50)]
    return generated


def load_sqlite(path: str, site_id: str, profiles: int, events: int, rng: random.Random) -> Generated:
    import sqlite3

    generated = Generated()
    now = datetime.now(UTC)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")

    def sqlite_value(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def insert(table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> int:
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        done, batch = 0, []
        for row in rows:
            batch.append(tuple(sqlite_value(v) for v in row))
            if len(batch) == COPY_ROWS:
                connection.executemany(statement, batch)
                done += len(batch)
                batch.clear()
        connection.executemany(statement, batch)
        connection.commit()
        return done + len(batch)

    connection.executemany(
        "INSERT INTO segment_property_types VALUES (?, ?, ?, ?, ?)",
        [(site_id, s, n, t, sqlite_value(now)) for s, n, t in TYPES],
    )
    progress(f"  insert {profiles:,} profiles")
    generated.profiles = insert("segment_profiles", PROFILE_COLUMNS, _profile_rows(site_id, profiles, now, rng))
    anonymous: list[str] = []

    def subscribers() -> Iterator[tuple[Any, ...]]:
        for row in _subscriber_rows(site_id, profiles, now, rng):
            if row[7] is None:
                anonymous.append(row[0])
            yield row

    progress("  insert subscribers")
    generated.subscribers = insert("segment_subscribers", SUBSCRIBER_COLUMNS, subscribers())
    progress(f"  insert {events:,} events")
    generated.events = insert(
        "segment_events", EVENT_COLUMNS, _event_rows(site_id, events, profiles, anonymous, now, rng)
    )
    connection.execute("ANALYZE")
    connection.close()
    generated.profile_sample = [f"u{rng.randrange(profiles)}" for _ in range(50)]
    return generated


# --- the definitions ------------------------------------------------------------------


def behaviour_definition() -> Any:
    """The segment `clarion demo --scenario segments` sends to: added to cart in the last
    7 days, not charged in them, city in Paris, Berlin or Madrid."""
    from clarion.demo_segments import definition
    from clarion.segment.v1 import segment_pb2

    return segment_pb2.AudienceSelector(definition=definition())


def property_definition() -> Any:
    from clarion.segment.v1 import profile_pb2, segment_pb2

    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(
            condition=segment_pb2.Condition(
                all=segment_pb2.ConditionGroup(
                    conditions=[
                        segment_pb2.Condition(
                            property=segment_pb2.PropertyCondition(
                                name="city",
                                operator=segment_pb2.PROPERTY_OPERATOR_IN,
                                values=[profile_pb2.PropertyValue(string_value=c) for c in TARGET_CITIES],
                            )
                        ),
                        segment_pb2.Condition(
                            property=segment_pb2.PropertyCondition(
                                name="age",
                                operator=segment_pb2.PROPERTY_OPERATOR_GREATER_THAN,
                                values=[profile_pb2.PropertyValue(number_value=30)],
                            )
                        ),
                    ]
                )
            )
        )
    )


def reachable_definition() -> Any:
    from clarion.segment.v1 import segment_pb2

    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(
            condition=segment_pb2.Condition(
                subscriber=segment_pb2.SubscriberCondition(reachable=True)
            )
        )
    )


# --- one database ---------------------------------------------------------------------


async def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call
    return time.perf_counter() - started, result


FIGURES = ("counts", "estimate", "match", "ingest", "stream", "register", "import", "reimport")


@dataclass(frozen=True)
class Options:
    quick: bool = False
    figures: frozenset[str] = frozenset(FIGURES)
    repeat: int = 1
    import_rows: int = 1000
    import_count: int | None = None
    register_count: int | None = None


async def measure(
    database: str,
    url: str,
    data_dir: Path,
    profiles: int,
    events: int,
    options: Options,
    database_cpu: Callable[[], float] = lambda: 0.0,
) -> dict[str, Any]:
    from clarion.embedded import EmbeddedStack
    from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
    from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
    from clarion.segment.v1 import segment_service_pb2 as pb
    from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
    from services.campaign.admin import create_site
    from services.kit.auth import internal_metadata
    from services.kit.config import Settings
    from services.kit.grpcserver import client_channel

    settings = Settings(
        data_dir=data_dir, database_url=url, log_level="WARNING", log_format="console"
    )
    settings.allow_insecure_endpoints = True
    # The gateway in a process of its own, as `clarion serve` and compose run it.
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True, gateway_in_process=False)
    result: dict[str, Any] = {"database": database, "profiles": profiles, "events_loaded": events}
    quick = options.quick
    # Without loaded data only the figures that bring their own can be measured.
    figures = (
        options.figures if profiles else options.figures & {"register", "import", "reimport"}
    )
    try:
        site = await create_site(settings, "Segments benchmark", "mailto:bench@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        rng = random.Random(20261130)
        generated = Generated()
        if profiles:
            progress(f"{database}: loading {profiles:,} profiles, {events:,} events")
            started = time.perf_counter()
            # The loader runs in a process of its own: its memory never becomes this
            # process's, so the streaming RSS growth below is the service's and the run's.
            loader, target = (
                (load_postgres, url) if database == "postgres"
                else (load_sqlite, url.removeprefix("sqlite:///"))
            )  # fmt: skip
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                generated = await asyncio.get_running_loop().run_in_executor(
                    pool, loader, target, site.site_id, profiles, events, rng
                )
            result["load_seconds"] = round(time.perf_counter() - started, 1)
        result["subscribers"] = generated.subscribers
        channel = client_channel(stack.address("segment"))
        stub = pb_grpc.SegmentServiceStub(channel)
        internal = internal_pb_grpc.SegmentInternalServiceStub(channel)
        behaviour = behaviour_definition()

        async def count(name: str, definition: Any) -> Any:
            """An exact count three times: the first (right after the load, pages still
            cold) and the median, as a marketer's repeated counts see it."""
            runs = [
                await timed(
                    stub.EstimateReach(
                        pb.EstimateReachRequest(audience=definition, exact=True),
                        metadata=metadata, timeout=600,
                    )
                )  # fmt: skip
                for _ in range(3)
            ]
            result[f"count_{name}_first_s"] = round(runs[0][0], 3)
            result[f"count_{name}_s"] = round(statistics.median(s for s, _ in runs), 3)
            return runs[0][1]

        if "counts" in figures or "estimate" in figures:
            exact = await count("behaviour", behaviour)
            result["behaviour_people"] = exact.profiles
            result["behaviour_reachable"] = exact.reachable_subscribers
        if "counts" in figures:
            counted = await count("property", property_definition())
            result["property_people"] = counted.profiles
        if "estimate" in figures:
            estimates = []
            for _ in range(3):
                seconds, estimate = await timed(
                    stub.EstimateReach(
                        pb.EstimateReachRequest(audience=behaviour), metadata=metadata, timeout=600
                    )
                )
                estimates.append((seconds, estimate))
            seconds, estimate = sorted(estimates, key=lambda pair: pair[0])[1]
            result["estimate_reach_s"] = round(seconds, 3)
            result["estimate_exact"] = estimate.exact
            result["estimate_sample_fraction"] = round(estimate.sample_fraction, 4)
            result["estimate_margin_of_error_pct"] = round(estimate.margin_of_error_pct, 2)
            result["estimate_error_pct"] = round(
                100 * abs(estimate.reachable_subscribers - exact.reachable_subscribers)
                / max(exact.reachable_subscribers, 1),
                2,
            )

        if "match" in figures:
            matches = []
            for profile_id in generated.profile_sample:
                seconds, _ = await timed(
                    stub.MatchProfile(
                        pb.MatchProfileRequest(audience=behaviour, profile_id=profile_id),
                        metadata=metadata, timeout=60,
                    )  # fmt: skip
                )
                matches.append(seconds)
            result["match_one_profile_ms"] = round(1000 * statistics.median(matches), 2)

        if "ingest" in figures:
            wal_before = wal_bytes(url)
            rate, process_cpu_us, database_cpu_us = await ingest(
                stub, metadata, generated, quick, database_cpu
            )
            result["ingest_events_per_s"] = rate
            result["ingest_process_cpu_us"] = process_cpu_us
            result["ingest_database_cpu_us"] = database_cpu_us
            if wal_before is not None:
                # The log an event wrote: its row, its index entries, and the first
                # change since the checkpoint of each page it touched (a full image).
                wal_after = wal_bytes(url)
                assert wal_after is not None
                result["ingest_wal_bytes"] = round((wal_after - wal_before) / INGEST_EVENTS[quick])

        if "stream" in figures:
            progress(f"{database}: streaming a run's audience")
            before = status_mb("VmRSS")
            peak = before
            snapshot = pb_timestamp(datetime.now(UTC))
            request = internal_pb.ListAudienceMembersRequest(
                snapshot_time=snapshot,
                audience=reachable_definition(),
                audience_key=f"bench_{uuid.uuid4().hex}",
                page_size=5000,
            )
            members = 0
            started = time.perf_counter()
            internal_meta = internal_metadata(settings.internal_token_value, site.site_id)
            while True:
                page = await internal.ListAudienceMembers(
                    request, metadata=internal_meta, timeout=600
                )
                members += len(page.members)
                peak = max(peak, status_mb("VmRSS"))
                if not page.next_page_token:
                    break
                request.page_token = page.next_page_token
            result["stream_members"] = members
            seconds = time.perf_counter() - started
            result["stream_1m_s"] = round(seconds * 1_000_000 / max(members, 1), 2)
            result["stream_s"] = round(time.perf_counter() - started, 2)
            result["stream_rss_growth_mb"] = round(peak - before, 1)
        await channel.close()

        # Registration and import: interleaved repetitions, each with new browsers, each
        # with the load average before it (the machine may be shared).
        register_count = options.register_count or (1000 if quick else 10_000)
        import_count = options.import_count or (5000 if quick else 100_000)
        runs: dict[str, list[dict[str, Any]]] = {"register": [], "import": [], "reimport": []}
        gateway_pid = stack.gateway_process.process.pid if stack.gateway_process else None

        def gateway_cpu() -> float:
            return process_tree_cpu_seconds(gateway_pid) if gateway_pid is not None else 0.0

        for repetition in range(options.repeat):
            for figure in ("register", "import", "reimport"):
                if figure not in figures:
                    continue
                progress(f"{database}: {figure} run {repetition + 1} of {options.repeat}")
                # The VM's speed right before this run: it drifts within a full run.
                loop_before = reference_loop_seconds()
                load_before = loadavg()
                cpu_before, db_before = time.process_time(), database_cpu()
                gateway_before = gateway_cpu()
                client_cpu_us = None
                if figure == "register":
                    rate, client_cpu_us = await register_through_gateway(
                        stack, site.site_id, register_count, repetition
                    )
                else:
                    rate, client_cpu_us = await import_subscribers(
                        stack, metadata, import_count, options.import_rows, repetition,
                        rerun=figure == "reimport",
                    )  # fmt: skip
                count = register_count if figure == "register" else import_count
                # CPU a row, which a shared machine's load changes far less than the
                # rate: this process (the services), the gateway's, the PostgreSQL
                # cluster (0: not ours) and the client's (the registrations' load
                # generator, the importing client).
                runs[figure].append({
                    "per_s": rate, "loadavg_before": load_before,
                    "reference_loop_s_before": loop_before,
                    "process_cpu_us": round((time.process_time() - cpu_before) * 1e6 / count, 1),
                    "gateway_cpu_us": round((gateway_cpu() - gateway_before) * 1e6 / count, 1),
                    "database_cpu_us": round((database_cpu() - db_before) * 1e6 / count, 1),
                    **({} if client_cpu_us is None else {"client_cpu_us": client_cpu_us}),
                })  # fmt: skip
        for figure, name in (("register", "register_per_s"), ("import", "import_per_s"),
                             ("reimport", "reimport_per_s")):  # fmt: skip
            if runs[figure]:
                result[name] = round(statistics.median(r["per_s"] for r in runs[figure]), 1)
                for cpu in ("process_cpu_us", "gateway_cpu_us", "database_cpu_us",
                            "client_cpu_us"):
                    if cpu in runs[figure][0]:
                        result[f"{figure}_{cpu}"] = statistics.median(
                            r[cpu] for r in runs[figure]
                        )
                result[f"{figure}_runs"] = runs[figure]
        if runs["import"]:
            result["import_rows_per_message"] = options.import_rows
    finally:
        await stack.stop()
    return result


def pb_timestamp(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


INGEST_EVENTS = {False: 200_000, True: 20_000}  # by --quick


def wal_bytes(url: str) -> int | None:
    """Bytes of write-ahead log PostgreSQL has written so far (the cluster's insert
    position; pg_stat_wal's counters lag, flushed by each backend when it idles); None
    on SQLite."""
    if not url.startswith("postgresql"):
        return None
    with _connect(url) as connection:
        row = connection.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


async def ingest(
    stub: Any,
    metadata: Any,
    generated: Generated,
    quick: bool,
    database_cpu: Callable[[], float] = lambda: 0.0,
) -> tuple[float, float, float]:
    """TrackEvents in batches of 5000, 4 calls in flight: events a second, and the CPU
    an event cost this process (the service, the client's encoding) and the PostgreSQL
    cluster, which the machine's load changes less than the rate."""
    from clarion.segment.v1 import profile_pb2
    from clarion.segment.v1 import segment_service_pb2 as pb

    total = INGEST_EVENTS[quick]
    batch_size, in_flight = 5000, 4
    now = datetime.now(UTC)
    rng = random.Random(7)
    batches = []
    for start in range(0, total, batch_size):
        batches.append(
            pb.TrackEventsRequest(
                events=[
                    profile_pb2.Event(
                        event_id=f"ingest-{start + i}-{uuid.uuid4().hex[:8]}",
                        name="Product Viewed",
                        profile_id=rng.choice(generated.profile_sample),
                        occur_time=pb_timestamp(now - timedelta(seconds=rng.uniform(0, 3600))),
                        properties=[
                            profile_pb2.Property(
                                name="category",
                                value=profile_pb2.PropertyValue(string_value=rng.choice(CATEGORIES)),
                            )
                        ],
                    )
                    for i in range(batch_size)
                ]
            )
        )
    semaphore = asyncio.Semaphore(in_flight)

    async def send(request: Any) -> None:
        async with semaphore:
            response = await stub.TrackEvents(request, metadata=metadata, timeout=300)
            refused = [r for r in response.results if not r.ok]
            if refused:
                raise RuntimeError(f"TrackEvents refused {len(refused)}: {refused[0].message}")

    started, cpu_before, db_before = time.perf_counter(), time.process_time(), database_cpu()
    await asyncio.gather(*(send(b) for b in batches))
    seconds = time.perf_counter() - started
    return (
        round(total / seconds, 1),
        round((time.process_time() - cpu_before) * 1e6 / total, 1),
        round((database_cpu() - db_before) * 1e6 / total, 1),
    )


def _subscription(rng: random.Random, index: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": f"https://fcm.googleapis.com/fcm/send/register-{index}-{secrets.token_hex(8)}",
        "keys": {"p256dh": b64url(point), "auth": b64url(rng.randbytes(16))},
    }


def _register_load(
    url: str, count: int, in_flight: int, repetition: int = 0
) -> tuple[float, float]:
    """The browsers' side, run in a process of its own (as a load generator would be):
    `count` subscribe calls by browsers new to the site on `in_flight` kept-alive
    connections, one request at a time each. Returns registrations per second and the CPU
    this process spent a request (µs).

    A lean HTTP/1.1 client, as wrk or h2load would be: each request encoded before the
    clock starts, the answer's head read in one call. On two cores the load generator
    takes its CPU from what it measures; aiohttp's client spent 240-280 µs of CPU a
    request, nearly half of what the gateway and the services spent."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    def encoded(body: dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def run() -> tuple[float, float]:
        rng = random.Random(3 + repetition)
        requests = [
            encoded({"subscription": _subscription(rng, repetition * count + i),
                     "browser": "chrome", "timezone": "UTC"})
            for i in range(count)
        ]  # fmt: skip
        pending = iter(requests)

        async def connection() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                for request in pending:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = head[9:12]
                    length = _CONTENT_LENGTH.search(head)
                    body = await reader.readexactly(int(length.group(1))) if length else b""
                    if status not in (b"200", b"201") or b'"subscriber_id"' not in body:
                        raise RuntimeError(f"gateway: {head[:12].decode()} {body[:300]!r}")
            finally:
                writer.close()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(connection() for _ in range(in_flight)))
        seconds = time.perf_counter() - started
        return count / seconds, (time.process_time() - cpu) * 1e6 / count

    return asyncio.run(run())


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def register_through_gateway(
    stack: Any, site_id: str, count: int, repetition: int = 0
) -> tuple[float, float]:
    """POST /v1/sites/{site}/subscriptions, 64 in flight, from another process: the rate
    and the load generator's CPU a registration (µs)."""
    url = f"{stack.gateway_url}/v1/sites/{site_id}/subscriptions"
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        rate, client_cpu_us = await asyncio.get_running_loop().run_in_executor(
            pool, _register_load, url, count, 64, repetition
        )
    return round(rate, 1), round(client_cpu_us, 1)


def _import_load(
    address: str,
    metadata: Any,
    count: int,
    rows_per_message: int,
    repetition: int,
    rerun: bool = False,
) -> tuple[float, float]:
    """The importing client's side, run in a process of its own (as `clarion import`
    is): ImportSubscribers with messages of `rows_per_message` rows on one
    bidirectional stream, every answer read; endpoints new to the site (each repetition
    its own: the rows are a function of it), the messages built before the clock
    starts. `rerun`: that repetition's rows again, each expected `unchanged`. Returns
    rows a second and the CPU this process spent a row (µs)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from clarion.common.v1 import common_pb2
    from clarion.segment.v1 import segment_service_pb2 as pb
    from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
    from services.kit.grpcserver import client_channel

    rng = random.Random(5 + repetition)
    key = ec.derive_private_key(rng.getrandbits(255) + 1, ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    requests = [
        pb.ImportSubscribersRequest(
            subscribers=[
                pb.ImportedSubscriber(
                    row=start + i + 1,
                    subscriber=pb.RegisterSubscriberRequest(
                        push_subscription=common_pb2.PushSubscription(
                            endpoint="https://fcm.googleapis.com/fcm/send/"
                            f"import-{repetition}-{start + i}-{rng.getrandbits(40):x}",
                            p256dh=point,
                            auth=rng.randbytes(16),
                        ),
                        browser=common_pb2.BROWSER_CHROME,
                        timezone="UTC",
                    ),
                )
                for i in range(min(rows_per_message, count - start))
            ]
        )
        for start in range(0, count, rows_per_message)
    ]

    async def run() -> tuple[float, float]:
        async with client_channel(address) as channel:
            stub = pb_grpc.SegmentServiceStub(channel)
            started, cpu = time.perf_counter(), time.process_time()
            stored = unchanged = 0
            async for response in stub.ImportSubscribers(
                iter(requests), metadata=metadata, timeout=600
            ):
                if response.result.rejected:
                    first = response.result.rejected[0]
                    raise RuntimeError(
                        f"ImportSubscribers refused row {first.row}: {first.message}"
                    )
                stored += response.result.stored
                unchanged += response.result.unchanged
            seconds = time.perf_counter() - started
            client_cpu_us = (time.process_time() - cpu) * 1e6 / count
        expected = (0, count) if rerun else (count, 0)
        if (stored, unchanged) != expected:
            raise RuntimeError(
                f"ImportSubscribers stored {stored} and left {unchanged} unchanged of "
                f"{count} rows, expected {expected[0]} and {expected[1]}"
            )
        return count / seconds, client_cpu_us

    return asyncio.run(run())


async def import_subscribers(
    stack: Any,
    metadata: Any,
    count: int,
    rows_per_message: int = 1000,
    repetition: int = 0,
    *,
    rerun: bool = False,
) -> tuple[float, float]:
    """ImportSubscribers as `clarion import subscribers` streams a file, from another
    process (`rerun`: the file of `repetition` again): the rate and the client's CPU a
    row (µs)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        rate, client_cpu_us = await asyncio.get_running_loop().run_in_executor(
            pool, _import_load, stack.address("segment"), tuple(metadata), count,
            rows_per_message, repetition, rerun,
        )  # fmt: skip
    return round(rate, 1), round(client_cpu_us, 1)


# --- main -----------------------------------------------------------------------------


def reference_loop_seconds() -> float:
    """Seconds for a fixed pure-Python loop on one core: this shared VM's speed drifts by
    a third from one hour to the next, so runs are compared with this beside them."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return round(time.perf_counter() - started, 3)


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    met = {}
    for name, (sense, target) in TARGETS.items():
        value = result.get(name)
        if isinstance(value, int | float):
            met[name] = value < target if sense == "<" else value >= target
    if "stream_1m_s" in result:
        met["stream_1m_s"] = True  # no target; RSS growth is the criterion
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=("postgres", "sqlite"))
    parser.add_argument(
        "--profiles", type=int, help="profiles (events: 10 per profile); 0 loads nothing"
    )
    parser.add_argument(
        "--figures", default=",".join(FIGURES),
        help=f"comma-separated, of {','.join(FIGURES)} (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3, help="register/import runs (median; default 3)"
    )
    parser.add_argument(
        "--import-rows", type=int, default=1000, help="rows per ImportSubscribers message"
    )
    parser.add_argument("--import-count", type=int, help="subscriptions per import run")
    parser.add_argument("--register-count", type=int, help="registrations per register run")
    args = parser.parse_args()
    figures = frozenset(f.strip() for f in args.figures.split(",") if f.strip())
    if unknown := figures - set(FIGURES):
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if "reimport" in figures and "import" not in figures:
        parser.error("reimport imports each import run's file again: pick import too")
    options = Options(
        quick=args.quick, figures=figures, repeat=args.repeat, import_rows=args.import_rows,
        import_count=args.import_count, register_count=args.register_count,
    )  # fmt: skip
    from services.kit.logging import configure_logging

    configure_logging("console", "WARNING")
    sizes = dict(QUICK if args.quick else FULL)
    if args.profiles is not None:
        sizes = {db: (args.profiles, args.profiles * 10) for db in sizes}
    report: dict[str, Any] = {
        "benchmark": "segments",
        "loadavg_start": loadavg(),
        "cpus": os.cpu_count(),
        "reference_loop_s": reference_loop_seconds(),
        "figures": sorted(figures),
        "targets": {name: f"{sense} {target}" for name, (sense, target) in TARGETS.items()},
    }
    with tempfile.TemporaryDirectory(prefix="clarion-bench-segments-") as tmp:
        os.chmod(tmp, 0o755)  # the postgres user must reach its cluster directory
        root = Path(tmp)
        for database in ("postgres", "sqlite"):
            if args.only and args.only != database:
                continue
            profiles, events = sizes[database]
            cluster = None
            try:
                if database == "postgres":
                    cluster = Postgres.start(root / "pg")
                    url = cluster.new_database()
                    report["postgres_server"] = cluster.description
                else:
                    url = f"sqlite:///{root / 'sqlite' / 'clarion.db'}"
                    (root / "sqlite").mkdir()
                result = asyncio.run(
                    measure(
                        database, url, root / database, profiles, events, options,
                        cluster.cpu_seconds if cluster is not None else lambda: 0.0,
                    )  # fmt: skip
                )
                result["loadavg_end"] = loadavg()
                result["targets_met"] = verdicts(result) if not args.quick else {}
                report[database] = result
            except Exception as error:  # noqa: BLE001 - the report says what failed
                report[database] = {"error": f"{type(error).__name__}: {error}"}
                progress(f"{database}: FAILED: {type(error).__name__}: {error}")
            finally:
                if cluster is not None:
                    cluster.stop()
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        print(json.dumps(report, indent=2), flush=True)
    failed = [db for db in ("postgres", "sqlite") if "error" in report.get(db, {})]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
