"""The delivery plan of a run before it starts: per hour, browser and variant, how many
would be sent and how many suppressed, and why.

It walks the same decisions a run takes, with the same functions, in the order a run
takes them: the queue-time plan (`worker.recipient_plan`: control group, local time,
cut-off, quiet hours at the due time), then at each send the send-time checks of
`worker._admit` — quiet hours again (`policies.quiet_hours`), the frequency cap
(`policy_store.take_send`, on the people's counts as they are now plus the sends this
plan makes), the throttle (at most the campaign's and the site's per-minute limit; a
send over it waits for the next minute, as a deferred one does) — and the TTL and
cut-off a waiting send can run into. What it cannot know is left out and said so: other
campaigns' sends (the site's throttle and caps are shared with them) and what push
services will answer (a plan's "sent" is "handed to the push service").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.delivery.domain.policies import Policy, local_day, person_key, quiet_hours
from services.delivery.domain.rules import Reason
from services.delivery.domain.timing import RunTiming
from services.delivery.domain.worker import recipient_plan
from services.delivery.policy_store import Counts, take_send
from services.delivery.store import Member

# A send deferred this many times (throttle minutes, quiet windows) is given up on: a
# plan must end even for a policy no send can ever meet.
MAX_DEFERRALS = 100_000


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

    def record(self, at: datetime, member: Member, reason: str = "", variant: str = "") -> None:
        hour = at.replace(minute=0, second=0, microsecond=0)
        cell = self.cells.setdefault((hour, member.browser, variant), PlanCell())
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


def plan_delivery(
    members: Iterable[Member],
    *,
    timing: RunTiming,
    policy: Policy,
    campaign_id: str,
    ttl_seconds: int,
    now: datetime,
    sends_so_far: Mapping[str, Counts],
) -> DeliveryPlan:
    """The plan of a run of `members` starting `now` (its snapshot time).
    `sends_so_far`: the frequency-cap counts of the people concerned as they are now
    (policy_store.people_sends)."""
    plan = DeliveryPlan()
    queue_plan = recipient_plan(timing, policy, campaign_id, now)
    waiting: list[tuple[datetime, int, Member]] = []
    for order, member in enumerate(members):
        if member.unsubscribed:
            plan.record(now, member, Reason.UNSUBSCRIBED.value)
            continue
        due, reason = queue_plan(member) if queue_plan is not None else (None, "")
        if reason:
            plan.record(now, member, reason)
            continue
        waiting.append((due or now, order, member))
    waiting.sort(key=lambda item: (item[0], item[1]))
    counts = {key: dict(days) for key, days in sends_so_far.items()}
    expires = now + timedelta(seconds=ttl_seconds)
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

    for at, _, member in waiting:
        plan.record(
            *_sent_or_why(
                member, at, policy, timing, expires, counts, per_minute, used, free_minute
            )
        )
    return plan


def _sent_or_why(
    member: Member,
    at: datetime,
    policy: Policy,
    timing: RunTiming,
    expires: datetime,
    counts: dict[str, Counts],
    per_minute: int,
    used: Counter[datetime],
    free_minute: Callable[[datetime], datetime],
) -> tuple[datetime, Member, str]:
    """When the member's push goes (or why it does not, and when that is decided)."""
    key = person_key(member.profile_id, member.subscriber_id)
    for _ in range(MAX_DEFERRALS):
        if timing.cut_off_time is not None and at > timing.cut_off_time:
            return timing.cut_off_time, member, Reason.CUT_OFF.value
        if at >= expires:
            return expires, member, Reason.EXPIRED_TTL.value
        if policy.quiet:
            when, reason = quiet_hours(policy, member.timezone, at, policy.default_timezone)
            if reason:
                return at, member, reason
            if when is not None and when > at:
                at = when
                continue
        day = local_day(member.timezone, at, policy.default_timezone)
        if policy.capped and not take_send(
            counts.setdefault(key, {}), day, policy.cap_per_day, policy.cap_per_week
        ):
            return at, member, Reason.FREQUENCY_CAP.value
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
        return at, member, ""
    return at, member, Reason.CUT_OFF.value
