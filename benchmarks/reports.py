"""Campaign reports on a big run: GetRunReport and GetCampaignReport answer from
pre-aggregated counters, not a scan per request.

    python -m benchmarks.reports --json                    # PostgreSQL, 1M recipients
    python -m benchmarks.reports --database sqlite --recipients 2000 --json   # a smoke run

One reporting server runs in this process on a fresh database (PostgreSQL from
--postgres-url, CLARION_BENCH_POSTGRES_URL or CLARION_TEST_POSTGRES_URL, else a
throwaway cluster; SQLite in a temporary directory). The load goes through the store's
own recording path (ReportingStore.insert_outcomes / insert_engagement_events: 10,000-row
JSON batches, 4 in flight, each keeping the counters in its transaction), the way
delivery's and the gateway's calls are stored, minus gRPC:

- one run of `--recipients` recipients (the campaign's big run) plus 9 runs of 1,000:
  90 % sent, 5 % failed (410 / 404 / timeout), 4 % suppressed (DND, frequency cap,
  control group), 1 % expired; Chrome 60 %, Firefox 20 %, Edge 10 %, Safari 10 %;
  variants a / b; sends spread over 3 hours;
- engagement of sent recipients: 40 % viewed, 5 % clicked (body, action_1, action_2),
  10 % closed; the first engagement batch is stored before its outcomes.

Then `--calls` GetRunReport calls for the big run and as many GetCampaignReport calls,
one at a time over real gRPC with a site key: p50, p99 and max in ms. Target: p99 under
200 ms on PostgreSQL with 1M recipients. The report's numbers are checked against what
was loaded (`report_matches_load`).

    python -m benchmarks.reports --figure outcomes --outcomes 50000 --json   # recording cost

The `outcomes` figure: what recording an outcome costs. A reporting server runs in a
process of its own (so its CPU is its alone), on a fresh database; this process sends
`--outcomes` outcomes of one run through the real gRPC RecordDeliveryOutcomes, 5,000 a
call (delivery's batch), one call at a time, the way delivery's outbox relay does: the
same status, reason and browser mix as above, variants a / b, a profile on half of them,
a send time shared by 500 outcomes, a conversion goal on the run, and 2 % of the
recipients with engagement recorded before their outcome (moved by it). One call before
the timed window warms the server up. Figures: CPU (user + system) per outcome in µs of
the server process and of PostgreSQL (a throwaway cluster of ours: its postmaster's
process tree, from /proc; not measured for a server given by URL), wall time, and the
load average (2 cores shared: read the figures against it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TARGET_MS = 200.0
BATCH = 10_000
IN_FLIGHT = 4
SMALL_RUNS = 9
SMALL_RUN_SIZE = 1_000
STATUSES = (
    # (share, status, reason)
    (0.90, "sent", ""),
    (0.02, "failed", "push_service_410"),
    (0.02, "failed", "push_service_404"),
    (0.01, "failed", "timeout"),
    (0.02, "suppressed", "dnd"),
    (0.01, "suppressed", "frequency_cap"),
    (0.01, "suppressed", "control_group"),
    (0.01, "expired", "expired_ttl"),
)
BROWSERS = (("chrome", 0.6), ("firefox", 0.2), ("edge", 0.1), ("safari", 0.1))


class _Sites:
    """The one site of the benchmark (an API key for the public calls)."""

    def __init__(self, site_id: str, api_key: str) -> None:
        self._keys = {api_key: site_id}

    async def resolve(self, api_key: str) -> str | None:
        return self._keys.get(api_key)


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    roll, acc = rng.random(), 0.0
    for item in weighted:
        acc += item[0]
        if roll < acc:
            return item
    return weighted[-1]


def _browser(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for name, share in BROWSERS:
        acc += share
        if roll < acc:
            return name
    return BROWSERS[-1][0]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(p99, 2),
        "max": round(ordered[-1], 2),
    }


async def _load(
    store: Any, site_id: str, campaign_id: str, runs: list[tuple[str, int]], start: datetime
) -> dict[str, int]:
    """Generates and stores every run's outcomes and engagement; returns the totals
    expected over the campaign (and of the big run, prefixed "run_")."""
    from services.reporting.store import (
        DeliveryStatus,
        EngagementKind,
        EngagementRecord,
        OutcomeRecord,
    )

    rng = random.Random(11)
    expected: dict[str, int] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)
    pending: list[asyncio.Task[Any]] = []

    async def store_batch(kind: str, batch: list[Any]) -> None:
        async with slots:
            if kind == "outcomes":
                await store.insert_outcomes(site_id, batch)
            else:
                await store.insert_engagement_events(site_id, batch, start)

    def submit(kind: str, batch: list[Any]) -> None:
        pending.append(asyncio.create_task(store_batch(kind, batch)))

    def count(name: str, big: bool, n: int = 1) -> None:
        expected[name] = expected.get(name, 0) + n
        if big:
            expected["run_" + name] = expected.get("run_" + name, 0) + n

    first_events: list[Any] | None = None
    for index, (run_id, size) in enumerate(runs):
        big = index == 0
        outcomes: list[Any] = []
        events: list[Any] = []
        for n in range(size):
            subscriber_id = f"sub_{n:08d}"
            _, status, reason = _pick(rng, STATUSES)
            at = start + timedelta(seconds=rng.randrange(3 * 3600))
            outcomes.append(
                OutcomeRecord(
                    run_id=run_id,
                    campaign_id=campaign_id,
                    subscriber_id=subscriber_id,
                    status=DeliveryStatus(status),
                    reason=reason,
                    browser=_browser(rng),
                    occur_time=at,
                    variant="a" if n % 2 else "b",
                )
            )
            count(status, big)
            if status != "sent":
                continue
            viewed = rng.random() < 0.40
            clicked = rng.random() < 0.05
            closed = rng.random() < 0.10
            if viewed:
                events.append(
                    EngagementRecord(
                        run_id, campaign_id, subscriber_id, EngagementKind.VIEWED, "",
                        at + timedelta(seconds=rng.randrange(600)),
                    )
                )  # fmt: skip
                count("viewed", big)
            if clicked:
                button = rng.choice(("", "", "", "action_1", "action_2"))
                events.append(
                    EngagementRecord(
                        run_id, campaign_id, subscriber_id, EngagementKind.CLICKED, button,
                        at + timedelta(seconds=rng.randrange(3600)),
                    )
                )  # fmt: skip
                count("clicked", big)
            if closed:
                events.append(
                    EngagementRecord(
                        run_id, campaign_id, subscriber_id, EngagementKind.CLOSED, "",
                        at + timedelta(seconds=rng.randrange(3600)),
                    )
                )  # fmt: skip
                count("closed", big)
            if len(outcomes) >= BATCH:
                if first_events is None:
                    # Engagement that comes before its outcomes: stored first.
                    first_events = events
                    await store_batch("events", events)
                else:
                    submit("events", events)
                submit("outcomes", outcomes)
                outcomes, events = [], []
        if outcomes:
            submit("outcomes", outcomes)
        if events:
            submit("events", events)
        count("audience", big, size)
        await asyncio.gather(*pending)
        pending.clear()
    return expected



def _server_settings(internal_token: str, data_dir: Path, url: str) -> Any:
    """The reporting server's settings in every figure: its own database, quiet logs."""
    from services.kit.config import Settings

    return Settings(
        internal_token=internal_token,
        data_dir=data_dir,
        database_url=url,
        allow_insecure_endpoints=True,
        log_format="console",
    )

