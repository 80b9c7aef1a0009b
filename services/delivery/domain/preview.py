"""The delivery plan of a run before it starts: per hour, browser and variant, how many
would be sent and how many suppressed, and why.

It walks the same decisions a run takes, with the same functions, in the order a run
takes them: the audience sample (`worker.audience_sample`: people outside it are not in
the run at all) and each person's variant (`worker.recipient_variant`), the queue-time
plan (`worker.recipient_plan`: control group, local time, cut-off, quiet hours at the
due time), then at each send the send-time checks of `worker._admit` — quiet hours again
(`policies.quiet_hours`), the frequency cap (`policy_store.take_send`, on the people's
counts as they are now plus the sends this plan makes), the throttle (at most the
campaign's and the site's per-minute limit; a send over it waits for the next minute,
as a deferred one does) — and the TTL and cut-off a waiting send can run into. What it
cannot know is left out and said so: other campaigns' sends (the site's throttle and
caps are shared with them), what push services will answer (a plan's "sent" is "handed
to the push service") and what personalization will make of each person's values.

`DeliveryPreviews.preview` serves PreviewDeliveryPlan: it reads the audience from
segment page by page (as a run's preparer does, under a key of its own), the cap counts
of each page's people, and plans; it stores nothing in delivery.
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.content import run_contexts
from services.delivery.domain.policies import (
    Policy,
    local_day,
    person_key,
    policy_from_proto,
    quiet_hours,
)
from services.delivery.domain.ports import AudienceSource, PeerUnavailable
from services.delivery.domain.rules import Reason
from services.delivery.domain.runs import (
    MAX_LISTED_AUDIENCE,
    MAX_TTL_SECONDS,
    _check_id,
    _check_profile_id,
    _check_sample,
)
from services.delivery.domain.timing import RunTiming, timing_from_proto
from services.delivery.domain.worker import (
    audience_sample,
    audience_slices,
    recipient_plan,
    recipient_variant,
)
from services.delivery.policy_store import Counts, take_send
from services.delivery.store import DeliveryStore, Member
from services.kit.clock import Clock
from services.kit.errors import FailedPrecondition, InvalidArgument, Unavailable

# A send deferred this many times (throttle minutes, quiet windows) is given up on: a
# plan must end even for a policy no send can ever meet.
MAX_DEFERRALS = 100_000
MAX_VARIANTS = 5
# How long a start may be put off (PreviewDeliveryPlanRequest.start_after_seconds).
MAX_START_AFTER_SECONDS = 7 * 24 * 3600
# Segment keeps a selector's audience under a key; a preview's is its own, never a run's.
PREVIEW_KEY_PREFIX = "preview_"


@dataclass
class PlanCell:
    """One hour, browser and variant of a plan."""

    sent: int = 0
    # Reason word -> recipients suppressed (or expired, reason expired_ttl) in the hour.
    suppressed: Counter[str] = field(default_factory=Counter)


@dataclass
class DeliveryPlan:
    # (hour start, browser, variant) -> what happens in that hour.
    cells: dict[tuple[datetime, int, str], PlanCell] = field(default_factory=dict)
    # Recipients planned, sent or suppressed (the sample's, when there is one).
    audience: int = 0

    def record(self, at: datetime, browser: int, variant: str = "", reason: str = "") -> None:
        key = (at.replace(minute=0, second=0, microsecond=0), browser, variant)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = PlanCell()
        if reason:
            cell.suppressed[reason] += 1
        else:
            cell.sent += 1

    def totals(self) -> tuple[int, Counter[str]]:
        sent, suppressed = 0, Counter[str]()
        for cell in self.cells.values():
            sent += cell.sent
            suppressed.update(cell.suppressed)
        return sent, suppressed

    def sent_per_hour(self) -> dict[datetime, int]:
        hours: Counter[datetime] = Counter()
        for (hour, _, _), cell in self.cells.items():
            if cell.sent:
                hours[hour] += cell.sent
        return dict(sorted(hours.items()))

    def rows(self) -> list[tuple[tuple[datetime, int, str], PlanCell]]:
        """The cells in time order, then browser, then variant."""
        return sorted(self.cells.items(), key=lambda item: item[0])


# A member waiting for its send, kept small (a plan may hold a million): due, browser,
# variant, person key ("" when no cap counts it), time zone. Kept in arrival order.
_Waiting = tuple[datetime, int, str, str, str]


class Planner:
    """A run's plan, fed its audience page by page (`add`, then the cap counts of the
    people it names, `count_sends`), and ended by `finish`: queue-time decisions are
    taken as members come, send-time ones once every member is known, in due order."""

    def __init__(
        self,
        *,
        timing: RunTiming,
        policy: Policy,
        campaign_id: str,
        ttl_seconds: int,
        now: datetime,
        sample: tuple[int, int] | None = None,
        variants: Sequence[tuple[str, int]] = (),
    ) -> None:
        self._timing = timing
        self._policy = policy
        self._ttl_seconds = ttl_seconds
        self._now = now
        # The queue-time steps of a run's preparer, in its order.
        self._in_sample = audience_sample(sample, campaign_id)
        self._variant = recipient_variant(variants, campaign_id)
        self._queue_plan = recipient_plan(timing, policy, campaign_id, now)
        self._waiting: list[_Waiting] = []
        self._counts: dict[str, Counts] = {}
        self.plan = DeliveryPlan()

    def add(self, members: Iterable[Member]) -> list[str]:
        """Takes the queue-time decisions for these members; returns the person keys
        whose cap counts the plan needs (none without a cap)."""
        capped = self._policy.capped
        wanted: dict[str, None] = {}
        for member in members:
            if self._in_sample is not None and not self._in_sample(member):
                continue  # not in the run at all
            self.plan.audience += 1
            variant = self._variant(member) if self._variant is not None else ""
            if member.unsubscribed:
                self.plan.record(self._now, member.browser, variant, Reason.UNSUBSCRIBED.value)
                continue
            due, reason = (
                self._queue_plan(member) if self._queue_plan is not None else (None, "")
            )
            if reason:
                self.plan.record(self._now, member.browser, variant, reason)
                continue
            key = person_key(member.profile_id, member.subscriber_id) if capped else ""
            if capped:
                wanted[key] = None
            self._waiting.append(
                (
                    due or self._now,
                    member.browser,
                    variant,
                    key,
                    sys.intern(member.timezone),
                )
            )
        return list(wanted)

    def count_sends(self, sends_so_far: Mapping[str, Counts]) -> None:
        """The cap counts of people `add` named, as they are now (people_sends; a
        person met on several pages may be given again: the same counts, as none of the
        plan's own is taken before `finish`)."""
        for key, days in sends_so_far.items():
            self._counts[key] = dict(days)

    def finish(self) -> DeliveryPlan:
        policy, plan = self._policy, self.plan
        waiting, self._waiting = self._waiting, []
        # In due order; the sort is stable, so arrival order among equals, as a run's.
        waiting.sort(key=itemgetter(0))
        expires = self._now + timedelta(seconds=self._ttl_seconds)
        limits = [
            limit for limit in (policy.campaign_max_per_minute, policy.site_max_per_minute) if limit
        ]
        per_minute = min(limits) if limits else 0
        used: Counter[datetime] = Counter()
        # For each full minute, the next minute that may have room (a path-halving chain).
        next_free: dict[datetime, datetime] = {}

        def free_minute(minute: datetime) -> datetime:
            while used[minute] >= per_minute:
                onward = next_free.get(minute, minute + timedelta(minutes=1))
                next_free[minute] = next_free.get(onward, onward)
                minute = onward
            return minute

        for at, browser, variant, key, timezone in waiting:
            when, reason = _sent_or_why(
                key, timezone, at, policy, self._timing, expires, self._counts,
                per_minute, used, free_minute,
            )  # fmt: skip
            plan.record(when, browser, variant, reason)
        return plan


def plan_delivery(
    members: Iterable[Member],
    *,
    timing: RunTiming,
    policy: Policy,
    campaign_id: str,
    ttl_seconds: int,
    now: datetime,
    sends_so_far: Mapping[str, Counts],
    sample: tuple[int, int] | None = None,
    variants: Sequence[tuple[str, int]] = (),
) -> DeliveryPlan:
    """The plan of a run of `members` starting `now` (its snapshot time).
    `sends_so_far`: the frequency-cap counts of the people concerned as they are now
    (policy_store.people_sends). `sample`: [start, end) basis points of the people in
    the run (RunAudience.sample); `variants`: (variant id, weight percent) in the run's
    order, each member's recorded in its cell."""
    planner = Planner(
        timing=timing,
        policy=policy,
        campaign_id=campaign_id,
        ttl_seconds=ttl_seconds,
        now=now,
        sample=sample,
        variants=variants,
    )
    planner.add(members)
    planner.count_sends(sends_so_far)
    return planner.finish()


def _sent_or_why(
    key: str,
    timezone: str,
    at: datetime,
    policy: Policy,
    timing: RunTiming,
    expires: datetime,
    counts: dict[str, Counts],
    per_minute: int,
    used: Counter[datetime],
    free_minute: Callable[[datetime], datetime],
) -> tuple[datetime, str]:
    """When the member's push goes (or why it does not, and when that is decided)."""
    for _ in range(MAX_DEFERRALS):
        if timing.cut_off_time is not None and at > timing.cut_off_time:
            return timing.cut_off_time, Reason.CUT_OFF.value
        if at >= expires:
            return expires, Reason.EXPIRED_TTL.value
        if policy.quiet:
            when, reason = quiet_hours(policy, timezone, at, policy.default_timezone)
            if reason:
                return at, reason
            if when is not None and when > at:
                at = when
                continue
        day = local_day(timezone, at, policy.default_timezone)
        if policy.capped and not take_send(
            counts.setdefault(key, {}), day, policy.cap_per_day, policy.cap_per_week
        ):
            return at, Reason.FREQUENCY_CAP.value
        if per_minute:
            minute = at.replace(second=0, microsecond=0)
            slot = free_minute(minute)
            if slot != minute:
                # Deferred to a later minute: its cap send is given back, as the
                # admission gives back a deferred one, and it is admitted again then.
                if policy.capped:
                    counts[key][day] -= 1
                at = slot
                continue
            used[minute] += 1
        return at, ""
    return at, Reason.CUT_OFF.value


# PreviewDeliveryPlan.


@dataclass(frozen=True)
class PreviewRequest:
    """A PreviewDeliveryPlanRequest as the adapter hands it over."""

    campaign_id: str
    ttl_seconds: int
    # RunAudience: a listed audience (subscriber_ids, profile_ids) or a serialized
    # AudienceSelector (b"": every reachable subscriber); its sample and contexts.
    subscriber_ids: Sequence[str] = ()
    profile_ids: Sequence[str] = ()
    selector: bytes = b""
    sample: delivery_pb2.AudienceSample | None = None
    contexts: Sequence[delivery_pb2.RecipientContext] = ()
    timing: delivery_pb2.RunTiming | None = None
    policy: delivery_pb2.RunPolicy | None = None
    # (variant id, weight percent), in the run's order.
    variants: Sequence[tuple[str, int]] = ()
    start_after_seconds: int = 0


@dataclass(frozen=True)
class Preview:
    snapshot_time: datetime
    plan: DeliveryPlan


class DeliveryPreviews:
    def __init__(
        self, store: DeliveryStore, audience: AudienceSource, clock: Clock, page_size: int
    ) -> None:
        self._store = store
        self._audience = audience
        self._clock = clock
        self._page_size = page_size

    async def preview(self, site_id: str, request: PreviewRequest) -> Preview:
        """The plan of a run with these settings starting start_after_seconds from now,
        of the audience as segment has it now. Checked as StartDeliveryRun checks a run
        (INVALID_ARGUMENT naming the field); FAILED_PRECONDITION AUDIENCE_REFUSED when
        segment refuses the audience, UNAVAILABLE SEGMENT_UNAVAILABLE when it cannot be
        reached."""
        now = self._clock.now()
        start = now + timedelta(seconds=_checked_start_after(request.start_after_seconds))
        _check_id(request.campaign_id, "campaign_id")
        if not 0 < request.ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidArgument(
                "INVALID_TTL",
                f"ttl_seconds is {request.ttl_seconds}; give 1 to {MAX_TTL_SECONDS}",
                field="ttl_seconds",
            )
        _check_listed(request.subscriber_ids, request.profile_ids)
        run_contexts(request.contexts)
        sample = _check_sample(request.sample) if request.sample is not None else None
        timing = timing_from_proto(request.timing, start) if request.timing else RunTiming()
        policy = policy_from_proto(request.policy) if request.policy else Policy()
        variants = _checked_variants(request.variants)

        planner = Planner(
            timing=timing,
            policy=policy,
            campaign_id=request.campaign_id,
            ttl_seconds=request.ttl_seconds,
            now=start,
            sample=sample,
            variants=variants,
        )
        listed = bool(request.subscriber_ids or request.profile_ids)
        selector = b"" if listed else request.selector
        # Segment keeps a selector's members under this key (and drops it with the
        # site's other kept audiences after 30 days); a new key reads the audience now.
        audience_key = f"{PREVIEW_KEY_PREFIX}{uuid.uuid4().hex}" if selector else ""
        slices = audience_slices(request.subscriber_ids, request.profile_ids)
        # Two slices may reach the same subscriber; a run queues it once.
        seen: set[str] | None = set() if len(slices) > 1 else None
        for subscriber_ids, profile_ids in slices:
            token = ""
            while True:
                try:
                    page = await self._audience.audience_page(
                        site_id,
                        now,
                        subscriber_ids,
                        token,
                        self._page_size,
                        selector=selector,
                        audience_key=audience_key,
                        profile_ids=profile_ids,
                    )
                except PeerUnavailable as error:
                    raise _audience_error(error) from None
                wanted = planner.add(_once(page.members, seen))
                if wanted:
                    planner.count_sends(await self._store.people_sends(site_id, wanted))
                token = page.next_page_token
                if not token:
                    break
        return Preview(now, planner.finish())


def _once(members: Sequence[Member], seen: set[str] | None) -> list[Member]:
    """The page's members not met before (a run queues a subscriber once)."""
    fresh: dict[str, Member] = {}
    for member in members:
        if seen is not None:
            if member.subscriber_id in seen:
                continue
            seen.add(member.subscriber_id)
        fresh.setdefault(member.subscriber_id, member)
    return list(fresh.values())


def _checked_start_after(seconds: int) -> int:
    if not 0 <= seconds <= MAX_START_AFTER_SECONDS:
        raise InvalidArgument(
            "INVALID_FIELD",
            f"start_after_seconds is {seconds}; give 0 to {MAX_START_AFTER_SECONDS}",
            field="start_after_seconds",
        )
    return seconds


def _check_listed(subscriber_ids: Sequence[str], profile_ids: Sequence[str]) -> None:
    """A listed audience as StartDeliveryRun takes one."""
    if len(subscriber_ids) + len(profile_ids) > MAX_LISTED_AUDIENCE:
        raise InvalidArgument(
            "TOO_MANY_RECIPIENTS",
            f"audience names {len(subscriber_ids)} subscribers and {len(profile_ids)} "
            f"profiles; a listed audience takes at most {MAX_LISTED_AUDIENCE} ids in all",
            field="audience",
        )
    for index, subscriber_id in enumerate(subscriber_ids):
        _check_id(subscriber_id, f"audience.subscriber_ids[{index}]")
    for index, profile_id in enumerate(profile_ids):
        _check_profile_id(profile_id, f"audience.profile_ids[{index}]")


def _checked_variants(variants: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The variants' split, as a run's (only ids and weights: no content is planned):
    at most 5, ids given and distinct (INVALID_VARIANT), weights 1 to 100 adding up to
    100 (INVALID_VARIANT_SPLIT)."""
    if len(variants) > MAX_VARIANTS:
        raise InvalidArgument(
            "TOO_MANY_VARIANTS",
            f"{len(variants)} variants; a run takes at most {MAX_VARIANTS}",
            field="variants",
        )
    seen: set[str] = set()
    for index, (variant_id, weight) in enumerate(variants):
        where = f"variants[{index}]"
        if not variant_id or variant_id in seen:
            problem = "is empty" if not variant_id else f"{variant_id!r} is given twice"
            raise InvalidArgument(
                "INVALID_VARIANT",
                f"{where}.variant_id {problem}; each variant needs an id of its own",
                field=f"{where}.variant_id",
            )
        seen.add(variant_id)
        if not 1 <= weight <= 100:
            raise InvalidArgument(
                "INVALID_VARIANT_SPLIT",
                f"{where}.weight_percent is {weight}; give 1 to 100",
                field=f"{where}.weight_percent",
            )
    total = sum(weight for _, weight in variants)
    if variants and total != 100:
        raise InvalidArgument(
            "INVALID_VARIANT_SPLIT",
            f"the variants' weight_percent add up to {total}; they must add up to 100",
            field="variants",
        )
    return list(variants)


def _audience_error(error: PeerUnavailable) -> FailedPrecondition | Unavailable:
    if error.permanent:
        return FailedPrecondition(
            "AUDIENCE_REFUSED", f"the audience could not be resolved: {error}"
        )
    return Unavailable(
        "SEGMENT_UNAVAILABLE", f"the audience could not be read now: {error}; try again"
    )
