"""Campaign schedules: checking a Schedule message and computing its occurrences.

Pure: no database, no clock. A recurrence follows the wall clock of its time zone
(RFC 5545 with dateutil on naive local time); each local occurrence becomes UTC with
fold=0, so a time skipped in spring runs at the instant fold=0 gives and a time repeated
in autumn runs once, the first time.
"""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import rrule as rr
from google.protobuf import timestamp_pb2

from clarion.campaign.v1 import campaign_pb2
from services.kit.errors import InvalidArgument

MAX_TIMEZONE_LENGTH = 64
# Enough to see the rule before a DST change settle: a gap or a repeated hour is at most
# a few hours long, so starting this much earlier reproduces which occurrences are dropped.
_SETTLE = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXAMPLE_RULE = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
_FREQUENCIES = {
    "YEARLY": rr.YEARLY,
    "MONTHLY": rr.MONTHLY,
    "WEEKLY": rr.WEEKLY,
    "DAILY": rr.DAILY,
    "HOURLY": rr.HOURLY,
}
_TOO_FREQUENT = ("MINUTELY", "SECONDLY")
# The RRULE parts RFC 5545 defines, with the range of each number in a list part.
_LIST_RANGES = {
    "BYSECOND": (0, 59),
    "BYMINUTE": (0, 59),
    "BYHOUR": (0, 23),
    "BYMONTHDAY": (-31, 31),
    "BYYEARDAY": (-366, 366),
    "BYWEEKNO": (-53, 53),
    "BYMONTH": (1, 12),
    "BYSETPOS": (-366, 366),
}
_PARTS = {"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", *_LIST_RANGES}
_UTC_UNTIL = re.compile(r"\d{8}T\d{6}Z")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February at most 29


@dataclass(frozen=True)
class Schedule:
    """A checked schedule. All datetimes are timezone-aware UTC."""

    times: tuple[datetime, ...] = ()  # kinds "at" and "times": sorted, distinct
    rule: str = ""  # kind "recurrence": the RRULE value as given (stripped)
    start: datetime | None = None  # recurrence: the instant occurrences count from
    end: datetime | None = None  # recurrence: no occurrence after this
    timezone: str = "UTC"  # recurrence: wall clock the rule follows

    @property
    def recurring(self) -> bool:
        return bool(self.rule)


# Reading and writing.


def schedule_from_proto(
    message: campaign_pb2.Schedule | None, now: datetime, field: str = "schedule"
) -> Schedule | None:
    """The checked schedule, or None when no kind is set. `now` (aware UTC) is when the
    campaign is created or its schedule changed: a recurrence without start_time starts
    then, and a schedule must have an occurrence after it."""
    _require_aware(now, "now")
    kind = message.WhichOneof("kind") if message is not None else None
    if kind is None:
        return None
    assert message is not None
    if kind == "at":
        path = f"{field}.at"
        at = _instant(message.at, path)
        _check_future(at, now, path)
        return Schedule(times=(at,))
    if kind == "times":
        return Schedule(times=_checked_times(message.times, now, f"{field}.times"))
    return _checked_recurrence(message.recurrence, now, f"{field}.recurrence")


def schedule_to_proto(schedule: Schedule) -> campaign_pb2.Schedule:
    """The schedule as the API shows it; a single time is given back as `at`."""
    if schedule.recurring:
        recurrence = campaign_pb2.Recurrence(rule=schedule.rule, timezone=schedule.timezone)
        if schedule.start is not None:
            recurrence.start_time.CopyFrom(_timestamp(schedule.start))
        if schedule.end is not None:
            recurrence.end_time.CopyFrom(_timestamp(schedule.end))
        return campaign_pb2.Schedule(recurrence=recurrence)
    if len(schedule.times) == 1:
        return campaign_pb2.Schedule(at=_timestamp(schedule.times[0]))
    if schedule.times:
        return campaign_pb2.Schedule(
            times=campaign_pb2.SpecifiedTimes(times=[_timestamp(t) for t in schedule.times])
        )
    return campaign_pb2.Schedule()


def schedule_to_json(schedule: Schedule) -> str:
    return json.dumps(
        {
            "times": [_iso(t) for t in schedule.times],
            "rule": schedule.rule,
            "start": _iso(schedule.start) if schedule.start is not None else None,
            "end": _iso(schedule.end) if schedule.end is not None else None,
            "timezone": schedule.timezone,
        },
        separators=(",", ":"),
    )


