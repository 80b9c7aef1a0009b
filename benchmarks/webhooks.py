"""Reporting webhooks under a bad receiver: every event delivered, none twice, all signed.

    python -m benchmarks.webhooks --json                       # 100,000 events, SQLite
    python -m benchmarks.webhooks --database postgres --json   # the same on PostgreSQL
    python -m benchmarks.webhooks --events 1000 --retry-scale 0.001 --json  # a smoke run

One reporting service (in the embedded stack, in this process: every service, no
gateway, one database: SQLite files in a temp dir, or a fresh database on the server
--postgres-url / CLARION_BENCH_POSTGRES_URL / CLARION_TEST_POSTGRES_URL names) sends
to one webhook endpoint, http://127.0.0.1:<port>/hook, served by an aiohttp receiver in
a process of its own (so that it neither steals this event loop nor shares its core
with the sender; CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES lets reporting reach it).

- Runs of 10,000 recipients are recorded first, as delivery records them
  (RecordRunAudience with a title and UTM parameters, then RecordDeliveryOutcomes: all
  sent), so the engagement is of real runs. Then --events engagement events (half
  views, the other half clicks on the body or either button, and closes) are recorded
  through ReportingInternalService.RecordEngagementEvents, --batch a call, as fast as
  reporting takes them (a burst: the lag below is mostly the backlog's).
- The receiver checks every request's signature with the standardwebhooks library
  (signature_failures), and answers by a seeded hash of webhook-id and attempt (its own
  count of requests with that id), so runs are comparable: --fail-rate (20 %) get 500,
  --hang-rate (1 %) are held --hang-seconds (12 s), past the sender's 10 s timeout,
  the rest 200. Only a 200 counts as delivered.
- The clock runs from the first RecordEngagementEvents call to the last first-time
  delivery (events_per_s = delivered / that). lag is, per event, its first 200 minus
  the moment its batch was sent to reporting (wall clock, one machine): p50 / p99 /
  max. attempts is every request the receiver saw; duplicates are webhook-ids answered
  200 more than once plus events that arrived under more than one webhook-id; lost
  are events never answered 200 by --deadline seconds after the last record (must
  be 0); dead_letters is what ListWebhookDeadLetters shows at the end.

Retries use reporting's own schedule (services/reporting/domain/webhooks.py
RETRY_DELAYS: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, ...). At 21 % failed
attempts, 100,000 events have ~9 that fail six times and ~2 that fail seven: with the
real schedule the run's last delivery comes 1.7 to 3.7 hours after the first. So
--retry-scale multiplies every delay, for this benchmark only (this process's copy of
RETRY_DELAYS, before reporting starts; the service itself has no such knob): the
figures in docs/performance.md use 0.01 (5 s -> 50 ms, 30 min -> 18 s), which keeps the
shape of the schedule and the ±20 % jitter. The scale is in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

DEFAULT_EVENTS = 100_000
RUN_SIZE = 10_000  # recipients per recorded run; RecordDeliveryOutcomes takes 10,000
DEFAULT_BATCH = 1000
RECORD_IN_FLIGHT = 2
DEFAULT_FAIL_RATE = 0.20
DEFAULT_HANG_RATE = 0.01
DEFAULT_HANG_SECONDS = 12.0  # the sender gives up after 10 s
DEFAULT_DEADLINE_SECONDS = 3600.0
DEFAULT_SEED = 20261201
POLL_SECONDS = 0.5
POSTGRES_URL_ENVS = ("CLARION_BENCH_POSTGRES_URL", "CLARION_TEST_POSTGRES_URL")
UTM = {
    "utm_source": "clarion",
    "utm_medium": "push",
    "utm_campaign": "webhook-bench",
    "utm_content": "hero",
    "utm_term": "load",
}
TITLE = "Benchmark push"
# The second half of the events: (kind, button) in turn.
ENGAGED = (("clicked", ""), ("clicked", "action_1"), ("clicked", "action_2"), ("closed", ""))
ACTION = {"viewed": "View", "clicked": "Click", "closed": "Close"}


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def answer_for(seed: int, webhook_id: str, attempt: int, fail: float, hang: float) -> str:
    """ "hang", "fail" or "ok": the same for the same webhook-id and attempt in every run."""
    digest = hashlib.sha256(f"{seed}:{webhook_id}:{attempt}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < hang:
        return "hang"
    if draw < hang + fail:
        return "fail"
    return "ok"


# --- The receiver (a process of its own) -----------------------------------------------


class Receiver:
    """Counts what arrives at /hook; configured and read through /_configure, /_stats,
    /_deliveries."""

    def __init__(self) -> None:
        self.verifier: Any = None
        self.seed = DEFAULT_SEED
        self.fail = DEFAULT_FAIL_RATE
        self.hang = DEFAULT_HANG_RATE
        self.hang_seconds = DEFAULT_HANG_SECONDS
        self.attempts: Counter[str] = Counter()  # requests per webhook-id
        self.ok_count: Counter[str] = Counter()  # 200s per webhook-id
        self.first_ok: dict[str, tuple[str, float]] = {}  # webhook-id -> (event key, time)
        self.requests = 0
        self.failed = 0
        self.hung = 0
        self.signature_failures = 0
        self.last_ok = 0.0

    async def hook(self, request: Any) -> Any:
        from aiohttp import web
        from standardwebhooks import WebhookVerificationError

        body = await request.read()
        self.requests += 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        try:
            payload = self.verifier.verify(body, headers)
        except (WebhookVerificationError, AttributeError, ValueError):
            self.signature_failures += 1
            return web.Response(status=400, text="bad signature")
        self.attempts[webhook_id] += 1
        answer = answer_for(self.seed, webhook_id, self.attempts[webhook_id], self.fail, self.hang)
        if answer == "hang":
            self.hung += 1
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=503, text="too late")
        if answer == "fail":
            self.failed += 1
            return web.Response(status=500, text="no")
        now = time.time()
        self.ok_count[webhook_id] += 1
        if webhook_id not in self.first_ok:
            key = f"{payload['reference_id']}|{payload['cookie_id']}|{payload['action']}"
            key += f"|{payload['clicked_button']}"
            self.first_ok[webhook_id] = (key, now)
            self.last_ok = now
        return web.Response(status=200, text="ok")

    async def configure(self, request: Any) -> Any:
        from aiohttp import web
        from standardwebhooks import Webhook

        asked = await request.json()
        self.verifier = Webhook(asked["secret"])
        self.seed = int(asked["seed"])
        self.fail = float(asked["fail_rate"])
        self.hang = float(asked["hang_rate"])
        self.hang_seconds = float(asked["hang_seconds"])
        return web.json_response({"ok": True})

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "delivered": len(self.first_ok),
            "failed": self.failed,
            "hung": self.hung,
            "signature_failures": self.signature_failures,
            "redelivered_ids": sum(1 for n in self.ok_count.values() if n > 1),
            "last_ok": self.last_ok,
        }

    async def stats_route(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.stats())

    async def deliveries(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(
            {
                "stats": self.stats(),
                "first_ok": {i: [k, t] for i, (k, t) in self.first_ok.items()},
                "max_attempts": max(self.attempts.values(), default=0),
            }
        )


def serve_receiver() -> None:
    """`--receiver`: serves on 127.0.0.1:<free port>, prints "PORT <n>", until SIGTERM."""
    from aiohttp import web

    receiver = Receiver()
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/hook", receiver.hook)
    app.router.add_post("/_configure", receiver.configure)
    app.router.add_get("/_stats", receiver.stats_route)
    app.router.add_get("/_deliveries", receiver.deliveries)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[str]
    port: int

    @classmethod
    def start(cls) -> ReceiverProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.webhooks", "--receiver"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            raise RuntimeError(f"the receiver did not start: {line!r}")
        return cls(process, int(line.split()[1]))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- Databases -------------------------------------------------------------------------


@dataclass
class FreshDatabase:
    """A database of its own on a given PostgreSQL server, dropped at the end."""

    server_url: str
    name: str = ""

    def create(self) -> str:
        from sqlalchemy.engine import make_url

        self.name = f"clarion_bench_wh_{secrets.token_hex(4)}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        url = make_url(self.server_url).set(drivername="postgresql+psycopg", database=self.name)
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.name:
            with contextlib.suppress(Exception), self._admin() as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self) -> Any:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.server_url)
        return psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database or "postgres",
            autocommit=True,
        )


def postgres_server_url(given: str) -> str:
    url = given or next((os.environ[e] for e in POSTGRES_URL_ENVS if os.environ.get(e)), "")
    if not url:
        raise SystemExit(
            "--database postgres needs --postgres-url or CLARION_BENCH_POSTGRES_URL "
            "(or CLARION_TEST_POSTGRES_URL), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        )
    return url


# --- The run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    events: int
    database: str
    database_url: str
    batch: int
    retry_scale: float
    fail_rate: float
    hang_rate: float
    hang_seconds: float
    deadline_seconds: float
    seed: int


def scale_retries(scale: float) -> list[float]:
    """This process's reporting retries after `scale` times its own delays."""
    from services.reporting.domain import webhooks

    if scale != 1.0:
        webhooks.RETRY_DELAYS = tuple(delay * scale for delay in webhooks.RETRY_DELAYS)
    return [round(d.total_seconds(), 3) for d in webhooks.RETRY_DELAYS]