async def measure(url: str, recipients: int, calls: int, data_dir: Path) -> dict[str, Any]:
    from clarion.reporting.v1 import reporting_service_pb2 as rs
    from clarion.reporting.v1 import reporting_service_pb2_grpc
    from services.kit.db import create_engine_for
    from services.kit.grpcserver import client_channel
    from services.reporting.server import create_server
    from services.reporting.store import ReportingStore, RunAudienceRecord

    site_id, api_key = f"site_{secrets.token_hex(8)}", f"ck_{secrets.token_urlsafe(24)}"
    settings = _server_settings(secrets.token_urlsafe(32), data_dir, url)
    # The followers find nothing to follow; an hour between passes keeps them quiet.
    server = await create_server(
        "127.0.0.1:0",
        settings,
        site_resolver=_Sites(site_id, api_key),
        conversion_interval_seconds=3600.0,
        unsubscribe_interval_seconds=3600.0,
        webhook_interval_seconds=3600.0,
    )
    await server.start()
    engine = create_engine_for(settings.database_url_for("reporting"))
    store = ReportingStore(engine)
    campaign_id = f"cmp_{secrets.token_hex(8)}"
    runs = [(f"run_big_{secrets.token_hex(6)}", recipients)]
    runs += [(f"run_{n}_{secrets.token_hex(6)}", SMALL_RUN_SIZE) for n in range(SMALL_RUNS)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    channel = client_channel(server.address)
    try:
        for offset, (run_id, size) in enumerate(runs):
            await store.upsert_run_audience(
                site_id,
                RunAudienceRecord(run_id, campaign_id, size, start + timedelta(minutes=offset)),
            )
        began = time.perf_counter()
        expected = await _load(store, site_id, campaign_id, runs, start)
        load_seconds = time.perf_counter() - began
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                from sqlalchemy import text

                await connection.execute(text("ANALYZE"))
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        metadata = (("authorization", f"Bearer {api_key}"),)

        async def timed(call: Any) -> tuple[float, Any]:
            began = time.perf_counter()
            response = await call
            return (time.perf_counter() - began) * 1000, response

        run_ms, campaign_ms = [], []
        run_report = campaign_report = None
        # One warm-up call of each (connections, plans, caches) is not counted.
        for _ in range(calls + 1):
            ms, response = await timed(
                stub.GetRunReport(
                    rs.GetRunReportRequest(run_id=runs[0][0]), metadata=metadata, timeout=30
                )
            )
            run_ms.append(ms)
            run_report = response.report
            ms, response = await timed(
                stub.GetCampaignReport(
                    rs.GetCampaignReportRequest(campaign_id=campaign_id),
                    metadata=metadata,
                    timeout=30,
                )
            )
            campaign_ms.append(ms)
            campaign_report = response.report
        assert run_report is not None and campaign_report is not None
        fields = ("audience", "sent", "failed", "suppressed", "expired", "viewed", "clicked")
        reported = {name: int(getattr(campaign_report, name)) for name in fields}
        reported |= {"closed": int(campaign_report.closed)}
        reported |= {f"run_{name}": int(getattr(run_report, name)) for name in fields}
        reported |= {"run_closed": int(run_report.closed)}
        wanted = {name: expected.get(name, 0) for name in reported}
        run_stats, campaign_stats = percentiles(run_ms[1:]), percentiles(campaign_ms[1:])
        return {
            "database": engine.dialect.name,
            "recipients": recipients,
            "campaign_recipients": recipients + SMALL_RUNS * SMALL_RUN_SIZE,
            "engagement_events": expected.get("viewed", 0)
            + expected.get("clicked", 0)
            + expected.get("closed", 0),
            "load_path": "ReportingStore.insert_outcomes / insert_engagement_events, "
            f"{BATCH}-row batches, {IN_FLIGHT} in flight",
            "load_seconds": round(load_seconds, 1),
            "calls": calls,
            "run_report_ms": run_stats,
            "campaign_report_ms": campaign_stats,
            "target_ms": TARGET_MS,
            "target_met": max(run_stats["p99"], campaign_stats["p99"]) < TARGET_MS,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "expected": wanted,
            "reported": reported,
            "report_matches_load": reported == wanted,
            "browsers_reported": len(run_report.browsers),
            "timeline_hours": len(run_report.timeline),
        }
    finally:
        await channel.close()
        await server.stop()
        await engine.dispose()


OUTCOME_BATCH = 5_000
# Recipients whose engagement comes before their outcome, one in this many.
EARLY_ENGAGEMENT_EVERY = 50


def _serve_reporting(url: str, data_dir: str) -> None:
    """The child process of the `outcomes` figure: a reporting server until stdin closes;
    its address is the first line it prints."""
    from services.kit.logging import configure_logging
    from services.reporting.server import create_server

    configure_logging("console", "WARNING")

    async def serve() -> None:
        settings = _server_settings(
            os.environ["CLARION_BENCH_INTERNAL_TOKEN"], Path(data_dir), url
        )
        server = await create_server(
            "127.0.0.1:0",
            settings,
            site_resolver=_Sites("site_unused", "ck_unused"),
            conversion_interval_seconds=3600.0,
            unsubscribe_interval_seconds=3600.0,
            webhook_interval_seconds=3600.0,
        )
        await server.start()
        sys.__stdout__.write(f"{server.address}\n")
        sys.__stdout__.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop()

    asyncio.run(serve())


def _outcome_requests(run_id: str, campaign_id: str, count: int, start: datetime) -> Any:
    """The figure's outcome batches (RecordDeliveryOutcomesRequest) and early engagement
    (RecordEngagementEventsRequest), as delivery and the gateway would send them."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from clarion.common.v1 import common_pb2
    from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
    from clarion.reporting.v1 import reporting_pb2

    rng = random.Random(7)
    browsers = {
        "chrome": common_pb2.BROWSER_CHROME,
        "firefox": common_pb2.BROWSER_FIREFOX,
        "edge": common_pb2.BROWSER_EDGE,
        "safari": common_pb2.BROWSER_SAFARI,
    }
    outcomes, events, batches = [], [], []
    for n in range(count):
        _, status, reason = _pick(rng, STATUSES)
        stamp = Timestamp()
        stamp.FromDatetime(start + timedelta(seconds=n // 500))
        subscriber_id = f"sub_{n:08d}"
        outcomes.append(
            reporting_pb2.DeliveryOutcome(
                run_id=run_id,
                campaign_id=campaign_id,
                subscriber_id=subscriber_id,
                status=common_pb2.DeliveryStatus.Value(f"DELIVERY_STATUS_{status.upper()}"),
                reason=common_pb2.DeliveryReason.Value(f"DELIVERY_REASON_{reason.upper()}")
                if reason
                else common_pb2.DELIVERY_REASON_UNSPECIFIED,
                browser=browsers[_browser(rng)],
                occur_time=stamp,
                variant="a" if n % 2 else "b",
                profile_id=f"prf_{n:08d}" if n % 2 == 0 else "",
            )
        )
        if n % EARLY_ENGAGEMENT_EVERY == 0:
            events.append(
                reporting_pb2.EngagementEvent(
                    run_id=run_id,
                    campaign_id=campaign_id,
                    subscriber_id=subscriber_id,
                    kind=common_pb2.ENGAGEMENT_KIND_CLICKED
                    if n % 200 == 0
                    else common_pb2.ENGAGEMENT_KIND_VIEWED,
                    occur_time=stamp,
                )
            )
        if len(outcomes) == OUTCOME_BATCH:
            batches.append(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
            outcomes = []
    if outcomes:
        batches.append(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
    return batches, ris.RecordEngagementEventsRequest(events=events)


def _cpu_of(pid: int) -> float:
    from benchmarks.delivery import CLOCK_TICKS, _stat_fields

    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure_outcomes(
    url: str, count: int, data_dir: Path, database_cpu: Any
) -> dict[str, Any]:
    import subprocess

    from clarion.common.v1 import common_pb2
    from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
    from clarion.reporting.v1 import reporting_internal_service_pb2_grpc
    from services.kit.auth import internal_metadata
    from services.kit.grpcserver import client_channel

    token = secrets.token_urlsafe(32)
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.reports", "--serve-reporting", url, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLARION_BENCH_INTERNAL_TOKEN": token},
    )
    assert child.stdin is not None and child.stdout is not None
    address = child.stdout.readline().strip()
    if not address:
        raise RuntimeError("the reporting server did not start")
    site_id, campaign_id = f"site_{secrets.token_hex(8)}", f"cmp_{secrets.token_hex(8)}"
    metadata = internal_metadata(token, site_id)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    channel = client_channel(address)
    stub = reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(channel)
    try:
        warm_run, run_id = f"run_warm_{secrets.token_hex(6)}", f"run_{secrets.token_hex(6)}"
        goal = common_pb2.ConversionGoal(event_name="Purchase", window_seconds=86_400)
        for run in (warm_run, run_id):
            await stub.RecordRunAudience(
                ris.RecordRunAudienceRequest(
                    run_id=run, campaign_id=campaign_id, audience=count, conversion_goal=goal
                ),
                metadata=metadata,
                timeout=60,
            )
        warm, warm_events = _outcome_requests(warm_run, campaign_id, OUTCOME_BATCH, start)
        batches, events = _outcome_requests(run_id, campaign_id, count, start)
        for request in (warm_events, events):
            await stub.RecordEngagementEvents(request, metadata=metadata, timeout=60)
        await stub.RecordDeliveryOutcomes(warm[0], metadata=metadata, timeout=60)
        server_before, database_before = _cpu_of(child.pid), database_cpu()
        began = time.perf_counter()
        recorded = 0
        for request in batches:
            response = await stub.RecordDeliveryOutcomes(request, metadata=metadata, timeout=120)
            recorded += response.recorded
        wall = time.perf_counter() - began
        server_cpu = _cpu_of(child.pid) - server_before
        database = database_cpu() - database_before
        return {
            "database": "postgresql" if url.startswith("postgresql") else "sqlite",
            "outcomes": count,
            "recorded": recorded,
            "batch": OUTCOME_BATCH,
            "early_engagement_events": len(events.events),
            "wall_seconds": round(wall, 2),
            "outcomes_per_s": round(count / wall),
            "server_cpu_us_per_outcome": round(server_cpu * 1e6 / count, 1),
            "database_cpu_us_per_outcome": round(database * 1e6 / count, 1)
            if database_cpu is not _no_cpu
            else None,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        await channel.close()
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def _no_cpu() -> float:
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--postgres-url", help="a PostgreSQL server to create a database in")
    parser.add_argument(
        "--figure",
        choices=("reports", "outcomes"),
        default="reports",
        help="reports: report latency on a big run; outcomes: CPU per recorded outcome",
    )
    parser.add_argument("--outcomes", type=int, default=50_000, help="for --figure outcomes")
    parser.add_argument("--serve-reporting", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_reporting:
        _serve_reporting(*args.serve_reporting)
        return 0
    from benchmarks.delivery import POSTGRES_URL_ENV, Postgres
    from services.kit.logging import configure_logging

    configure_logging("console", "WARNING")
    if args.postgres_url:
        os.environ[POSTGRES_URL_ENV] = args.postgres_url
    elif "CLARION_TEST_POSTGRES_URL" in os.environ:
        os.environ.setdefault(POSTGRES_URL_ENV, os.environ["CLARION_TEST_POSTGRES_URL"])
    report: dict[str, Any] = {"benchmark": "reports", "figure": args.figure}
    report["cpus"] = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="clarion-bench-reports-") as tmp:
        os.chmod(tmp, 0o755)  # the postgres user must reach its cluster directory
        root = Path(tmp)
        cluster = None
        try:
            if args.database == "postgres":
                cluster = Postgres.start(root / "pg")
                url = cluster.new_database()
                report["postgres_server"] = cluster.description
            else:
                url = f"sqlite:///{root / 'reporting.db'}"
            (root / "data").mkdir()
            # Whatever the server logs stays off stdout, which holds only the report.
            with contextlib.redirect_stdout(sys.stderr):
                if args.figure == "outcomes":
                    database_cpu = (
                        cluster.cpu_seconds
                        if cluster is not None and cluster.postmaster_pid is not None
                        else _no_cpu
                    )
                    report |= asyncio.run(
                        measure_outcomes(url, args.outcomes, root / "data", database_cpu)
                    )
                else:
                    report |= asyncio.run(measure(url, args.recipients, args.calls, root / "data"))
        except Exception as error:  # noqa: BLE001 - the report says what failed
            report["error"] = f"{type(error).__name__}: {error}"
        finally:
            if cluster is not None:
                cluster.stop()
    print(json.dumps(report) if args.json else json.dumps(report, indent=2), flush=True)
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
