"""`clarion demo --scenario abandoned-cart` and `--scenario recurring`: campaigns that run
themselves, with time moved by a clock the demo holds, checked.

Both start the embedded stack with a FrozenClock (every service then runs in this
process and reads that clock) and the push-service simulator, create a site, and talk
gRPC to segment and campaign as a shop's backend would. Time moves only when the demo
moves the clock; between moves it gives the services' loops a moment of real time.

abandoned-cart: shoppers (each a profile with one browser) add to cart over the first
five minutes; a seeded ~40% buy, most well inside ten minutes, some after. One live
campaign, "Added To Cart, then no Charged within 600 s", must push exactly the
shoppers who did not buy within 600 s of their add, each once. The clock moves in 30 s
steps; each event is tracked at the step its time falls in, with the step's time as
its occur_time, and the expectation is computed from those tracked times (no buy is
tracked exactly 600 s after its add: that edge is the platform's to define).

recurring: a campaign scheduled "09:00 every day, Europe/Berlin" from 1 March 2027, so
that it crosses the end of March's daylight saving change. Each day a few new browsers
subscribe (some anonymous); the clock then moves to a minute past that day's 09:00 and
the demo waits for the day's run to be DONE. Before each move the campaign's
next_run_time must be that day's 09:00 in Berlin (a run planned an hour off would still
start when the clock jumps past it); each run then starts at 09:01 Berlin time, where
the clock was moved, and reaches every browser subscribed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_service_pb2_grpc
from clarion.segment.v1 import profile_pb2, segment_service_pb2, segment_service_pb2_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

Metadata = tuple[tuple[str, str], ...]

SCENARIOS = ("abandoned-cart", "recurring")
CART, CHARGED = "Added To Cart", "Charged"
BATCH = 1000

# abandoned-cart
CART_START = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
WINDOW_SECONDS = 600
STEP_SECONDS = 30
ADD_SPREAD_SECONDS = 5 * 60
BUY_SHARE = 0.4
LATE_SHARE = 0.2  # of the buyers: they buy after the window, and are pushed
EDGE_MARGIN_SECONDS = 20
RUN_ON_SECONDS = 20 * 60  # moved time after the last add
STEP_REAL_SECONDS = 0.45  # the live loop runs every 0.2 s: two passes per step
SETTLE_SECONDS = 60.0

# recurring
RECURRING_START = datetime(2027, 3, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
DAILY_AT_NINE = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"
NEW_BROWSERS_PER_DAY = (0, 5)
ANONYMOUS_SHARE = 0.3
RUN_WAIT_SECONDS = 30.0

TERMINAL_RUN_STATES = frozenset(
    {campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED, campaign_pb2.RUN_STATE_CANCELLED}
)


def _stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


@dataclass
class Platform:
    """The running stack, simulator and site, and the stubs a shop's backend uses."""

    clock: FrozenClock
    simulator: Any
    campaigns: campaign_service_pb2_grpc.CampaignServiceStub
    segments: segment_service_pb2_grpc.SegmentServiceStub
    metadata: Metadata
    site_id: str
    sites: site_service_pb2_grpc.SiteServiceStub
    reports: reporting_service_pb2_grpc.ReportingServiceStub

    async def register(self, profile_ids: list[str]) -> list[str]:
        """Registers one simulated browser per profile id ("": an anonymous browser);
        returns their endpoints, in order."""
        endpoints: list[str] = []
        for start in range(0, len(profile_ids), BATCH):
            batch = profile_ids[start : start + BATCH]
            subscriptions = [self.simulator.mint_subscription() for _ in batch]
            await self.segments.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_CHROME,
                            timezone="Europe/Berlin",
                            profile_id=profile_id,
                        )
                        for profile_id, s in zip(batch, subscriptions, strict=True)
                    ]
                ),
                metadata=self.metadata,
                timeout=60,
            )
            endpoints.extend(s.endpoint for s in subscriptions)
        return endpoints

    async def track(self, events: list[tuple[str, str]]) -> None:
        """Tracks (profile id, event name) pairs, each happening now (the clock's now)."""
        now = _stamp(self.clock.now())
        for start in range(0, len(events), BATCH):
            response = await self.segments.TrackEvents(
                segment_service_pb2.TrackEventsRequest(
                    events=[
                        profile_pb2.Event(
                            event_id=uuid.uuid4().hex,
                            name=name,
                            profile_id=profile_id,
                            occur_time=now,
                        )
                        for profile_id, name in events[start : start + BATCH]
                    ]
                ),
                metadata=self.metadata,
                timeout=60,
            )
            refused = [r for r in response.results if not r.ok]
            if refused:
                raise RuntimeError(f"TrackEvents refused {len(refused)}, e.g. {refused[0].message}")

    async def runs(self, campaign_id: str) -> list[campaign_pb2.Run]:
        runs: list[campaign_pb2.Run] = []
        token = ""
        while True:
            response = await self.campaigns.ListRuns(
                campaign_service_pb2.ListRunsRequest(
                    campaign_id=campaign_id, page_size=1000, page_token=token
                ),
                metadata=self.metadata,
                timeout=30,
            )
            runs.extend(response.runs)
            token = response.next_page_token
            if not token:
                return runs

    def received(self, endpoint: str) -> int:
        return len(self.simulator.messages(endpoint))