def engagement_plan(events: int) -> list[tuple[str, str, str, str]]:
    """(run index, subscriber, kind, button) per event: a view for the first half of the
    subscribers, then a click (body, button 1, button 2) or close for each of them."""
    subscribers = (events + 1) // 2
    plan = [(str(i // RUN_SIZE), f"sub_{i:07d}", "viewed", "") for i in range(subscribers)]
    for i in range(events - subscribers):
        kind, button = ENGAGED[i % len(ENGAGED)]
        plan.append((str(i // RUN_SIZE), f"sub_{i:07d}", kind, button))
    return plan


async def measure(options: Options, data_dir: Path, receiver: ReceiverProcess) -> dict[str, Any]:
    from clarion.common.v1 import common_pb2
    from clarion.embedded import EmbeddedStack
    from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
    from clarion.reporting.v1 import (
        reporting_internal_service_pb2_grpc,
        reporting_pb2,
        webhook_pb2,
        webhook_service_pb2_grpc,
    )
    from clarion.reporting.v1 import webhook_service_pb2 as ws
    from services.campaign.admin import create_site
    from services.kit.auth import internal_metadata
    from services.kit.config import Settings
    from services.kit.grpcserver import client_channel

    result: dict[str, Any] = {
        "database": options.database,
        "events": options.events,
        "retry_scale": options.retry_scale,
        "retry_delays_s": scale_retries(options.retry_scale),
        "fail_rate": options.fail_rate,
        "hang_rate": options.hang_rate,
        "hang_seconds": options.hang_seconds,
        "seed": options.seed,
        "loadavg_start": loadavg(),
    }
    # Reporting reads it when it starts: the receiver is on 127.0.0.1.
    os.environ["CLARION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] = "true"
    settings = Settings(
        data_dir=data_dir,
        database_url=options.database_url,
        log_level="ERROR",
        log_format="console",
    )
    stack = await EmbeddedStack.start(
        settings, ephemeral_ports=True, with_gateway=False, delivery_in_process=True
    )
    channel = client_channel(stack.address("reporting"))
    try:
        site = await create_site(settings, "Webhooks benchmark", "mailto:bench@clarion.invalid")
        key = (("authorization", f"Bearer {site.api_key}"),)
        internal = internal_metadata(stack.settings.internal_token_value, site.site_id)
        hooks = webhook_service_pb2_grpc.WebhookServiceStub(channel)
        reporting = reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(channel)
        created = await hooks.CreateWebhookEndpoint(
            ws.CreateWebhookEndpointRequest(
                url=f"{receiver.base}/hook",
                event_types=(
                    webhook_pb2.WEBHOOK_EVENT_TYPE_VIEW,
                    webhook_pb2.WEBHOOK_EVENT_TYPE_CLICK,
                    webhook_pb2.WEBHOOK_EVENT_TYPE_CLOSE,
                ),
            ),
            metadata=key,
            timeout=30,
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{receiver.base}/_configure",
                json={
                    "secret": created.secret,
                    "seed": options.seed,
                    "fail_rate": options.fail_rate,
                    "hang_rate": options.hang_rate,
                    "hang_seconds": options.hang_seconds,
                },
            ) as answer:
                answer.raise_for_status()

            plan = engagement_plan(options.events)
            subscribers = (options.events + 1) // 2
            runs = (subscribers + RUN_SIZE - 1) // RUN_SIZE
            campaign_id = "cmp_webhook_bench"
            run_ids = [f"run_webhook_bench_{r:03d}" for r in range(runs)]
            progress(
                f"{options.database}: {runs} runs of up to {RUN_SIZE:,} recipients; then "
                f"{options.events:,} engagement events"
            )
            for r, run_id in enumerate(run_ids):
                members = range(r * RUN_SIZE, min(subscribers, (r + 1) * RUN_SIZE))
                await reporting.RecordRunAudience(
                    ris.RecordRunAudienceRequest(
                        run_id=run_id,
                        campaign_id=campaign_id,
                        audience=len(members),
                        description=common_pb2.RunDescription(notification_title=TITLE, **UTM),
                    ),
                    metadata=internal,
                    timeout=60,
                )
                await reporting.RecordDeliveryOutcomes(
                    ris.RecordDeliveryOutcomesRequest(
                        outcomes=[
                            reporting_pb2.DeliveryOutcome(
                                run_id=run_id,
                                campaign_id=campaign_id,
                                subscriber_id=f"sub_{i:07d}",
                                status=common_pb2.DELIVERY_STATUS_SENT,
                                browser=common_pb2.BROWSER_CHROME,
                            )
                            for i in members
                        ]
                    ),
                    metadata=internal,
                    timeout=120,
                )

            kinds = {
                "viewed": common_pb2.ENGAGEMENT_KIND_VIEWED,
                "clicked": common_pb2.ENGAGEMENT_KIND_CLICKED,
                "closed": common_pb2.ENGAGEMENT_KIND_CLOSED,
            }
            recorded_at: dict[str, float] = {}
            semaphore = asyncio.Semaphore(RECORD_IN_FLIGHT)
            recorded = 0

            async def record(start: int) -> None:
                nonlocal recorded
                batch = plan[start : start + options.batch]
                request = ris.RecordEngagementEventsRequest(
                    events=[
                        reporting_pb2.EngagementEvent(
                            run_id=run_ids[int(run)],
                            campaign_id=campaign_id,
                            subscriber_id=subscriber,
                            kind=kinds[kind],
                            button=button,
                        )
                        for run, subscriber, kind, button in batch
                    ]
                )
                async with semaphore:
                    sent_at = time.time()
                    answer = await reporting.RecordEngagementEvents(
                        request, metadata=internal, timeout=120
                    )
                recorded += answer.recorded
                for run, subscriber, kind, button in batch:
                    recorded_at[_key(run_ids[int(run)], subscriber, kind, button)] = sent_at

            first_record = time.time()
            await asyncio.gather(*(record(s) for s in range(0, len(plan), options.batch)))
            last_record = time.time()
            result["record_seconds"] = round(last_record - first_record, 2)
            result["recorded"] = recorded
            progress(
                f"{options.database}: {recorded:,} events recorded in "
                f"{last_record - first_record:.1f} s; waiting for their webhooks"
            )

            deadline = last_record + options.deadline_seconds
            shown = 0.0
            while True:
                async with http.get(f"{receiver.base}/_stats") as answer:
                    stats = await answer.json()
                if stats["delivered"] >= options.events or time.time() > deadline:
                    break
                if time.time() - shown > 15:
                    shown = time.time()
                    progress(
                        f"{options.database}: {stats['delivered']:,} delivered, "
                        f"{stats['requests']:,} requests ({stats['failed']:,} 500, "
                        f"{stats['hung']:,} held), {time.time() - first_record:.0f} s"
                    )
                await asyncio.sleep(POLL_SECONDS)
            # Anything sent again after the last one arrived would show as a duplicate.
            await asyncio.sleep(1.0)
            async with http.get(f"{receiver.base}/_deliveries") as answer:
                final = await answer.json()

        dead = await hooks.ListWebhookDeadLetters(
            ws.ListWebhookDeadLettersRequest(
                endpoint_id=created.endpoint.endpoint_id, page_size=1000
            ),
            metadata=key,
            timeout=30,
        )
        result["dead_letters"] = len(dead.dead_letters)
    finally:
        await channel.close()
        await stack.stop()

    stats = final["stats"]
    arrived: Counter[str] = Counter()
    lags = []
    for event_key, delivered_at in final["first_ok"].values():
        arrived[event_key] += 1
        if arrived[event_key] == 1 and event_key in recorded_at:
            lags.append(delivered_at - recorded_at[event_key])
    delivered = sum(1 for k in recorded_at if arrived[k])
    seconds = stats["last_ok"] - first_record if stats["last_ok"] else 0.0
    lags.sort()
    result.update(
        {
            "delivered": delivered,
            "lost": len(recorded_at) - delivered,
            "unexpected": sum(1 for k in arrived if k not in recorded_at),
            "duplicates": stats["redelivered_ids"] + sum(n - 1 for n in arrived.values()),
            "redelivered_webhook_ids": stats["redelivered_ids"],
            "events_under_several_ids": sum(1 for n in arrived.values() if n > 1),
            "signature_failures": stats["signature_failures"],
            "attempts": stats["requests"],
            "answered_500": stats["failed"],
            "held_past_timeout": stats["hung"],
            "max_attempts_of_one_event": final["max_attempts"],
            "seconds": round(seconds, 2),
            "events_per_s": round(delivered / seconds, 1) if seconds > 0 else 0.0,
            "lag_p50_s": round(_quantile(lags, 0.50), 3),
            "lag_p99_s": round(_quantile(lags, 0.99), 3),
            "lag_max_s": round(lags[-1], 3) if lags else 0.0,
            "lag_mean_s": round(statistics.fmean(lags), 3) if lags else 0.0,
            "loadavg_end": loadavg(),
        }
    )
    return result


def _key(run_id: str, subscriber: str, kind: str, button: str) -> str:
    clicked = int(button[-1]) if kind == "clicked" and button.startswith("action_") else 0
    return f"{run_id}|{subscriber}|{ACTION[kind]}|{clicked}"


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="",
        help="a PostgreSQL server (a fresh database is made on it and dropped); default "
        "CLARION_BENCH_POSTGRES_URL, then CLARION_TEST_POSTGRES_URL",
    )
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="events per call")
    parser.add_argument(
        "--retry-scale",
        type=float,
        default=1.0,
        help="multiplies reporting's retry delays in this benchmark (1: the real 5 s, "
        "30 s, 2 min, ...; the published figures use 0.01)",
    )
    parser.add_argument("--fail-rate", type=float, default=DEFAULT_FAIL_RATE)
    parser.add_argument("--hang-rate", type=float, default=DEFAULT_HANG_RATE)
    parser.add_argument("--hang-seconds", type=float, default=DEFAULT_HANG_SECONDS)
    parser.add_argument(
        "--deadline", type=float, default=DEFAULT_DEADLINE_SECONDS,
        help="seconds after the last event is recorded; undelivered then: lost",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver()
        return 0
    if args.events < 2:
        parser.error("--events must be at least 2")
    from services.kit.logging import configure_logging

    configure_logging("console", "ERROR")
    fresh = None
    report: dict[str, Any] = {"benchmark": "webhooks", "cpus": os.cpu_count()}
    receiver = ReceiverProcess.start()
    try:
        with tempfile.TemporaryDirectory(prefix="clarion-bench-webhooks-") as tmp:
            url = ""
            if args.database == "postgres":
                fresh = FreshDatabase(postgres_server_url(args.postgres_url))
                url = fresh.create()
            options = Options(
                events=args.events,
                database=args.database,
                database_url=url,
                batch=args.batch,
                retry_scale=args.retry_scale,
                fail_rate=args.fail_rate,
                hang_rate=args.hang_rate,
                hang_seconds=args.hang_seconds,
                deadline_seconds=args.deadline,
                seed=args.seed,
            )
            report.update(asyncio.run(measure(options, Path(tmp), receiver)))
    finally:
        receiver.stop()
        if fresh is not None:
            fresh.drop()
    print(json.dumps(report) if args.json else json.dumps(report, indent=2), flush=True)
    ok = report["lost"] == 0 and report["signature_failures"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