def schedule_from_json(text: str) -> Schedule:
    """A schedule stored by schedule_to_json (trusted: it was checked when stored)."""
    data = json.loads(text)
    start, end = data.get("start"), data.get("end")
    return Schedule(
        times=tuple(_from_iso(t) for t in data.get("times", ())),
        rule=data.get("rule", ""),
        start=_from_iso(start) if start is not None else None,
        end=_from_iso(end) if end is not None else None,
        timezone=data.get("timezone") or "UTC",
    )


# Occurrences.


def next_occurrence(schedule: Schedule, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (aware), as aware UTC; None when
    none is left."""
    return next(_occurrences_after(schedule, after), None)


def occurrences_between(
    schedule: Schedule, after: datetime, until: datetime, limit: int = 1000
) -> list[datetime]:
    """Every occurrence in (after, until], oldest first; at most `limit`, the latest
    when there are more (a scheduler that was down starts only the latest)."""
    _require_aware(until, "until")
    if limit <= 0:
        return []
    kept: deque[datetime] = deque(maxlen=limit)
    for occurrence in _occurrences_after(schedule, after):
        if occurrence > until:
            break
        kept.append(occurrence)
    return list(kept)


def _occurrences_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    _require_aware(after, "after")
    if not schedule.recurring:
        yield from (t for t in schedule.times if t > after)
        return
    compiled = _compiled(schedule.rule, schedule.start, schedule.timezone)
    start = compiled.start
    stops = [t for t in (schedule.end, compiled.until) if t is not None]
    stop = min(stops) if stops else None
    if stop is not None and after >= stop:
        return
    if after <= start:
        local_rule = compiled.rule
    else:
        try:
            local_rule = compiled.from_local(
                (after.astimezone(compiled.zone) - _SETTLE).replace(tzinfo=None)
            )
        except OverflowError:
            return
    locals_ = iter(local_rule)
    previous: datetime | None = None
    while True:
        try:
            local = next(locals_)
            instant = local.replace(tzinfo=compiled.zone).astimezone(UTC)
        except StopIteration:
            return
        except (OverflowError, ValueError):
            return  # the rule ran past the year 9999
        # After a skipped (spring) hour, a later wall-clock time can map to the same or
        # an earlier instant: each instant runs once, in order.
        if previous is not None and instant <= previous:
            continue
        previous = instant
        if stop is not None and instant > stop:
            return
        if instant >= start and instant > after:
            yield instant


@dataclass(frozen=True)
class _CompiledRule:
    rule: rr.rrule  # on naive wall-clock time in `zone`, from `dtstart`
    zone: zoneinfo.ZoneInfo
    start: datetime
    dtstart: datetime
    until: datetime | None  # the rule's UNTIL given in UTC (a floating one is in `rule`)
    counted: bool

    def from_local(self, local: datetime) -> rr.rrule:
        """The rule with the same occurrences from `local` (naive) on, started at a
        period boundary at or before it, so a far `local` is not reached one occurrence
        at a time. COUNT counts from the start, so a counted rule is never moved."""
        if self.counted or local <= self.dtstart:
            return self.rule
        period_start = _period_start(
            self.rule._freq, self.rule._interval, self.rule._wkst, self.dtstart, local
        )
        if period_start <= self.dtstart:
            return self.rule
        return self.rule.replace(dtstart=period_start)


def _period_start(
    freq: int, interval: int, wkst: int, first: datetime, local: datetime
) -> datetime:
    """The start of the latest period of the rule (a year, month, ... counted in steps
    of `interval` from the one holding `first`) that begins at or before `local`."""
    if freq == rr.YEARLY:
        years = (local.year - first.year) // interval * interval
        return datetime(first.year + years, 1, 1)
    if freq == rr.MONTHLY:
        month0 = first.year * 12 + first.month - 1
        months = (local.year * 12 + local.month - 1 - month0) // interval * interval
        year, month = divmod(month0 + months, 12)
        return datetime(year, month + 1, 1)
    if freq == rr.WEEKLY:
        week0 = datetime.combine(first.date(), datetime.min.time()) - timedelta(
            days=(first.weekday() - wkst) % 7
        )
        weeks = (local - week0).days // 7 // interval * interval
        return week0 + timedelta(weeks=weeks)
    if freq == rr.DAILY:
        day0 = datetime.combine(first.date(), datetime.min.time())
        return day0 + timedelta(days=(local - day0).days // interval * interval)
    hour0 = first.replace(minute=0, second=0)
    hours = int((local - hour0).total_seconds()) // 3600 // interval * interval
    return hour0 + timedelta(hours=hours)


@functools.lru_cache(maxsize=256)
def _compiled(rule: str, start: datetime | None, timezone: str) -> _CompiledRule:
    if start is None:
        raise ValueError("a recurring schedule needs its start")
    parts = _parsed_rule(rule, "rule")
    zone = zoneinfo.ZoneInfo(timezone or "UTC")
    # dateutil ignores microseconds; an occurrence in the second before `start` is
    # dropped as before the start.
    dtstart = start.astimezone(zone).replace(tzinfo=None, microsecond=0)
    until: datetime | None = None
    text_parts = []
    for name, value in parts.items():
        if name == "UNTIL" and _UTC_UNTIL.fullmatch(value):
            until = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        else:
            text_parts.append(f"{name}={value}")
    try:
        local_rule = rr.rrulestr(";".join(text_parts), dtstart=dtstart)
        assert isinstance(local_rule, rr.rrule)
        # Make the values the rule takes from its start explicit, so that moving its
        # start (from_local) keeps them.
        local_rule = local_rule.replace(**_start_defaults(parts, local_rule._freq, dtstart))
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        raise InvalidArgument(
            "INVALID_RULE",
            f"rule is not a valid RRULE ({str(error)[:80]}); write it like {_EXAMPLE_RULE!r}",
            field="rule",
        ) from None
    return _CompiledRule(
        rule=local_rule,
        zone=zone,
        start=start,
        dtstart=dtstart,
        until=until,
        counted="COUNT" in parts,
    )


def _start_defaults(parts: dict[str, str], freq: int, dtstart: datetime) -> dict[str, object]:
    """What dateutil (RFC 5545) takes from DTSTART when the rule does not say."""
    defaults: dict[str, object] = {}
    if not parts.keys() & {"BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"}:
        if freq == rr.YEARLY:
            if "BYMONTH" not in parts:
                defaults["bymonth"] = dtstart.month
            defaults["bymonthday"] = dtstart.day
        elif freq == rr.MONTHLY:
            defaults["bymonthday"] = dtstart.day
        elif freq == rr.WEEKLY:
            defaults["byweekday"] = dtstart.weekday()
    if "BYHOUR" not in parts and freq < rr.HOURLY:
        defaults["byhour"] = dtstart.hour
    if "BYMINUTE" not in parts:
        defaults["byminute"] = dtstart.minute
    if "BYSECOND" not in parts:
        defaults["bysecond"] = dtstart.second
    return defaults


# Checks.


def _checked_times(
    message: campaign_pb2.SpecifiedTimes, now: datetime, path: str
) -> tuple[datetime, ...]:
    if not message.times:
        raise InvalidArgument(
            "MISSING_TIMES", "times needs at least one time", field=f"{path}.times"
        )
    seen: set[datetime] = set()
    for index, timestamp in enumerate(message.times):
        item_path = f"{path}.times[{index}]"
        time = _instant(timestamp, item_path)
        _check_future(time, now, item_path)
        if time in seen:
            raise InvalidArgument(
                "DUPLICATE_TIME",
                f"times[{index}] ({_iso(time)}) is given earlier too; give each time once",
                field=item_path,
            )
        seen.add(time)
    return tuple(sorted(seen))


def _checked_recurrence(message: campaign_pb2.Recurrence, now: datetime, path: str) -> Schedule:
    rule = message.rule.strip()
    rule_path = f"{path}.rule"
    if not rule:
        raise InvalidArgument(
            "MISSING_RULE",
            f"a recurrence needs a rule, e.g. {_EXAMPLE_RULE!r}",
            field=rule_path,
        )
    _parsed_rule(rule, rule_path)
    timezone = _checked_timezone(message.timezone, f"{path}.timezone")
    start = (
        _instant(message.start_time, f"{path}.start_time")
        if message.HasField("start_time")
        else now
    )
    end = _instant(message.end_time, f"{path}.end_time") if message.HasField("end_time") else None
    if end is not None and end <= start:
        raise InvalidArgument(
            "END_BEFORE_START",
            f"end_time ({_iso(end)}) must be after the start ({_iso(start)})",
            field=f"{path}.end_time",
        )
    try:
        _compiled(rule, start, timezone)
    except InvalidArgument as error:
        raise InvalidArgument(error.reason, error.message, field=rule_path) from None
    schedule = Schedule(rule=rule, start=start, end=end, timezone=timezone)
    if next_occurrence(schedule, now) is None:
        raise InvalidArgument(
            "NEVER_FIRES",
            "the recurrence has no occurrence after now; check its start_time, end_time, "
            "COUNT and UNTIL",
            field=rule_path,
        )
    return schedule


def _parsed_rule(rule: str, path: str) -> dict[str, str]:
    """The rule's parts by upper-case name, checked beyond what dateutil checks."""

    def invalid(problem: str) -> InvalidArgument:
        return InvalidArgument(
            "INVALID_RULE", f"rule {problem}; write it like {_EXAMPLE_RULE!r}", field=path
        )

    value = rule[len("RRULE:") :] if rule[:6].upper() == "RRULE:" else rule
    if "DTSTART" in value.upper():
        raise InvalidArgument(
            "INVALID_RULE",
            "rule must not contain DTSTART: give start_time instead",
            field=path,
        )
    if any(c in value for c in ":\r\n"):
        raise invalid("must be a single RRULE value, without EXDATE, RDATE or a second rule")
    parts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(";"))):
        name, sep, part_value = part.partition("=")
        name, part_value = name.strip().upper(), part_value.strip().upper()
        if not sep or not part_value:
            raise invalid(f"part {part[:40]!r} needs NAME=VALUE")
        if name not in _PARTS:
            raise invalid(f"has an unknown part {name[:40]!r}")
        if name in parts:
            raise invalid(f"gives {name} twice")
        parts[name] = part_value
    freq = parts.get("FREQ")
    if freq in _TOO_FREQUENT:
        raise InvalidArgument(
            "RULE_TOO_FREQUENT",
            f"FREQ={freq} is too frequent: a campaign runs at most hourly",
            field=path,
        )
    if freq not in _FREQUENCIES:
        raise invalid("needs FREQ=YEARLY, MONTHLY, WEEKLY, DAILY or HOURLY")
    for name in ("BYMINUTE", "BYSECOND"):
        if "," in parts.get(name, ""):
            raise InvalidArgument(
                "RULE_TOO_FREQUENT",
                f"{name} with several values runs more than hourly: give one value",
                field=path,
            )
    if "COUNT" in parts and "UNTIL" in parts:
        raise invalid("may have COUNT or UNTIL, not both")
    for name in ("COUNT", "INTERVAL"):
        if name in parts and not (parts[name].isdigit() and int(parts[name]) >= 1):
            raise invalid(f"needs a whole number of at least 1 for {name}")
    for name, (low, high) in _LIST_RANGES.items():
        if name not in parts:
            continue
        for item in parts[name].split(","):
            try:
                number = int(item)
            except ValueError:
                raise invalid(f"needs whole numbers for {name}") from None
            if not low <= number <= high or (number == 0 and low < 0):
                raise invalid(f"needs {name} values in {low}..{high} (not 0)")
    if _no_month_has_the_day(parts):
        # dateutil would search up to the year 9999 for it.
        raise InvalidArgument(
            "NEVER_FIRES",
            "no month in BYMONTH has a day in BYMONTHDAY, so the rule never runs",
            field=path,
        )
    return parts


