"""A run's delivery policies (clarion.delivery.v1.RunPolicy): who is held out as a control
group, whom a frequency cap counts as one person on which local day, and when the
do-not-disturb window keeps a push back. Pure: the clock is passed in; the counting that
needs the database is in services/delivery/policy_store.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from google.protobuf import json_format

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.rules import Reason
from services.delivery.domain.timing import zone
from services.kit.errors import InvalidArgument

_WALL_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# A weekly cap counts this many local days, ending on the day of the send.
WEEK_DAYS = 7
# Control-group buckets: a person's hash falls in one of 10,000 (0.01 % each).
_BUCKETS = 10_000


@dataclass(frozen=True)
class Policy:
    # Pushes per person per local day, and in the 7 local days ending that day (0: none).
    cap_per_day: int = 0
    cap_per_week: int = 0
    # The do-not-disturb window [start, end) in the recipient's local time, across
    # midnight when end is earlier than start; None: no window.
    quiet_start: time | None = None
    quiet_end: time | None = None
    # Inside the window: True, the push waits for its end; False, it is not sent (dnd).
    quiet_delay: bool = False
    # Sends a minute for the run's campaign, and for the whole site (0: no limit).
    campaign_max_per_minute: int = 0
    site_max_per_minute: int = 0
    # Held out: this share of people (0 to 50) ends suppressed control_group.
    control_group_percent: int = 0
    # The time zone of recipients without one (the site's); "": UTC.
    default_timezone: str = ""

    @property
    def capped(self) -> bool:
        return self.cap_per_day > 0 or self.cap_per_week > 0

    @property
    def quiet(self) -> bool:
        return (
            self.quiet_start is not None
            and self.quiet_end is not None
            and self.quiet_start != self.quiet_end
        )

    @property
    def throttled(self) -> bool:
        return self.campaign_max_per_minute > 0 or self.site_max_per_minute > 0

    @property
    def active(self) -> bool:
        return self.capped or self.quiet or self.throttled or self.control_group_percent > 0


def policy_from_proto(message: delivery_pb2.RunPolicy) -> Policy:
    """The policy of a StartDeliveryRun request, or InvalidArgument naming the field.
    The proto's constraints (checked at the edge) bound the numbers; this checks the
    quiet hours, which need both ends, each HH:MM, and not equal."""
    start = _wall_time(message.quiet_start, "policy.quiet_start")
    end = _wall_time(message.quiet_end, "policy.quiet_end")
    if (start is None) != (end is None):
        missing = "quiet_end" if end is None else "quiet_start"
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            f"policy.{missing} is empty; give both ends of the quiet hours, or neither",
            field=f"policy.{missing}",
        )
    if start is not None and start == end:
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            "policy.quiet_start equals policy.quiet_end; the quiet hours would be empty",
            field="policy.quiet_end",
        )
    if message.default_timezone and zone(message.default_timezone) is None:
        raise InvalidArgument(
            "INVALID_TIMEZONE",
            f"policy.default_timezone {message.default_timezone!r} is not an IANA time zone",
            field="policy.default_timezone",
        )
    return Policy(
        cap_per_day=message.cap_per_day,
        cap_per_week=message.cap_per_week,
        quiet_start=start,
        quiet_end=end,
        quiet_delay=message.quiet_delay,
        campaign_max_per_minute=message.campaign_max_per_minute,
        site_max_per_minute=message.site_max_per_minute,
        control_group_percent=message.control_group_percent,
        default_timezone=message.default_timezone,
    )


def policy_to_json(message: delivery_pb2.RunPolicy) -> str:
    """The run row's form (delivery_runs.policy): the RunPolicy as compact JSON with its
    proto field names, set fields only; "" for no policy."""
    if message.ByteSize() == 0:
        return ""
    fields = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def policy_from_json(text: str) -> Policy:
    """A stored policy: the JSON of a RunPolicy as policy_to_json or
    json_format.MessageToJson(preserving_proto_field_name=True) write it; "" (or "{}"):
    no policy. Raises InvalidArgument for quiet hours policy_from_proto would refuse."""
    if not text:
        return Policy()
    message = json_format.Parse(text, delivery_pb2.RunPolicy(), ignore_unknown_fields=True)
    return policy_from_proto(message)


def _wall_time(text: str, field: str) -> time | None:
    if not text:
        return None
    match = _WALL_TIME.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            f"{field} is {text[:16]!r}; give HH:MM (00:00 to 23:59)",
            field=field,
        )
    return time(int(match.group(1)), int(match.group(2)))


# People.


def person_key(profile_id: str, subscriber_id: str) -> str:
    """Whom caps and the control group count as one person: the profile (all its
    browsers), else the anonymous subscriber."""
    return f"p:{profile_id}" if profile_id else f"s:{subscriber_id}"


def _bucket(person_key: str, campaign_id: str, purpose: str = "") -> int:
    """The person's bucket (0 to 9,999) for the campaign. Each purpose (control group,
    sample, variant) hashes with its own salt, so the three choices are independent: a
    variant test's sample is not skewed toward or away from the control group."""
    salt = f"{purpose}\n" if purpose else ""
    digest = hashlib.sha256(f"{salt}{campaign_id}\n{person_key}".encode()).digest()
    # The top 64 bits scaled onto the buckets: uniform, with no modulo bias.
    return (int.from_bytes(digest[:8], "big") * _BUCKETS) >> 64