@contextlib.asynccontextmanager
async def running_platform(
    settings: Settings, clock: FrozenClock, site_name: str, *, simulator_on_clock: bool = False
) -> AsyncIterator[Platform]:
    """`simulator_on_clock`: the simulator stamps what it receives with the moved clock
    (and checks VAPID expiry against it), for demos that count pushes per hour."""
    from clarion.simulator import PushServiceSimulator
    from services.campaign.admin import create_site

    settings.allow_insecure_endpoints = True  # the simulator listens on plain http
    simulator = (
        PushServiceSimulator(clock=lambda: clock.now().timestamp())
        if simulator_on_clock
        else PushServiceSimulator()
    )
    await simulator.start("127.0.0.1", 0)
    stack = None
    channels = []
    try:
        stack = await EmbeddedStack.start(settings, ephemeral_ports=True, clock=clock)
        channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
            client_channel(stack.address("reporting")),
        ]
        site = await create_site(settings, site_name, "mailto:demo@clarion.invalid", clock=clock)
        yield Platform(
            clock=clock,
            simulator=simulator,
            campaigns=campaign_service_pb2_grpc.CampaignServiceStub(channels[0]),
            segments=segment_service_pb2_grpc.SegmentServiceStub(channels[1]),
            metadata=(("authorization", f"Bearer {site.api_key}"),),
            site_id=site.site_id,
            sites=site_service_pb2_grpc.SiteServiceStub(channels[0]),
            reports=reporting_service_pb2_grpc.ReportingServiceStub(channels[2]),
        )
    finally:
        for channel in channels:
            await channel.close()
        if stack is not None:
            await stack.stop()
        await simulator.stop()


def _demo_settings(data_dir: Path) -> Settings:
    # The demo prints its own progress; the services log warnings only (as its help says).
    return Settings(data_dir=data_dir, log_level="WARNING", log_format="console")


# abandoned-cart


@dataclass
class Shopper:
    profile_id: str
    # Seconds after the start, as tracked: each on its 30 s step.
    add_at: int
    buy_at: int | None
    endpoint: str = ""

    @property
    def bought_in_window(self) -> bool:
        return self.buy_at is not None and self.buy_at - self.add_at <= WINDOW_SECONDS

    @property
    def bought_late(self) -> bool:
        return self.buy_at is not None and not self.bought_in_window


