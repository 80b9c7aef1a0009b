"""When a run's recipients are due: at a local wall-clock time in each recipient's time
zone, and never after the run's cut-off (clarion.delivery.v1.RunTiming)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.rules import Reason
from services.kit.errors import InvalidArgument

_LOCAL_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class RunTiming:
    # None: every recipient at once.
    local_time: time | None = None
    default_timezone: str = ""
    next_day_if_passed: bool = False
    cut_off_time: datetime | None = None

    @property
    def timed(self) -> bool:
        return self.local_time is not None or self.cut_off_time is not None


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    """The IANA zone of that name; None for an empty or unknown one."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def timing_from_proto(message: delivery_pb2.RunTiming, now: datetime) -> RunTiming:
    """The timing of a StartDeliveryRun request, or InvalidArgument naming the field."""
    local_time = None
    if message.local_time:
        match = _LOCAL_TIME.fullmatch(message.local_time)
        if match is None:
            raise InvalidArgument(
                "INVALID_LOCAL_TIME",
                f"timing.local_time is {message.local_time!r}; give HH:MM (00:00 to 23:59)",
                field="timing.local_time",
            )
        local_time = time(int(match.group(1)), int(match.group(2)))
    if message.default_timezone and zone(message.default_timezone) is None:
        raise InvalidArgument(
            "INVALID_TIMEZONE",
            f"timing.default_timezone {message.default_timezone!r} is not an IANA time zone",
            field="timing.default_timezone",
        )
    cut_off = None
    if message.HasField("cut_off_time"):
        cut_off = message.cut_off_time.ToDatetime(tzinfo=UTC)
    return RunTiming(
        local_time=local_time,
        default_timezone=message.default_timezone,
        next_day_if_passed=message.next_day_if_passed,
        cut_off_time=cut_off,
    )


def timing_to_json(timing: RunTiming) -> str:
    """The run row's form; "" for a run sent all at once with no cut-off."""
    if not timing.timed:
        return ""
    return json.dumps(
        {
            "local_time": timing.local_time.strftime("%H:%M") if timing.local_time else "",
            "default_timezone": timing.default_timezone,
            "next_day_if_passed": timing.next_day_if_passed,
            "cut_off_time": timing.cut_off_time.isoformat() if timing.cut_off_time else "",
        },
        separators=(",", ":"),
    )


def timing_from_json(text: str) -> RunTiming:
    if not text:
        return RunTiming()
    stored = json.loads(text)
    local = stored["local_time"]
    return RunTiming(
        local_time=time.fromisoformat(local) if local else None,
        default_timezone=stored["default_timezone"],
        next_day_if_passed=stored["next_day_if_passed"],
        cut_off_time=datetime.fromisoformat(stored["cut_off_time"])
        if stored["cut_off_time"]
        else None,
    )


def due(timing: RunTiming, timezone: str, snapshot: datetime) -> tuple[datetime | None, str]:
    """When a recipient in `timezone` is due, as (time, "") — None for at once — or
    (None, reason) when it is not sent at all: its local time had passed at the snapshot
    (and the run skips such recipients), or falls after the cut-off."""
    when: datetime | None = None
    if timing.local_time is not None:
        tz = zone(timezone) or zone(timing.default_timezone) or UTC
        local_now = snapshot.astimezone(tz)
        when = _at(local_now.date(), timing.local_time, tz)
        if when < snapshot:
            if not timing.next_day_if_passed:
                return None, Reason.LOCAL_TIME_PASSED.value
            when = _at(local_now.date() + timedelta(days=1), timing.local_time, tz)
    if timing.cut_off_time is not None and (when or snapshot) > timing.cut_off_time:
        return None, Reason.CUT_OFF.value
    return when, ""


def _at(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """`wall` on `day` in `tz`, as UTC. zoneinfo reads a wall time with fold=0, the
    offset before a change: a time the clocks skip (02:30 on a spring-forward day) is
    sent an hour later by the new clock (03:30), and a repeated one (autumn) the first
    time it comes."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)