def _no_month_has_the_day(parts: dict[str, str]) -> bool:
    if "BYMONTHDAY" not in parts or "BYMONTH" not in parts:
        return False
    days = [abs(int(d)) for d in parts["BYMONTHDAY"].split(",")]
    months = [int(m) for m in parts["BYMONTH"].split(",")]
    return not any(day <= _DAYS_IN_MONTH[month - 1] for month in months for day in days)


def _checked_timezone(timezone: str, path: str) -> str:
    if not timezone:
        return "UTC"
    if len(timezone) > MAX_TIMEZONE_LENGTH or timezone not in _known_timezones():
        raise InvalidArgument(
            "INVALID_TIMEZONE",
            "timezone must be an IANA time zone name such as 'Europe/Berlin', "
            f"got {timezone[:80]!r}",
            field=path,
        )
    return timezone


@functools.cache
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_future(time: datetime, now: datetime, path: str) -> None:
    if time <= now:
        raise InvalidArgument(
            "TIME_IN_PAST",
            f"{_iso(time)} is not in the future (now is {_iso(now)}); give a later time",
            field=path,
        )


def _instant(timestamp: timestamp_pb2.Timestamp, path: str) -> datetime:
    try:
        return _EPOCH + timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)
    except OverflowError:
        raise InvalidArgument(
            "INVALID_FIELD", f"{path}: must lie between the years 1 and 9999", field=path
        ) from None


def _timestamp(time: datetime) -> timestamp_pb2.Timestamp:
    since_epoch = time - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since_epoch.days * 86400 + since_epoch.seconds,
        nanos=since_epoch.microseconds * 1000,
    )


def _iso(time: datetime) -> str:
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_iso(text: str) -> datetime:
    time = datetime.fromisoformat(text)
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


def _require_aware(time: datetime, name: str) -> None:
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