def _on_step(seconds: float) -> int:
    return int(seconds // STEP_SECONDS) * STEP_SECONDS


def shoppers(count: int, rng: random.Random) -> list[Shopper]:
    """Adds spread over the first five minutes; ~40% buy, most 30-570 s after their
    add, a fifth of those 630-900 s after; no buy tracked within 20 s of the edge."""
    made = []
    for index in range(count):
        while True:
            added = rng.uniform(0, ADD_SPREAD_SECONDS)
            bought = None
            if rng.random() < BUY_SHARE:
                late = rng.random() < LATE_SHARE
                after = rng.uniform(630, 900) if late else rng.uniform(30, 570)
                bought = _on_step(added + after)
            add_at = _on_step(added)
            if bought is None or abs(bought - add_at - WINDOW_SECONDS) >= EDGE_MARGIN_SECONDS:
                break
        made.append(Shopper(f"shopper-{index}", add_at, bought))
    return made


async def run_abandoned_cart_demo(
    shopper_count: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    seed: int = 7,
    settle_seconds: float = SETTLE_SECONDS,
) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = FrozenClock(CART_START)
    settings = settings or _demo_settings(data_dir)
    async with running_platform(settings, clock, "Abandoned cart demo") as platform:
        started = time.perf_counter()
        people = shoppers(shopper_count, rng)
        endpoints = await platform.register([s.profile_id for s in people])
        for shopper, endpoint in zip(people, endpoints, strict=True):
            shopper.endpoint = endpoint
        created = await platform.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Your cart is waiting",
                notification=common_pb2.Notification(
                    title="You left something in your cart",
                    body="It is still there",
                    target_url="https://shop.example/cart",
                ),
                trigger=campaign_pb2.Trigger(
                    event_name=CART,
                    inaction=campaign_pb2.Inaction(
                        event_name=CHARGED, window_seconds=WINDOW_SECONDS
                    ),
                ),
            ),
            metadata=platform.metadata,
            timeout=30,
        )
        campaign_id = created.campaign.campaign_id
        progress(
            f"site {platform.site_id}; {len(people)} shoppers; live campaign {campaign_id}: "
            f"{CART!r}, then no {CHARGED!r} within {WINDOW_SECONDS} s"
        )

        adds: dict[int, list[tuple[str, str]]] = {}
        buys: dict[int, list[tuple[str, str]]] = {}
        for shopper in people:
            adds.setdefault(shopper.add_at, []).append((shopper.profile_id, CART))
            if shopper.buy_at is not None:
                buys.setdefault(shopper.buy_at, []).append((shopper.profile_id, CHARGED))
        end = max((s.add_at for s in people), default=0) + RUN_ON_SECONDS
        for at in range(0, end + 1, STEP_SECONDS):
            if at:
                clock.advance(seconds=STEP_SECONDS)
            happening = adds.get(at, []) + buys.get(at, [])
            if happening:
                await platform.track(happening)
            if at % 120 == 0 or happening:
                pushed_so_far = sum(1 for s in people if platform.received(s.endpoint))
                progress(
                    f"t+{at // 60:02d}:{at % 60:02d}: {len(adds.get(at, []))} carts, "
                    f"{len(buys.get(at, []))} purchases; {pushed_so_far} shoppers pushed so far"
                )
            await asyncio.sleep(STEP_REAL_SECONDS)

        progress("clock stopped; waiting for the pushes to settle")
        runs = await _settle(platform, campaign_id, [s.endpoint for s in people], settle_seconds)
        seconds = time.perf_counter() - started

        counts = {s.profile_id: platform.received(s.endpoint) for s in people}
        should = {s.profile_id for s in people if not s.bought_in_window}
        pushed = {profile_id for profile_id, n in counts.items() if n}
        wrong_kinds = {
            "pushed_but_bought": len(pushed - should),
            "not_pushed": len(should - pushed),
            "pushed_twice": sum(1 for n in counts.values() if n > 1),
        }
        late = [s for s in people if s.bought_late]
        return {
            "carts": len(people),
            "bought": sum(1 for s in people if s.bought_in_window),
            "bought_late": len(late),
            "bought_late_pushed": sum(1 for s in late if s.profile_id in pushed),
            "pushed": len(pushed),
            "expected_pushed": len(should),
            "wrong": sum(wrong_kinds.values()),
            "wrong_by_kind": wrong_kinds,
            "seconds": round(seconds, 3),
            "runs": len(runs),
        }


async def _settle(
    platform: Platform, campaign_id: str, endpoints: list[str], timeout_seconds: float
) -> list[campaign_pb2.Run]:
    """Waits until every run of the campaign is over and the simulator's count has not
    moved for a second (at most `timeout_seconds`); returns the runs."""
    deadline = time.monotonic() + timeout_seconds
    last = -1
    while True:
        runs = await platform.runs(campaign_id)
        received = sum(platform.received(e) for e in endpoints)
        over = all(run.state in TERMINAL_RUN_STATES for run in runs)
        if (over and received == last) or time.monotonic() > deadline:
            return runs
        last = received
        await asyncio.sleep(1.0)


# recurring


def occurrence(start: datetime, day: int) -> datetime:
    """The 09:00 in Berlin `day` days after `start`'s date, in UTC."""
    local = datetime.combine(start.date() + timedelta(days=day), clock_time(9, 0), tzinfo=BERLIN)
    return local.astimezone(UTC)