def in_control_group(person_key: str, campaign_id: str, percent: float) -> bool:
    """Whether the person is held out of the campaign: a hash of both, so the same people
    are held out on every run of the campaign and different people in each campaign."""
    if percent <= 0:
        return False
    return _bucket(person_key, campaign_id) < round(percent * _BUCKETS / 100)


def in_sample(person_key: str, campaign_id: str, start: int, end: int) -> bool:
    """Whether the person is in the share [start, end) of 10,000 basis points of the
    campaign's audience (RunAudience.sample): the test share of a variant test, or its
    rest."""
    return start <= _bucket(person_key, campaign_id, "sample") < end


def variant_of(person_key: str, campaign_id: str, weights: Sequence[tuple[str, int]]) -> str:
    """The variant the person gets: `weights` are (variant id, percent) adding up to
    100, in the campaign's order; the person's variant bucket picks one. The same person
    gets the same variant on every run of the campaign, whichever variants a run
    carries, as long as the split is the same."""
    point = _bucket(person_key, campaign_id, "variant")
    edge = 0
    for variant_id, percent in weights:
        edge += percent * _BUCKETS // 100
        if point < edge:
            return variant_id
    # Percentages short of 100 (refused at the door) leave the top to the last.
    return weights[-1][0] if weights else ""


# Local days, for frequency caps.


def local_day(timezone: str, at: datetime, default_timezone: str = "") -> date:
    """The calendar day `at` falls on in `timezone` (else `default_timezone`, else UTC;
    an empty or unknown name counts as none)."""
    return _aware(at).astimezone(_zone(timezone, default_timezone)).date()


def week_days(day: date) -> tuple[date, ...]:
    """The local days a weekly cap counts for a send on `day`: the 7 ending on it,
    oldest first."""
    return tuple(day - timedelta(days=back) for back in range(WEEK_DAYS - 1, -1, -1))


# Do-not-disturb hours.


# Pure, and asked again and again with the same arguments: by a preparer for every
# member of a zone at the snapshot, by a sender for a chunk's recipients at one instant,
# by a delivery plan for each throttle minute. Each answer costs some 50 µs of zone
# arithmetic.
@functools.lru_cache(maxsize=8192)
def quiet_hours(
    policy: Policy, timezone: str, at: datetime, default_timezone: str = ""
) -> tuple[datetime | None, str]:
    """When a push due at `at` (UTC) for a recipient in `timezone` (else
    `default_timezone`, else UTC) may go: (at, "") outside the quiet hours; inside them,
    (the window's end, "") when the policy delays, else (None, "dnd").

    The window is [start, end) on the recipient's wall clock, from a start on one local
    day to the next end (the next day's when end is earlier than start), whatever offset
    change falls in between. Each end is the first instant the clock reads that time:
    a repeated time (autumn) counts the first time it comes, as in domain/timing.py;
    a time the clocks skip (02:30 on a spring-forward night) is reached when the clock
    jumps past it (03:00), so a window starting or ending in the gap does so at the jump.
    """
    if not policy.quiet:
        return at, ""
    assert policy.quiet_start is not None and policy.quiet_end is not None
    tz = _zone(timezone, default_timezone)
    today = _aware(at).astimezone(tz).date()
    overnight = policy.quiet_end < policy.quiet_start
    # A window containing `at` started on its local day or the day before; the day after
    # covers a fall-back across midnight, where the wall date steps back.
    for offset in (-1, 0, 1):
        day = today + timedelta(days=offset)
        opens = _first_reaching(day, policy.quiet_start, tz)
        closes = _first_reaching(day + timedelta(days=1 if overnight else 0), policy.quiet_end, tz)
        if opens <= at < closes:
            if policy.quiet_delay:
                return closes, ""
            return None, Reason.DND.value
    return at, ""


def _first_reaching(day: date, wall: time, tz: tzinfo) -> datetime:
    """The first instant (UTC) the clock in `tz` reads `wall` on `day` or later."""
    local = datetime.combine(day, wall, tzinfo=tz)
    # fold=0: a repeated time's first occurrence; a skipped one read with the offset
    # from before the change, which lands past the jump.
    instant = local.astimezone(UTC)
    wanted = local.replace(tzinfo=None)
    if instant.astimezone(tz).replace(tzinfo=None) == wanted:
        return instant
    # Skipped: fold=1 reads it with the offset after the change, which lands before the
    # jump. Find the jump (to the second: offsets change on whole seconds) between them.
    low = int(local.replace(fold=1).astimezone(UTC).timestamp())
    high = int(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        reading = datetime.fromtimestamp(middle, tz).replace(tzinfo=None)
        if reading >= wanted:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _zone(timezone: str, default_timezone: str) -> tzinfo:
    return zone(timezone) or zone(default_timezone) or UTC


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC datetime")
    return at
