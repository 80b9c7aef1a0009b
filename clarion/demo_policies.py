"""`clarion demo --scenario policies`: a personalized A/B campaign under every delivery
policy at once, on a moved clock, with each policy's expected outcome checked against
what the push simulator received and what the run says of each recipient.

The site caps pushes at 2 per person per local day and keeps quiet hours from 22:00 to
08:00 (delayed to their end). People live in Berlin, New York and Tokyo; a few have two
browsers, some use Safari; most have a first_name. Earlier in the day a flash sale
reached some of them: some twice (they are at the cap), some once on one of their two
browsers (one more fits). The A/B campaign (two variants, 50/50, a personalized title,
two buttons, UTM parameters) holds out 10 % as a control group and sends at most 20 a
minute. It starts at 18:40 UTC: 03:40 in Tokyo, inside quiet hours.

Before it is sent, PreviewCampaign plans it. Then the clock moves minute by minute
through each hour the plan sends in (and jumps over hours it sends nothing in: a send
the plan did not foresee then shows up at the next planned hour, and the comparison
says so), and the demo prints:

- per policy, the expected count (from what the demo set up, and for the two hashed
  choices, the control group and the variant, from delivery's own hash functions)
  against the observed one (the simulator's decrypted pushes and the run's outcomes);
- the preview against what was delivered, per hour, and per suppression reason;
- three recipients' decrypted payloads: their name (or the fallback), buttons (none on
  Safari) and UTM parameters.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from google.protobuf import field_mask_pb2

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    site_pb2,
    site_service_pb2,
)
from clarion.common.v1 import common_pb2
from clarion.demo_live import TERMINAL_RUN_STATES, Platform, running_platform
from clarion.reporting.v1 import reporting_service_pb2
from clarion.segment.v1 import profile_pb2, segment_service_pb2
from services.delivery.domain.policies import in_control_group, person_key, variant_of
from services.kit.clock import FrozenClock
from services.kit.config import Settings

WARM_UP = datetime(2027, 5, 3, 16, 0, tzinfo=UTC)
START = datetime(2027, 5, 3, 18, 40, tzinfo=UTC)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")
CAP_PER_DAY = 2
QUIET_START, QUIET_END = "22:00", "08:00"
MAX_PER_MINUTE = 20
CONTROL_PERCENT = 10
SPLIT = (("A", 50), ("B", 50))
TWO_BROWSER_SHARE = 0.2
SAFARI_SHARE = 0.1
NAMED_SHARE = 0.8
WARM_TWICE_SHARE = 0.1  # of single-browser people outside Tokyo: at the cap
WARM_ONCE_SHARE = 0.5  # of two-browser people outside Tokyo: one browser pushed once
UTM = {"utm_source": "clarion", "utm_medium": "push", "utm_campaign": "may-picks"}
NAMES = ("Ann", "Bo", "Chidi", "Dana", "Émile", "Farah", "Gus", "Hana", "Ines", "Jun")
MINUTE_SETTLE_SECONDS = (0.3, 0.25, 5.0)  # at least; quiet for; at most
RUN_WAIT_SECONDS = 60.0


@dataclass
class Browser:
    subscriber_id: str
    endpoint: str
    kind: int  # common_pb2.Browser


@dataclass
class Person:
    profile_id: str
    zone: str
    first_name: str | None
    browsers: list[Browser] = field(default_factory=list)
    warmed: int = 0  # flash-sale pushes received before the campaign


def people(count: int, rng: random.Random) -> list[Person]:
    made = []
    for index in range(count):
        name = rng.choice(NAMES) if rng.random() < NAMED_SHARE else None
        made.append(Person(f"person-{index}", ZONES[index % len(ZONES)], name))
    return made


async def _register(platform: Platform, crowd: list[Person], rng: random.Random) -> None:
    updates = [
        profile_pb2.ProfileUpdate(
            profile_id=p.profile_id,
            operations=[
                profile_pb2.PropertyOperation(
                    name="first_name", set=profile_pb2.PropertyValue(string_value=p.first_name)
                )
            ],
        )
        for p in crowd
        if p.first_name
    ]
    for start in range(0, len(updates), 1000):
        upserted = await platform.segments.UpsertProfiles(
            segment_service_pb2.UpsertProfilesRequest(updates=updates[start : start + 1000]),
            metadata=platform.metadata,
            timeout=60,
        )
        if not all(result.ok for result in upserted.results):
            raise RuntimeError(f"UpsertProfiles refused: {upserted}")
    requests, owners = [], []
    for person in crowd:
        for _ in range(2 if rng.random() < TWO_BROWSER_SHARE else 1):
            kind = (
                common_pb2.BROWSER_SAFARI
                if rng.random() < SAFARI_SHARE
                else rng.choice(
                    (common_pb2.BROWSER_CHROME, common_pb2.BROWSER_FIREFOX, common_pb2.BROWSER_EDGE)
                )
            )
            subscription = platform.simulator.mint_subscription()
            requests.append(
                segment_service_pb2.RegisterSubscriberRequest(
                    push_subscription=common_pb2.PushSubscription(
                        endpoint=subscription.endpoint,
                        p256dh=subscription.p256dh,
                        auth=subscription.auth,
                    ),
                    browser=kind,
                    timezone=person.zone,
                    profile_id=person.profile_id,
                )
            )
            owners.append((person, subscription.endpoint, kind))
    for start in range(0, len(requests), 1000):
        registered = await platform.segments.BatchRegisterSubscribers(
            segment_service_pb2.BatchRegisterSubscribersRequest(
                requests=requests[start : start + 1000]
            ),
            metadata=platform.metadata,
            timeout=60,
        )
        for (person, endpoint, kind), result in zip(
            owners[start : start + 1000], registered.responses, strict=True
        ):
            if not result.subscriber.subscriber_id:
                raise RuntimeError(f"a browser was not registered: {result}")
            person.browsers.append(Browser(result.subscriber.subscriber_id, endpoint, kind))


async def _send_and_finish(
    platform: Platform, campaign_id: str, recipients: campaign_service_pb2.Recipients | None
) -> campaign_pb2.Run:
    sent = await platform.campaigns.SendCampaignNow(
        campaign_service_pb2.SendCampaignNowRequest(
            campaign_id=campaign_id, request_id=uuid.uuid4().hex, recipients=recipients
        ),
        metadata=platform.metadata,
        timeout=30,
    )
    return await _finished(platform, sent.run.run_id, RUN_WAIT_SECONDS)


async def _run(platform: Platform, run_id: str) -> campaign_pb2.Run:
    return (
        await platform.campaigns.GetRun(
            campaign_service_pb2.GetRunRequest(run_id=run_id),
            metadata=platform.metadata,
            timeout=30,
        )
    ).run


async def _finished(platform: Platform, run_id: str, timeout_seconds: float) -> campaign_pb2.Run:
    deadline = time.monotonic() + timeout_seconds
    while True:
        run = await _run(platform, run_id)
        if run.state in TERMINAL_RUN_STATES and run.HasField("finish_time"):
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} still {campaign_pb2.RunState.Name(run.state)}")
        await asyncio.sleep(0.1)


async def _warm_up(platform: Platform, crowd: list[Person], rng: random.Random) -> None:
    """The flash sale: twice to some single-browser people (then at the cap), once to
    one browser of some two-browser people (one push left for the day)."""
    outside_tokyo = [p for p in crowd if p.zone != "Asia/Tokyo"]
    twice = [p for p in outside_tokyo if len(p.browsers) == 1 and rng.random() < WARM_TWICE_SHARE]
    once = [p for p in outside_tokyo if len(p.browsers) == 2 and rng.random() < WARM_ONCE_SHARE]
    created = await platform.campaigns.CreateCampaign(
        campaign_service_pb2.CreateCampaignRequest(
            name="Flash sale",
            notification=common_pb2.Notification(
                title="Flash sale", body="Two hours only", target_url="https://shop.example/sale"
            ),
        ),
        metadata=platform.metadata,
        timeout=30,
    )
    campaign_id = created.campaign.campaign_id
    first = campaign_service_pb2.Recipients(
        profile_ids=[p.profile_id for p in twice],
        subscriber_ids=[p.browsers[0].subscriber_id for p in once],
    )
    await _send_and_finish(platform, campaign_id, first)
    platform.clock.advance(seconds=30 * 60)
    await _send_and_finish(
        platform,
        campaign_id,
        campaign_service_pb2.Recipients(profile_ids=[p.profile_id for p in twice]),
    )
    for person in twice:
        person.warmed = 2
    for person in once:
        person.warmed = 1


def _campaign_request() -> campaign_service_pb2.CreateCampaignRequest:
    def variant(variant_id: str, title: str, body: str) -> campaign_pb2.Variant:
        return campaign_pb2.Variant(
            variant_id=variant_id,
            split_percent=dict(SPLIT)[variant_id],
            notification=common_pb2.Notification(
                title=title,
                body=body,
                target_url="https://shop.example/picks?ref=push#top",
                icon_url="https://shop.example/icon.png",
                actions=[
                    common_pb2.NotificationAction(
                        title="See picks", url="https://shop.example/picks"
                    ),
                    common_pb2.NotificationAction(
                        title="Not now", url="https://shop.example/settings?tab=push"
                    ),
                ],
                tag="may-picks",
            ),
        )

    return campaign_service_pb2.CreateCampaignRequest(
        name="May picks",
        variants=[
            variant(
                "A",
                'Hi {{ profile.first_name | default("there") }}, your picks are in',
                "Chosen for you",
            ),
            variant(
                "B",
                '{{ profile.first_name | default("Friend") }}, 20% off your picks',
                "Today only",
            ),
        ],
        utm=campaign_pb2.UtmParameters(source="clarion", medium="push", campaign="may-picks"),
        policy=campaign_pb2.CampaignPolicy(
            max_per_minute=MAX_PER_MINUTE, control_group_percent=CONTROL_PERCENT
        ),
        labels=["demo", "policies"],
    )


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def _in_quiet_hours(moment: datetime, zone: str) -> bool:
    local = _local(moment, zone).strftime("%H:%M")
    return local >= QUIET_START or local < QUIET_END


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:00Z")


@dataclass
class Expected:
    """What the set-up says must happen to each browser of the A/B campaign."""

    reason: dict[str, str]  # subscriber id -> "" (sent) or the suppression reason word
    variant: dict[str, str]  # subscriber id -> variant
    delayed: set[str]  # sent at the end of quiet hours


def expected_outcomes(crowd: list[Person], campaign_id: str) -> Expected:
    reason: dict[str, str] = {}
    variants: dict[str, str] = {}
    delayed: set[str] = set()
    for person in crowd:
        key = person_key(person.profile_id, "")
        held_out = in_control_group(key, campaign_id, CONTROL_PERCENT)
        room = CAP_PER_DAY - person.warmed
        for browser in person.browsers:
            variants[browser.subscriber_id] = variant_of(key, campaign_id, SPLIT)
            if held_out:
                reason[browser.subscriber_id] = "control_group"
            elif room <= 0:
                reason[browser.subscriber_id] = "frequency_cap"
            else:
                room -= 1
                reason[browser.subscriber_id] = ""
                if _in_quiet_hours(START, person.zone):
                    delayed.add(browser.subscriber_id)
    return Expected(reason, variants, delayed)


async def _preview(platform: Platform, campaign_id: str) -> campaign_pb2.DeliveryPlan:
    return (
        await platform.campaigns.PreviewCampaign(
            campaign_service_pb2.PreviewCampaignRequest(campaign_id=campaign_id),
            metadata=platform.metadata,
            timeout=120,
        )
    ).plan


def _reason_word(reason: int) -> str:
    return common_pb2.DeliveryReason.Name(reason).removeprefix("DELIVERY_REASON_").lower()


async def _step_through(
    platform: Platform,
    run_id: str,
    planned_hours: set[datetime],
    received: Callable[[], int],
    progress: Callable[[str], None],
) -> campaign_pb2.Run:
    """Moves the clock a minute at a time through each planned hour, jumping over the
    others, until the run is over (or a day has passed)."""
    clock = platform.clock
    end = START + timedelta(days=1)
    while clock.now() < end:
        # What is due in this minute goes before the clock moves on.
        await _settle_minute(received)
        run = await _run(platform, run_id)
        if run.state in TERMINAL_RUN_STATES and run.HasField("finish_time"):
            return run
        now = clock.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour in planned_hours:
            clock.advance(seconds=60)
        else:
            later = sorted(h for h in planned_hours if h > hour)
            target = later[0] if later else end
            progress(f"{now:%H:%M} UTC: nothing planned until {target:%H:%M}; moving there")
            clock.advance(seconds=(target - now).total_seconds())
        if clock.now().minute == 0:
            progress(f"{clock.now():%H:%M} UTC: {received()} pushes received so far")
    return await _run(platform, run_id)


async def _settle_minute(received: Callable[[], int]) -> None:
    least, quiet, most = MINUTE_SETTLE_SECONDS
    started = time.monotonic()
    last, last_change = received(), started
    while True:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        count = received()
        if count != last:
            last, last_change = count, now
        if now - started >= most or (now - started >= least and now - last_change >= quiet):
            return


def _payload_view(payload: dict[str, Any], person: Person, browser: Browser) -> dict[str, Any]:
    return {
        "profile_id": person.profile_id,
        "first_name": person.first_name,
        "browser": common_pb2.Browser.Name(browser.kind).removeprefix("BROWSER_").lower(),
        "time_zone": person.zone,
        "payload": {
            key: payload[key]
            for key in ("title", "body", "url", "actions", "tag", "icon")
            if key in payload
        },
    }


def _utm_of(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query)
    return {key: query[key][-1] for key in UTM if key in query}


async def run_policies_demo(
    person_count: int,
    data_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
    settings: Settings | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    rng = random.Random(seed)
    clock = FrozenClock(WARM_UP)
    settings = settings or Settings(data_dir=data_dir, log_level="WARNING", log_format="console")
    async with running_platform(settings, clock, "Policies demo") as platform:
        started = time.perf_counter()
        await platform.sites.UpdateSite(
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(
                    timezone="Europe/Berlin",
                    delivery_policy=campaign_pb2.DeliveryPolicy(
                        frequency_cap=campaign_pb2.FrequencyCap(per_day=CAP_PER_DAY),
                        quiet_hours=campaign_pb2.QuietHours(
                            start=QUIET_START,
                            end=QUIET_END,
                            action=campaign_pb2.QUIET_HOURS_ACTION_DELAY,
                        ),
                    ),
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["timezone", "delivery_policy"]),
            ),
            metadata=platform.metadata,
            timeout=30,
        )
        crowd = people(person_count, rng)
        await _register(platform, crowd, rng)
        browsers = {b.subscriber_id: (p, b) for p in crowd for b in p.browsers}
        progress(
            f"site {platform.site_id}: {len(crowd)} people, {len(browsers)} browsers in "
            f"{', '.join(ZONES)}; cap {CAP_PER_DAY} a day, quiet hours {QUIET_START}-{QUIET_END}"
        )
        await _warm_up(platform, crowd, rng)
        progress(
            f"flash sale: {sum(p.warmed == 2 for p in crowd)} people at the cap, "
            f"{sum(p.warmed == 1 for p in crowd)} with one push left"
        )

        clock.advance(seconds=(START - clock.now()).total_seconds())
        created = await platform.campaigns.CreateCampaign(
            _campaign_request(), metadata=platform.metadata, timeout=30
        )
        campaign_id = created.campaign.campaign_id
        warnings = [w.reason for w in created.warnings]
        plan = await _preview(platform, campaign_id)
        planned: Counter[str] = Counter()
        planned_suppressed: Counter[str] = Counter()
        planned_hours: set[datetime] = set()
        for row in plan.rows:
            hour = row.hour_start.ToDatetime(tzinfo=UTC)
            if row.sent:
                planned[_hour(hour)] += row.sent
                planned_hours.add(hour)
            for suppression in row.suppressed:
                planned_suppressed[_reason_word(suppression.reason)] += suppression.count
        progress(f"preview at {START:%H:%M} UTC: {dict(sorted(planned.items()))} sent per hour")

        expected = expected_outcomes(crowd, campaign_id)

        # When each push arrived on the moved clock: the simulator stamps real time (the
        # services sign VAPID tokens by it), so the demo notes the clock's time at which
        # it first sees each message; it polls after every minute it moves.
        seen_at: dict[str, float] = {}

        def ours() -> list[tuple[Person, Browser, Any]]:
            got = []
            for person, browser in browsers.values():
                for message in platform.simulator.messages(browser.endpoint):
                    payload = message.payload() or {}
                    if payload.get("campaign_id") == campaign_id:
                        seen_at.setdefault(message.id, clock.now().timestamp())
                        got.append((person, browser, message))
            return got

        sent = await platform.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=platform.metadata,
            timeout=30,
        )
        run = await _step_through(
            platform, sent.run.run_id, planned_hours, lambda: len(ours()), progress
        )
        received = ours()
        seconds = time.perf_counter() - started

        outcome: dict[str, str] = {}
        for subscriber_id in browsers:
            recipient = (
                await platform.campaigns.GetRunRecipient(
                    campaign_service_pb2.GetRunRecipientRequest(
                        run_id=run.run_id, subscriber_id=subscriber_id
                    ),
                    metadata=platform.metadata,
                    timeout=30,
                )
            ).recipient
            outcome[subscriber_id] = (
                ""
                if recipient.status == campaign_pb2.RECIPIENT_STATUS_SENT
                else _reason_word(recipient.reason)
            )
        report = (
            await platform.reports.GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                metadata=platform.metadata,
                timeout=30,
            )
        ).report
        return _result(
            crowd, expected, outcome, received, seen_at, planned, planned_suppressed, report,
            run, warnings, seconds,
        )  # fmt: skip


def _result(
    crowd: list[Person],
    expected: Expected,
    outcome: dict[str, str],
    received: list[tuple[Person, Browser, Any]],
    seen_at: dict[str, float],
    planned: Counter[str],
    planned_suppressed: Counter[str],
    report: Any,
    run: campaign_pb2.Run,
    warnings: list[str],
    seconds: float,
) -> dict[str, Any]:
    wanted = Counter(reason for reason in expected.reason.values() if reason)
    observed = Counter(reason for reason in outcome.values() if reason)
    got_by_subscriber: dict[str, list[dict[str, Any]]] = {}
    per_minute: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    at_quiet_end: set[str] = set()
    in_quiet_hours = 0
    for person, browser, message in received:
        at = datetime.fromtimestamp(seen_at[message.id], UTC)
        got_by_subscriber.setdefault(browser.subscriber_id, []).append(message.payload() or {})
        per_minute[at.strftime("%H:%M")] += 1
        delivered[_hour(at)] += 1
        if _in_quiet_hours(at, person.zone):
            in_quiet_hours += 1
        if _local(at, person.zone).strftime("%H") == QUIET_END[:2]:
            at_quiet_end.add(browser.subscriber_id)
    sent_ids = {s for s, reason in expected.reason.items() if not reason}
    variants_expected = Counter(expected.variant[s] for s in sent_ids)
    variants_observed: Counter[str] = Counter()
    personalized_ok = utm_ok = safari_ok = 0
    for person, browser, message in received:
        payload = message.payload() or {}
        title = payload.get("title", "")
        variant = "A" if "your picks are in" in title else "B" if "off your picks" in title else "?"
        variants_observed[variant] += 1
        name = person.first_name or ("there" if variant == "A" else "Friend")
        personalized_ok += title.startswith(f"Hi {name}," if variant == "A" else f"{name},")
        urls = [payload.get("url", "")] + [a.get("url", "") for a in payload.get("actions", [])]
        utm_ok += all(_utm_of(url) == UTM for url in urls)
        is_safari = browser.kind == common_pb2.BROWSER_SAFARI
        safari_ok += (
            (not payload.get("actions") and not payload.get("icon"))
            if is_safari
            else (len(payload.get("actions", [])) == 2)
        )
    policies = {
        "frequency_cap": {
            "expected": wanted["frequency_cap"],
            "observed": observed["frequency_cap"],
        },
        "control_group": {
            "expected": wanted["control_group"],
            "observed": observed["control_group"],
        },
        "control_group_in_report": {
            "expected": wanted["control_group"],
            "observed": report.control_group,
        },
        "quiet_hours_delayed_to_08:00_local": {
            "expected": len(expected.delayed),
            "observed": len(at_quiet_end & expected.delayed),
        },
        "sent_inside_quiet_hours": {"expected": 0, "observed": in_quiet_hours},
        "throttle_max_per_minute": {
            "expected": f"<= {MAX_PER_MINUTE}",
            "observed": max(per_minute.values(), default=0),
        },
        "sent": {"expected": len(sent_ids), "observed": len(received)},
        "right_browsers": {
            "expected": len(sent_ids),
            "observed": len(sent_ids & set(got_by_subscriber)),
        },
        "once_each": {
            "expected": len(sent_ids),
            "observed": sum(1 for got in got_by_subscriber.values() if len(got) == 1),
        },
        "variant_A": {"expected": variants_expected["A"], "observed": variants_observed["A"]},
        "variant_B": {"expected": variants_expected["B"], "observed": variants_observed["B"]},
        "right_variant_per_browser": {
            "expected": len(sent_ids),
            "observed": sum(
                1
                for person, browser, message in received
                if ("your picks are in" in (message.payload() or {}).get("title", ""))
                == (expected.variant[browser.subscriber_id] == "A")
            ),
        },
        "personalized_title": {"expected": len(sent_ids), "observed": personalized_ok},
        "utm_on_every_click_url": {"expected": len(sent_ids), "observed": utm_ok},
        "buttons_except_safari": {"expected": len(sent_ids), "observed": safari_ok},
    }
    hours = sorted(set(planned) | set(delivered))
    per_hour = [
        {"hour": hour, "preview_sent": planned[hour], "delivered": delivered[hour]}
        for hour in hours
    ]
    suppressed = {
        reason: {"preview": planned_suppressed[reason], "observed": observed[reason]}
        for reason in sorted(set(planned_suppressed) | set(observed))
    }
    wrong = sum(
        1
        for name, counts in policies.items()
        if name != "throttle_max_per_minute" and counts["expected"] != counts["observed"]
    )
    wrong += policies["throttle_max_per_minute"]["observed"] > MAX_PER_MINUTE
    wrong += sum(1 for row in per_hour if row["preview_sent"] != row["delivered"])
    wrong += sum(1 for counts in suppressed.values() if counts["preview"] != counts["observed"])
    return {
        "people": len(crowd),
        "browsers": len(expected.reason),
        "run_state": campaign_pb2.RunState.Name(run.state),
        "policies": policies,
        "preview_vs_delivered_per_hour": per_hour,
        "preview_vs_observed_suppressed": suppressed,
        "payloads": _three_payloads(received),
        # Safari may be in the audience: its copy drops the icon and the buttons.
        "create_warnings": warnings,
        "wrong": wrong,
        "seconds": round(seconds, 3),
    }


def _three_payloads(received: list[tuple[Person, Browser, Any]]) -> list[dict[str, Any]]:
    """A named person's variant A and variant B, and a person without a name (or on
    Safari), as their browsers decrypted them."""
    picks: list[dict[str, Any]] = []
    wanted: list[Callable[[Person, Browser, dict[str, Any]], bool]] = [
        lambda p, b, m: bool(p.first_name) and "your picks are in" in m.get("title", ""),
        lambda p, b, m: bool(p.first_name) and "off your picks" in m.get("title", ""),
        lambda p, b, m: p.first_name is None or b.kind == common_pb2.BROWSER_SAFARI,
    ]
    for match in wanted:
        for person, browser, message in received:
            payload = message.payload() or {}
            if match(person, browser, payload):
                picks.append(_payload_view(payload, person, browser))
                break
    return picks


def main(person_count: int, data_dir: Path | None, as_json: bool) -> int:
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        result = asyncio.run(
            run_policies_demo(person_count, data_dir or Path(tmp), progress=progress)
        )
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        for name, counts in result["policies"].items():
            print(f"{name:>36}: expected {counts['expected']}, observed {counts['observed']}")
        for row in result["preview_vs_delivered_per_hour"]:
            print(f"{row['hour']:>36}: preview {row['preview_sent']}, delivered {row['delivered']}")
        for reason, counts in result["preview_vs_observed_suppressed"].items():
            label = f"suppressed {reason}"
            print(f"{label:>36}: preview {counts['preview']}, observed {counts['observed']}")
        for view in result["payloads"]:
            print(json.dumps(view, ensure_ascii=False, indent=2))
    if result["wrong"]:
        print(
            f"demo FAILED: {result['wrong']} expected counts differ from observed", file=sys.stderr
        )
        return 1
    return 0