async def run_recurring_demo(
    days: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    seed: int = 7,
    run_wait_seconds: float = RUN_WAIT_SECONDS,
    start: datetime = RECURRING_START,
) -> dict[str, Any]:
    """`start` is a midnight UTC; the first run is that day's 09:00 in Berlin."""
    rng = random.Random(seed)
    clock = FrozenClock(start)
    settings = settings or _demo_settings(data_dir)
    async with running_platform(settings, clock, "Recurring demo") as platform:
        started = time.perf_counter()
        created = await platform.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Morning digest",
                notification=common_pb2.Notification(
                    title="Today's picks",
                    body="Fresh this morning",
                    target_url="https://news.example/today",
                ),
                schedule=campaign_pb2.Schedule(
                    recurrence=campaign_pb2.Recurrence(rule=DAILY_AT_NINE, timezone="Europe/Berlin")
                ),
            ),
            metadata=platform.metadata,
            timeout=30,
        )
        campaign_id = created.campaign.campaign_id
        progress(
            f"site {platform.site_id}; campaign {campaign_id}: {DAILY_AT_NINE} in Europe/Berlin, "
            f"from {start:%Y-%m-%d}; {days} days"
        )

        endpoints: list[str] = []
        audiences: list[int | None] = []
        expected_audiences: list[int] = []
        local_times: list[str | None] = []
        # Days whose next_run_time (as the campaign says before the clock moves) is not
        # that day's 09:00 in Berlin: a run planned an hour early would still start at the
        # demo's 09:01, so the occurrence itself is checked here.
        off_schedule: list[str] = []
        seen: set[str] = set()
        for day in range(days):
            fresh = rng.randint(*NEW_BROWSERS_PER_DAY)
            browsers = [
                "" if rng.random() < ANONYMOUS_SHARE else f"reader-{len(endpoints) + i}"
                for i in range(fresh)
            ]
            endpoints.extend(await platform.register(browsers))
            expected_audiences.append(len(endpoints))
            due = occurrence(start, day)
            campaign = (
                await platform.campaigns.GetCampaign(
                    campaign_service_pb2.GetCampaignRequest(campaign_id=campaign_id),
                    metadata=platform.metadata,
                    timeout=30,
                )
            ).campaign
            planned = campaign.next_run_time.ToDatetime(tzinfo=UTC)
            if not campaign.HasField("next_run_time") or planned != due:
                off_schedule.append(f"{due.astimezone(BERLIN):%Y-%m-%d}")
                progress(f"next_run_time is {planned.astimezone(BERLIN)}, expected {due}")
            clock.advance(seconds=(due + timedelta(minutes=1) - clock.now()).total_seconds())
            run = await _wait_for_new_run(platform, campaign_id, seen, run_wait_seconds)
            if run is None:
                audiences.append(None)
                local_times.append(None)
                progress(f"{due.astimezone(BERLIN):%Y-%m-%d}: NO RUN within {run_wait_seconds} s")
                continue
            seen.add(run.run_id)
            created_local = run.create_time.ToDatetime(tzinfo=UTC).astimezone(BERLIN)
            audiences.append(run.audience)
            local_times.append(f"{created_local:%H:%M}")
            progress(
                f"{created_local:%Y-%m-%d %H:%M %Z}: run {run.run_id} "
                f"{campaign_pb2.RunState.Name(run.state)}, audience {run.audience} "
                f"(expected {len(endpoints)})"
            )

        expected_received = sum(expected_audiences)
        deadline = time.monotonic() + 10
        while True:
            received = sum(platform.received(e) for e in endpoints)
            if received >= expected_received or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        runs = await platform.runs(campaign_id)
        seconds = time.perf_counter() - started
        return {
            "runs": len(runs),
            "expected_runs": days,
            "per_run_audience": audiences,
            "expected_per_run_audience": expected_audiences,
            "local_times": local_times,
            "received": received,
            "expected_received": expected_received,
            "wrong": sum(
                1 for got, want in zip(audiences, expected_audiences, strict=True) if got != want
            ),
            "off_schedule": off_schedule,
            "seconds": round(seconds, 3),
        }


async def _wait_for_new_run(
    platform: Platform, campaign_id: str, seen: set[str], timeout_seconds: float
) -> campaign_pb2.Run | None:
    """The campaign's one run not in `seen`, once it is over; None if none came."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        fresh = [run for run in await platform.runs(campaign_id) if run.run_id not in seen]
        if len(fresh) > 1:
            raise RuntimeError(f"{len(fresh)} runs started for one occurrence")
        if fresh and fresh[0].state in TERMINAL_RUN_STATES:
            return fresh[0]
        await asyncio.sleep(0.1)
    return None


def main(scenario: str, size: int, data_dir: Path | None, as_json: bool) -> int:
    """Runs `scenario` (abandoned-cart: `size` shoppers; recurring: `size` days)."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        directory = data_dir or Path(tmp)
        if scenario == "abandoned-cart":
            result = asyncio.run(run_abandoned_cart_demo(size, directory, progress=progress))
            ok = result["wrong"] == 0 and result["pushed"] == result["expected_pushed"]
            failure = "the shoppers pushed are not those who did not buy within the window"
        elif scenario == "recurring":
            result = asyncio.run(run_recurring_demo(size, directory, progress=progress))
            ok = (
                result["runs"] == result["expected_runs"]
                and result["wrong"] == 0
                and result["received"] == result["expected_received"]
                and not result["off_schedule"]
            )
            failure = (
                "the runs, their audiences or times, or the pushes received differ from expected"
            )
        else:
            raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    if not ok:
        print(f"demo FAILED: {failure}", file=sys.stderr)
        return 1
    return 0
