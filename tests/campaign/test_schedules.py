"""Campaign schedules: what a schedule is refused for, and when its runs start (wall
clock across daylight saving changes, month ends, COUNT/UNTIL/end_time)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.campaign.v1 import campaign_pb2
from services.campaign.domain.schedules import (
    Schedule,
    next_occurrence,
    occurrences_between,
    schedule_from_json,
    schedule_from_proto,
    schedule_to_json,
    schedule_to_proto,
)
from services.kit.errors import InvalidArgument

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def recurrence(
    rule: str,
    timezone: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> campaign_pb2.Schedule:
    message = campaign_pb2.Recurrence(rule=rule, timezone=timezone)
    if start is not None:
        message.start_time.CopyFrom(ts(start))
    if end is not None:
        message.end_time.CopyFrom(ts(end))
    return campaign_pb2.Schedule(recurrence=message)


def recurring(rule: str, timezone: str = "", start: datetime | None = None, **kw) -> Schedule:
    schedule = schedule_from_proto(recurrence(rule, timezone, start, **kw), NOW)
    assert schedule is not None
    return schedule


def refusal(message: campaign_pb2.Schedule, now: datetime = NOW, **kw) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        schedule_from_proto(message, now, **kw)
    return caught.value


class TestRefusals:
    def test_at_in_the_past(self):
        error = refusal(campaign_pb2.Schedule(at=ts(NOW)))

        assert (error.reason, error.metadata["field"]) == ("TIME_IN_PAST", "schedule.at")

    def test_the_field_path_starts_where_the_request_holds_the_schedule(self):
        error = refusal(
            campaign_pb2.Schedule(at=ts(NOW - timedelta(days=1))), field="campaign.schedule"
        )

        assert error.metadata["field"] == "campaign.schedule.at"

    def test_one_of_the_times_in_the_past(self):
        times = [ts(NOW + timedelta(hours=1)), ts(NOW - timedelta(seconds=1))]
        error = refusal(campaign_pb2.Schedule(times=campaign_pb2.SpecifiedTimes(times=times)))

        assert (error.reason, error.metadata["field"]) == (
            "TIME_IN_PAST",
            "schedule.times.times[1]",
        )

    def test_times_without_a_time(self):
        error = refusal(campaign_pb2.Schedule(times=campaign_pb2.SpecifiedTimes()))

        assert (error.reason, error.metadata["field"]) == ("MISSING_TIMES", "schedule.times.times")

    def test_the_same_time_twice_names_the_second(self):
        first, second = NOW + timedelta(days=1), NOW + timedelta(days=2)
        times = [ts(first), ts(second), ts(first)]
        error = refusal(campaign_pb2.Schedule(times=campaign_pb2.SpecifiedTimes(times=times)))

        assert (error.reason, error.metadata["field"]) == (
            "DUPLICATE_TIME",
            "schedule.times.times[2]",
        )

    def test_empty_rule(self):
        error = refusal(recurrence("  "))

        assert (error.reason, error.metadata["field"]) == (
            "MISSING_RULE",
            "schedule.recurrence.rule",
        )

    @pytest.mark.parametrize(
        "rule",
        [
            "every monday",
            "FREQ=FORTNIGHTLY",
            "FREQ=WEEKLY;BYDAY=XX",
            "FREQ=DAILY;BYHOUR=24",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ=DAILY;FREQ=WEEKLY",
            "FREQ=DAILY;COUNT=3;UNTIL=20280101T000000Z",
            "FREQ=DAILY;UNTIL=2028-01-01T00:00:00+02:00",
            "FREQ=DAILY;BYEASTER=0",
            "RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY",
            "FREQ=DAILY\nEXDATE:20270401T090000Z",
        ],
    )
    def test_invalid_rule(self, rule: str):
        error = refusal(recurrence(rule))

        assert (error.reason, error.metadata["field"]) == (
            "INVALID_RULE",
            "schedule.recurrence.rule",
        )

    @pytest.mark.parametrize(
        "rule",
        ["DTSTART:20270401T090000Z\nRRULE:FREQ=DAILY", "FREQ=DAILY;DTSTART=20270401T090000Z"],
    )
    def test_dtstart_in_the_rule_points_at_start_time(self, rule: str):
        error = refusal(recurrence(rule))

        assert error.reason == "INVALID_RULE"
        assert "start_time" in error.message

    def test_an_rrule_prefix_is_accepted(self):
        schedule = recurring("RRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0")

        assert schedule.rule == "RRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0"
        assert next_occurrence(schedule, NOW) == utc(2027, 3, 2, 9)

    @pytest.mark.parametrize(
        "rule", ["FREQ=MINUTELY", "FREQ=SECONDLY;INTERVAL=3600", "FREQ=HOURLY;BYMINUTE=0,30"]
    )
    def test_more_than_hourly(self, rule: str):
        error = refusal(recurrence(rule))

        assert (error.reason, error.metadata["field"]) == (
            "RULE_TOO_FREQUENT",
            "schedule.recurrence.rule",
        )

    @pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "europe/berlin", "CEST", "x" * 500])
    def test_unknown_timezone(self, timezone: str):
        error = refusal(recurrence("FREQ=DAILY", timezone))

        assert (error.reason, error.metadata["field"]) == (
            "INVALID_TIMEZONE",
            "schedule.recurrence.timezone",
        )
        assert len(error.message) < 200  # a huge value is not echoed

    @pytest.mark.parametrize(
        "start, end",
        [(NOW + timedelta(days=2), NOW + timedelta(days=1)), (NOW + timedelta(days=2),) * 2],
    )
    def test_end_not_after_start(self, start: datetime, end: datetime):
        error = refusal(recurrence("FREQ=DAILY", start=start, end=end))

        assert (error.reason, error.metadata["field"]) == (
            "END_BEFORE_START",
            "schedule.recurrence.end_time",
        )

    def test_end_before_now_without_start_time(self):
        error = refusal(recurrence("FREQ=DAILY", end=NOW - timedelta(days=1)))

        assert error.reason == "END_BEFORE_START"

    @pytest.mark.parametrize(
        "rule, start, end",
        [
            ("FREQ=DAILY;COUNT=3", NOW - timedelta(days=10), None),
            ("FREQ=DAILY;UNTIL=20270201T000000Z", NOW - timedelta(days=60), None),
            ("FREQ=DAILY;UNTIL=20270201", NOW - timedelta(days=60), None),
            ("FREQ=WEEKLY", NOW - timedelta(days=60), NOW - timedelta(days=1)),
            ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", None, None),
            ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31", None, None),
        ],
    )
    def test_no_occurrence_after_now(self, rule: str, start, end):
        started = time.monotonic()
        error = refusal(recurrence(rule, start=start, end=end))

        assert (error.reason, error.metadata["field"]) == (
            "NEVER_FIRES",
            "schedule.recurrence.rule",
        )
        assert time.monotonic() - started < 1  # not searched up to the year 9999

    @pytest.mark.parametrize("seconds", [2**62, -(2**62)])
    def test_a_time_out_of_range_is_refused_not_crashed_on(self, seconds: int):
        error = refusal(campaign_pb2.Schedule(at=Timestamp(seconds=seconds)))

        assert error.metadata["field"] == "schedule.at"
        message = recurrence("FREQ=DAILY")
        message.recurrence.end_time.seconds = seconds
        assert refusal(message).metadata["field"] == "schedule.recurrence.end_time"

    def test_no_kind_is_no_schedule(self):
        assert schedule_from_proto(None, NOW) is None
        assert schedule_from_proto(campaign_pb2.Schedule(), NOW) is None


class TestDaylightSaving:
    def test_berlin_spring_forward_runs_once_at_what_would_be_0230(self):
        schedule = recurring("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "Europe/Berlin")

        assert occurrences_between(schedule, utc(2027, 3, 26, 12), utc(2027, 3, 29, 12)) == [
            utc(2027, 3, 27, 1, 30),  # 02:30 CET
            utc(2027, 3, 28, 1, 30),  # 02:30 does not exist: 03:30 CEST
            utc(2027, 3, 29, 0, 30),  # 02:30 CEST
        ]

    def test_berlin_fall_back_runs_once_the_first_0230(self):
        schedule = recurring("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "Europe/Berlin")

        assert occurrences_between(schedule, utc(2027, 10, 29, 12), utc(2027, 11, 1, 12)) == [
            utc(2027, 10, 30, 0, 30),  # 02:30 CEST
            utc(2027, 10, 31, 0, 30),  # the first 02:30, CEST (not 01:30 UTC, CET)
            utc(2027, 11, 1, 1, 30),  # 02:30 CET
        ]

    def test_new_york_spring_forward(self):
        schedule = recurring("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "America/New_York")

        assert occurrences_between(schedule, utc(2027, 3, 12, 12), utc(2027, 3, 15, 12)) == [
            utc(2027, 3, 13, 7, 30),  # 02:30 EST
            utc(2027, 3, 14, 7, 30),  # 02:30 does not exist: 03:30 EDT
            utc(2027, 3, 15, 6, 30),  # 02:30 EDT
        ]

    def test_new_york_fall_back(self):
        at_0230 = recurring("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "America/New_York")
        at_0130 = recurring("FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "America/New_York")

        assert occurrences_between(at_0230, utc(2027, 11, 5, 12), utc(2027, 11, 8, 12)) == [
            utc(2027, 11, 6, 6, 30),  # 02:30 EDT
            utc(2027, 11, 7, 7, 30),  # 02:30 EST (02:30 happens once)
            utc(2027, 11, 8, 7, 30),
        ]
        # New York repeats 01:00-02:00: the first 01:30 (EDT) only.
        assert occurrences_between(at_0130, utc(2027, 11, 5, 12), utc(2027, 11, 8, 12)) == [
            utc(2027, 11, 6, 5, 30),
            utc(2027, 11, 7, 5, 30),
            utc(2027, 11, 8, 6, 30),
        ]

    @pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York"])
    def test_a_weekly_0900_stays_0900_local_across_both_changes(self, timezone: str):
        schedule = recurring("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", timezone)

        runs = occurrences_between(schedule, NOW, utc(2028, 3, 1))

        zone = ZoneInfo(timezone)
        local = [run.astimezone(zone) for run in runs]
        assert {(day.hour, day.minute, day.weekday()) for day in local} == {(9, 0, 0)}
        assert {(b.date() - a.date()).days for a, b in itertools.pairwise(local)} == {7}
        assert local[0].date() <= date(2027, 3, 8) and local[-1].date() >= date(2028, 2, 21)
        assert len({run.hour for run in runs}) == 2  # the UTC hour moves with the clock

    def test_hours_the_rule_does_not_give_are_the_starts_local_ones(self):
        # 09:15 in Berlin (CET) every day: still 09:15 local once summer time starts.
        schedule = recurring("FREQ=DAILY", "Europe/Berlin", start=utc(2027, 3, 20, 8, 15))

        assert occurrences_between(schedule, utc(2027, 3, 27), utc(2027, 3, 29, 12)) == [
            utc(2027, 3, 27, 8, 15),
            utc(2027, 3, 28, 7, 15),
            utc(2027, 3, 29, 7, 15),
        ]

    def test_hourly_over_the_changes_never_repeats_an_instant(self):
        schedule = recurring("FREQ=HOURLY", "Europe/Berlin", start=utc(2027, 3, 1))

        spring = occurrences_between(schedule, utc(2027, 3, 27, 23), utc(2027, 3, 28, 3))
        autumn = occurrences_between(schedule, utc(2027, 10, 30, 23), utc(2027, 10, 31, 3))

        # 01:00 CET, 02:00 (skipped: what fold=0 gives, 03:00 CEST), 04:00 CEST.
        assert spring == [utc(2027, 3, 28, h) for h in (0, 1, 2, 3)]
        # 02:00 CEST then 03:00 CET: the second 02:00 does not run.
        assert autumn == [utc(2027, 10, 31, h) for h in (0, 2, 3)]

    def test_next_occurrence_in_the_repeated_hour_is_after_the_asked_time(self):
        schedule = recurring("FREQ=HOURLY", "Europe/Berlin", start=utc(2027, 3, 1))

        # 01:30 UTC is 02:30 CET, the second pass through 02:00-03:00 local.
        assert next_occurrence(schedule, utc(2027, 10, 31, 1, 30)) == utc(2027, 10, 31, 2)
        assert next_occurrence(schedule, utc(2027, 10, 31, 0)) == utc(2027, 10, 31, 2)


class TestCalendar:
    def test_day_31_only_in_months_that_have_it(self):
        schedule = recurring(
            "FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=9;BYMINUTE=0", "UTC", utc(2027, 1, 1)
        )

        runs = occurrences_between(schedule, utc(2027, 1, 1), utc(2028, 1, 1))

        assert [run.month for run in runs] == [1, 3, 5, 7, 8, 10, 12]
        assert {run.day for run in runs} == {31}

    def test_the_last_day_of_every_month_including_29_february(self):
        schedule = recurring(
            "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=9;BYMINUTE=0", "UTC", utc(2027, 12, 1)
        )

        runs = occurrences_between(schedule, utc(2027, 12, 1), utc(2028, 12, 31, 23))

        assert [(run.month, run.day) for run in runs] == [
            (12, 31), (1, 31), (2, 29), (3, 31), (4, 30), (5, 31), (6, 30),
            (7, 31), (8, 31), (9, 30), (10, 31), (11, 30), (12, 31),
        ]  # fmt: skip

    def test_29_february_yearly_waits_for_a_leap_year(self):
        schedule = recurring("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "UTC", utc(2026, 1, 10, 9))

        assert next_occurrence(schedule, NOW) == utc(2028, 2, 29, 9)
        assert next_occurrence(schedule, utc(2028, 2, 29, 9)) == utc(2032, 2, 29, 9)

    def test_the_7th_set_on_the_20th_first_runs_next_month(self):
        created = utc(2027, 5, 20, 10)
        message = recurrence("FREQ=MONTHLY;BYMONTHDAY=7;BYHOUR=9;BYMINUTE=0", "Europe/Berlin")
        schedule = schedule_from_proto(message, created)
        assert schedule is not None

        assert schedule.start == created
        assert next_occurrence(schedule, created) == utc(2027, 6, 7, 7)  # 09:00 CEST
        assert occurrences_between(schedule, utc(2027, 1, 1), utc(2027, 6, 1)) == []

    def test_no_occurrence_before_an_explicit_start(self):
        schedule = recurring(
            "FREQ=MONTHLY;BYMONTHDAY=7;BYHOUR=9;BYMINUTE=0", "UTC", start=utc(2027, 8, 20)
        )

        assert next_occurrence(schedule, NOW) == utc(2027, 9, 7, 9)


class TestEnds:
    def test_count_stops_it(self):
        schedule = recurring("FREQ=DAILY;COUNT=3", "UTC", start=utc(2027, 4, 1, 9))

        assert occurrences_between(schedule, NOW, utc(2030, 1, 1)) == [
            utc(2027, 4, 1, 9), utc(2027, 4, 2, 9), utc(2027, 4, 3, 9),
        ]  # fmt: skip
        assert next_occurrence(schedule, utc(2027, 4, 3, 9)) is None

    @pytest.mark.parametrize(
        "until, last_day",
        [
            ("20270405T070000Z", 5),  # 09:00 CEST on the 5th is 07:00 UTC: kept
            ("20270405T065959Z", 4),
            ("20270405T090000", 5),  # floating: Berlin wall clock
            ("20270405T085959", 4),
        ],
    )
    def test_until_stops_it_in_utc_or_wall_clock(self, until: str, last_day: int):
        schedule = recurring(
            f"FREQ=DAILY;BYHOUR=9;BYMINUTE=0;UNTIL={until}", "Europe/Berlin", utc(2027, 4, 1)
        )

        runs = occurrences_between(schedule, NOW, utc(2030, 1, 1))

        assert runs[-1] == utc(2027, 4, last_day, 7)
        assert next_occurrence(schedule, runs[-1]) is None

    def test_end_time_stops_it_and_an_occurrence_at_the_end_runs(self):
        schedule = recurring("FREQ=DAILY", "UTC", start=utc(2027, 4, 1, 9), end=utc(2027, 4, 3, 9))

        assert occurrences_between(schedule, NOW, utc(2030, 1, 1)) == [
            utc(2027, 4, 1, 9), utc(2027, 4, 2, 9), utc(2027, 4, 3, 9),
        ]  # fmt: skip
        assert next_occurrence(schedule, utc(2027, 4, 3, 9)) is None

    def test_limit_keeps_the_latest(self):
        schedule = recurring("FREQ=HOURLY", "UTC", start=utc(2027, 4, 1))

        assert occurrences_between(schedule, utc(2027, 4, 1), utc(2027, 4, 1, 10), limit=3) == [
            utc(2027, 4, 1, 8), utc(2027, 4, 1, 9), utc(2027, 4, 1, 10),
        ]  # fmt: skip

    def test_specified_times_are_the_occurrences(self):
        times = [NOW + timedelta(days=d) for d in (3, 1, 2)]
        message = campaign_pb2.Schedule(
            times=campaign_pb2.SpecifiedTimes(times=[ts(t) for t in times])
        )
        schedule = schedule_from_proto(message, NOW)
        assert schedule is not None

        assert schedule.times == tuple(sorted(times))
        assert not schedule.recurring
        assert next_occurrence(schedule, NOW + timedelta(days=1)) == NOW + timedelta(days=2)
        assert occurrences_between(schedule, NOW, NOW + timedelta(days=2)) == sorted(times)[:2]
        assert next_occurrence(schedule, NOW + timedelta(days=3)) is None


class TestAYearOfRuns:
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        freq=st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY"]),
        interval=st.integers(1, 5),
        timezone=st.sampled_from(
            ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
        ),
        start_offset=st.integers(0, 365 * 24 * 60),
    )
    def test_walking_next_occurrence_gives_the_years_occurrences(
        self, freq: str, interval: int, timezone: str, start_offset: int
    ):
        created = utc(2027, 1, 1) + timedelta(minutes=start_offset)
        rule = f"FREQ={freq};INTERVAL={interval}"
        if freq == "HOURLY":
            rule += ";BYMINUTE=30"  # a minute inside Lord Howe's half-hour change
        schedule = schedule_from_proto(recurrence(rule, timezone), created)
        assert schedule is not None
        year_later = created + timedelta(days=365)

        walked, cursor = [], created
        while (cursor := next_occurrence(schedule, cursor)) is not None and cursor <= year_later:  # type: ignore[assignment]
            walked.append(cursor)

        assert walked == occurrences_between(schedule, created, year_later, limit=10_000)
        assert all(a < b for a, b in itertools.pairwise(walked))
        assert walked and walked[0] > created

    def test_a_far_next_occurrence_is_not_found_one_by_one(self):
        schedule = recurring("FREQ=HOURLY;BYMINUTE=15", "Europe/Berlin", start=utc(2027, 3, 1))

        started = time.monotonic()
        found = next_occurrence(schedule, utc(2127, 3, 1, 0, 20))

        assert found == utc(2127, 3, 1, 1, 15)
        assert time.monotonic() - started < 0.5  # ~876,000 hours from the start


class TestRoundTrips:
    @pytest.mark.parametrize(
        "schedule",
        [
            Schedule(times=(utc(2027, 4, 1, 9),)),
            Schedule(
                times=(utc(2027, 4, 1, 9), utc(2027, 4, 2, 9, 0, 0) + timedelta(microseconds=5))
            ),
            Schedule(
                rule="FREQ=WEEKLY;BYDAY=MO", start=utc(2027, 3, 1, 12), timezone="Europe/Berlin"
            ),
            Schedule(
                rule="FREQ=DAILY;COUNT=3",
                start=utc(2027, 3, 1, 12, 0, 1) + timedelta(microseconds=123456),
                end=utc(2027, 12, 31),
            ),
        ],
    )
    def test_json(self, schedule: Schedule):
        text = schedule_to_json(schedule)

        assert schedule_from_json(text) == schedule
        assert schedule_to_json(schedule_from_json(text)) == text

    def test_json_stores_iso_utc_times(self):
        text = schedule_to_json(Schedule(times=(utc(2027, 4, 1, 9),)))

        assert "2027-04-01T09:00:00Z" in text

    def test_one_time_comes_back_as_at_several_as_times(self):
        one = schedule_to_proto(Schedule(times=(utc(2027, 4, 1, 9),)))
        two = schedule_to_proto(Schedule(times=(utc(2027, 4, 1, 9), utc(2027, 4, 2, 9))))

        assert one.WhichOneof("kind") == "at"
        assert one.at.ToDatetime(tzinfo=UTC) == utc(2027, 4, 1, 9)
        assert two.WhichOneof("kind") == "times"
        assert [t.ToDatetime(tzinfo=UTC) for t in two.times.times] == [
            utc(2027, 4, 1, 9), utc(2027, 4, 2, 9),
        ]  # fmt: skip

    @pytest.mark.parametrize(
        "message",
        [
            campaign_pb2.Schedule(at=ts(utc(2027, 4, 1, 9))),
            campaign_pb2.Schedule(
                times=campaign_pb2.SpecifiedTimes(times=[ts(utc(2027, 4, 1)), ts(utc(2027, 5, 1))])
            ),
            recurrence("FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin", utc(2027, 3, 2), utc(2028, 1, 1)),
        ],
    )
    def test_proto(self, message: campaign_pb2.Schedule):
        schedule = schedule_from_proto(message, NOW)
        assert schedule is not None

        assert schedule_to_proto(schedule) == message
        assert schedule_from_proto(schedule_to_proto(schedule), NOW) == schedule

    def test_a_recurrence_without_start_time_is_given_back_with_its_start(self):
        schedule = recurring("FREQ=DAILY")

        back = schedule_to_proto(schedule).recurrence

        assert back.start_time.ToDatetime(tzinfo=UTC) == NOW
        assert back.timezone == "UTC"
        assert not back.HasField("end_time")
