"""`clarion demo --scenario segments`: a campaign to a segment, end to end, checked.

Starts the embedded stack and the push-service simulator, registers simulated browsers
(some identified as profiles, some anonymous, some later unsubscribed), sets profile
properties and tracks 10 days of events through segment's gRPC API, saves the segment
"city in Paris, Berlin or Madrid AND added to cart in the last 7 days AND did not buy
in the last 7 days", estimates its reach, sends a campaign to it and waits until every
recipient has an outcome. It then compares who the simulator says received the push
with the subscribers a plain-Python evaluation of the same definition selects over the
data it generated, and prints `expected`, `received` and `mismatches`.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import (
    profile_pb2,
    segment_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
)
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

CITIES = ("Paris", "Berlin", "Madrid", "Rome", "Lisbon")
TARGET_CITIES = ("Paris", "Berlin", "Madrid")
CART, CHARGED = "Added To Cart", "Charged"
BROWSERS = (common_pb2.BROWSER_CHROME, common_pb2.BROWSER_FIREFOX, common_pb2.BROWSER_EDGE)
BATCH = 1000
HISTORY_DAYS = 10
WINDOW_DAYS = 7
# No event lands this close to the window's edge, so the few seconds between generating
# the data and the run's snapshot cannot move one across it.
EDGE_MARGIN = timedelta(hours=2)


@dataclass
class Person:
    profile_id: str | None
    city: str | None
    # (endpoint, subscription, browser); anonymous people have exactly one.
    subscriptions: list[Any] = field(default_factory=list)
    subscriber_ids: list[str] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    events: list[tuple[str, datetime, float]] = field(default_factory=list)


def _stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def _event_time(rng: random.Random, now: datetime) -> datetime:
    while True:
        moment = now - timedelta(seconds=rng.uniform(60, HISTORY_DAYS * 86400))
        if abs((now - moment) - timedelta(days=WINDOW_DAYS)) > EDGE_MARGIN:
            return moment


def generate(people: int, rng: random.Random, simulator: Any, now: datetime) -> list[Person]:
    """Profiles with 0-2 browsers and a city; anonymous browsers; 10 days of carts and
    purchases, for everyone alike."""
    generated = []
    for index in range(people):
        anonymous = rng.random() < 0.2
        person = Person(
            profile_id=None if anonymous else f"user-{index}",
            city=None if anonymous else rng.choice(CITIES),
        )
        browsers = 1 if anonymous else rng.choice((0, 1, 1, 1, 2))
        for _ in range(browsers):
            person.subscriptions.append((simulator.mint_subscription(), rng.choice(BROWSERS)))
        if not person.subscriptions and person.profile_id is None:
            continue
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            person.events.append((CART, _event_time(rng, now), 0.0))
        for _ in range(rng.choice((0, 0, 0, 1))):
            person.events.append((CHARGED, _event_time(rng, now), round(rng.uniform(5, 200), 2)))
        generated.append(person)
    return generated


def definition() -> segment_pb2.SegmentDefinition:
    return segment_pb2.SegmentDefinition(
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
                        behaviour=segment_pb2.BehaviourCondition(
                            event_name=CART, window=segment_pb2.TimeWindow(last_days=WINDOW_DAYS)
                        )
                    ),
                    segment_pb2.Condition(
                        behaviour=segment_pb2.BehaviourCondition(
                            event_name=CHARGED,
                            did_not=True,
                            window=segment_pb2.TimeWindow(last_days=WINDOW_DAYS),
                        )
                    ),
                ]
            )
        )
    )


def expected_recipients(people: list[Person], now: datetime) -> set[str]:
    """The definition evaluated in plain Python over the generated data: the active
    subscribers of the people it selects."""
    since = now - timedelta(days=WINDOW_DAYS)
    selected = set()
    for person in people:
        carted = any(name == CART and moment >= since for name, moment, _ in person.events)
        charged = any(name == CHARGED and moment >= since for name, moment, _ in person.events)
        if person.city in TARGET_CITIES and carted and not charged:
            selected.update(set(person.subscriber_ids) - person.unsubscribed)
    return selected


async def load(
    segments: segment_service_pb2_grpc.SegmentServiceStub,
    metadata: tuple[tuple[str, str], ...],
    people: list[Person],
    rng: random.Random,
) -> dict[str, int]:
    registrations = [
        (person, subscription, browser)
        for person in people
        for subscription, browser in person.subscriptions
    ]
    for start in range(0, len(registrations), BATCH):
        batch = registrations[start : start + BATCH]
        response = await segments.BatchRegisterSubscribers(
            segment_service_pb2.BatchRegisterSubscribersRequest(
                requests=[
                    segment_service_pb2.RegisterSubscriberRequest(
                        push_subscription=common_pb2.PushSubscription(
                            endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                        ),
                        browser=browser,
                        timezone="UTC",
                        profile_id=person.profile_id or "",
                    )
                    for person, s, browser in batch
                ]
            ),
            metadata=metadata,
            timeout=60,
        )
        for (person, _, _), registered in zip(batch, response.responses, strict=True):
            person.subscriber_ids.append(registered.subscriber.subscriber_id)
    profiles = [p for p in people if p.profile_id is not None]
    for start in range(0, len(profiles), BATCH):
        response = await segments.UpsertProfiles(
            segment_service_pb2.UpsertProfilesRequest(
                updates=[
                    profile_pb2.ProfileUpdate(
                        profile_id=p.profile_id,
                        operations=[
                            profile_pb2.PropertyOperation(
                                name="city", set=profile_pb2.PropertyValue(string_value=p.city)
                            )
                        ],
                    )
                    for p in profiles[start : start + BATCH]
                ]
            ),
            metadata=metadata,
            timeout=60,
        )
        _require_ok("UpsertProfiles", response.results)
    events = []
    for person in people:
        for name, moment, amount in person.events:
            events.append(
                profile_pb2.Event(
                    event_id=uuid.uuid4().hex,
                    name=name,
                    profile_id=person.profile_id or "",
                    subscriber_id="" if person.profile_id else person.subscriber_ids[0],
                    occur_time=_stamp(moment),
                    properties=[
                        profile_pb2.Property(
                            name="amount", value=profile_pb2.PropertyValue(number_value=amount)
                        )
                    ]
                    if name == CHARGED
                    else [],
                )
            )
    for start in range(0, len(events), BATCH):
        response = await segments.TrackEvents(
            segment_service_pb2.TrackEventsRequest(events=events[start : start + BATCH]),
            metadata=metadata,
            timeout=60,
        )
        _require_ok("TrackEvents", response.results)
    # A few browsers leave: they stay in the data but are not reachable.
    for person in rng.sample(people, k=max(1, len(people) // 20)):
        if person.subscriber_ids:
            gone = person.subscriber_ids[0]
            await segments.UnsubscribeSubscriber(
                segment_service_pb2.UnsubscribeSubscriberRequest(
                    subscriber_id=gone, reason="user_unsubscribed"
                ),
                metadata=metadata,
                timeout=30,
            )
            person.unsubscribed.add(gone)
    return {
        "profiles": len(profiles),
        "subscribers": len(registrations),
        "events": len(events),
    }


def _require_ok(call: str, results: Any) -> None:
    refused = [r for r in results if not r.ok]
    if refused:
        raise RuntimeError(f"{call} refused {len(refused)} items, e.g. {refused[0].message}")


async def run_segments_demo(
    people_count: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    seed: int = 7,
    timeout_seconds: float = 300.0,
) -> dict[str, Any]:
    from clarion.demo import wait_for_run
    from clarion.simulator import PushServiceSimulator
    from services.campaign.admin import create_site

    # The demo prints its own progress; the services log warnings only (as its help says).
    settings = settings or Settings(data_dir=data_dir, log_level="WARNING", log_format="console")
    settings.allow_insecure_endpoints = True  # the simulator listens on plain http
    rng = random.Random(seed)
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True)
    segment_channel = client_channel(stack.address("segment"))
    campaign_channel = client_channel(stack.address("campaign"))
    try:
        site = await create_site(settings, "Segments demo", "mailto:demo@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign_channel)

        now = datetime.now(UTC)
        people = generate(people_count, rng, simulator, now)
        progress(f"site {site.site_id}; loading {len(people)} people, their browsers and events")
        started = time.perf_counter()
        loaded = await load(segments, metadata, people, rng)
        load_seconds = time.perf_counter() - started

        saved = await segments.CreateSegment(
            segment_service_pb2.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="Cart abandoners in Paris, Berlin, Madrid",
                    definition=definition(),
                )
            ),
            metadata=metadata,
            timeout=30,
        )
        segment_id = saved.segment.segment_id
        audience = segment_pb2.AudienceSelector(segment_id=segment_id)
        reach = await segments.EstimateReach(
            segment_service_pb2.EstimateReachRequest(audience=audience, exact=True),
            metadata=metadata,
            timeout=60,
        )
        progress(
            f"segment {segment_id}: {reach.profiles} people, "
            f"{reach.reachable_subscribers} reachable subscribers"
        )

        created = await campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Come back to your cart",
                notification=common_pb2.Notification(
                    title="Your cart misses you",
                    body="Everything you picked is still there",
                    target_url="https://shop.example/cart",
                ),
                ttl_seconds=3600,
                urgency=common_pb2.URGENCY_NORMAL,
                audience=audience,
            ),
            metadata=metadata,
            timeout=30,
        )
        campaign_id = created.campaign.campaign_id
        send_started = time.perf_counter()
        run = await campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=metadata,
            timeout=30,
        )
        await wait_for_run(campaigns, run.run.run_id, metadata, progress, timeout_seconds)
        send_seconds = time.perf_counter() - send_started

        expected = expected_recipients(people, datetime.now(UTC))
        received = set()
        for person in people:
            for (subscription, _), subscriber_id in zip(
                person.subscriptions, person.subscriber_ids, strict=True
            ):
                for message in simulator.messages(subscription.endpoint):
                    payload = message.payload() or {}
                    if payload.get("campaign_id") == campaign_id:
                        received.add(subscriber_id)
        return {
            **loaded,
            "load_seconds": round(load_seconds, 3),
            "segment_id": segment_id,
            "reach_people": reach.profiles,
            "reach_subscribers": reach.reachable_subscribers,
            "reach_by_browser": {
                common_pb2.Browser.Name(b.browser).removeprefix("BROWSER_").lower(): b.subscribers
                for b in reach.browsers
            },
            "send_seconds": round(send_seconds, 3),
            "expected": len(expected),
            "received": len(received),
            "mismatches": len(expected ^ received),
        }
    finally:
        await segment_channel.close()
        await campaign_channel.close()
        await stack.stop()
        await simulator.stop()


def main(people: int, data_dir: Path | None, as_json: bool) -> int:
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        result = asyncio.run(run_segments_demo(people, data_dir or Path(tmp), progress=progress))
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    ok = result["mismatches"] == 0 and result["reach_subscribers"] == result["expected"]
    if not ok:
        print(
            "demo FAILED: the received set differs from the definition's evaluation "
            "(or the reach estimate from it)",
            file=sys.stderr,
        )
        return 1
    return 0
