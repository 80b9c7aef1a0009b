"""A campaign's send timing (clarion.campaign.v1.SendTiming): delivery at a local time
in each recipient's time zone, and a cut-off; and what each run gets of it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2
from services.kit.errors import InvalidArgument

_LOCAL_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
MIN_CUT_OFF_AFTER = timedelta(seconds=60)
MAX_CUT_OFF_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class SendTiming:
    # "HH:MM"; "": everyone at once.
    local_time: str = ""
    next_day_if_passed: bool = False
    # At most one of the two.
    cut_off_time: datetime | None = None
    cut_off_after: timedelta | None = None


@dataclass(frozen=True)
class RunTiming:
    """What one run is given: the local time and an absolute cut-off."""

    local_time: str = ""
    next_day_if_passed: bool = False
    cut_off_time: datetime | None = None


def timing_from_proto(
    message: campaign_pb2.SendTiming | None, now: datetime, *, field: str = "timing"
) -> SendTiming | None:
    """The timing a request asks for (None: all at once, no cut-off), or InvalidArgument
    naming the field."""
    if message is None or message == campaign_pb2.SendTiming():
        return None
    if message.local_time and not _LOCAL_TIME.fullmatch(message.local_time):
        raise InvalidArgument(
            "INVALID_LOCAL_TIME",
            f"{field}.local_time is {message.local_time!r}; give HH:MM on a 24-hour clock "
            "(00:00 to 23:59), e.g. 09:00",
            field=f"{field}.local_time",
        )
    if message.next_day_if_passed and not message.local_time:
        raise InvalidArgument(
            "INVALID_TIMING",
            f"{field}.next_day_if_passed needs {field}.local_time: without a local time "
            "nobody's time can have passed",
            field=f"{field}.next_day_if_passed",
        )
    cut_off_time = cut_off_after = None
    kind = message.WhichOneof("cut_off")
    if kind == "cut_off_time":
        try:
            cut_off_time = message.cut_off_time.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            cut_off_time = None
        if cut_off_time is None or cut_off_time <= now:
            raise InvalidArgument(
                "INVALID_CUT_OFF",
                f"{field}.cut_off_time is not in the future: no run could send anything",
                field=f"{field}.cut_off_time",
            )
    elif kind == "cut_off_after_seconds":
        cut_off_after = timedelta(seconds=message.cut_off_after_seconds)
        if not MIN_CUT_OFF_AFTER <= cut_off_after <= MAX_CUT_OFF_AFTER:
            raise InvalidArgument(
                "INVALID_CUT_OFF",
                f"{field}.cut_off_after_seconds is {message.cut_off_after_seconds}; give 60 "
                f"to {int(MAX_CUT_OFF_AFTER.total_seconds())} (7 days)",
                field=f"{field}.cut_off_after_seconds",
            )
    return SendTiming(
        local_time=message.local_time,
        next_day_if_passed=message.next_day_if_passed,
        cut_off_time=cut_off_time,
        cut_off_after=cut_off_after,
    )


def timing_to_proto(timing: SendTiming) -> campaign_pb2.SendTiming:
    message = campaign_pb2.SendTiming(
        local_time=timing.local_time, next_day_if_passed=timing.next_day_if_passed
    )
    if timing.cut_off_time is not None:
        stamp = Timestamp()
        stamp.FromDatetime(timing.cut_off_time)
        message.cut_off_time.CopyFrom(stamp)
    elif timing.cut_off_after is not None:
        message.cut_off_after_seconds = int(timing.cut_off_after.total_seconds())
    return message


def timing_to_json(timing: SendTiming) -> str:
    return json.dumps(
        {
            "local_time": timing.local_time,
            "next_day_if_passed": timing.next_day_if_passed,
            "cut_off_time": timing.cut_off_time.isoformat() if timing.cut_off_time else None,
            "cut_off_after": int(timing.cut_off_after.total_seconds())
            if timing.cut_off_after
            else None,
        },
        separators=(",", ":"),
    )


def timing_from_json(text: str) -> SendTiming:
    stored = json.loads(text)
    return SendTiming(
        local_time=stored["local_time"],
        next_day_if_passed=stored["next_day_if_passed"],
        cut_off_time=datetime.fromisoformat(stored["cut_off_time"])
        if stored["cut_off_time"]
        else None,
        cut_off_after=timedelta(seconds=stored["cut_off_after"])
        if stored["cut_off_after"]
        else None,
    )


def for_run(timing: SendTiming, start: datetime) -> RunTiming:
    """What a run starting at `start` gets: the cut-off as a time."""
    cut_off = timing.cut_off_time
    if timing.cut_off_after is not None:
        cut_off = start + timing.cut_off_after
    return RunTiming(timing.local_time, timing.next_day_if_passed, cut_off)


def run_timing_to_json(timing: RunTiming) -> str:
    return json.dumps(
        {
            "local_time": timing.local_time,
            "next_day_if_passed": timing.next_day_if_passed,
            "cut_off_time": timing.cut_off_time.isoformat() if timing.cut_off_time else None,
        },
        separators=(",", ":"),
    )


def run_timing_from_json(text: str) -> RunTiming:
    stored = json.loads(text)
    return RunTiming(
        local_time=stored["local_time"],
        next_day_if_passed=stored["next_day_if_passed"],
        cut_off_time=datetime.fromisoformat(stored["cut_off_time"])
        if stored["cut_off_time"]
        else None,
    )
