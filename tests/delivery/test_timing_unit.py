"""When a recipient of a timed run is due (services/delivery/domain/timing.py): its local
time in its own zone (else the site's, else UTC), across daylight saving changes, a
passed time skipped or moved to the next day, and the cut-off."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.timing import (
    RunTiming,
    due,
    timing_from_json,
    timing_from_proto,
    timing_to_json,
)
from services.kit.errors import InvalidArgument


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


NINE = RunTiming(local_time=time(9, 0))


class TestLocalTime:
    @pytest.mark.parametrize(
        ("zone", "expected"),
        [
            ("Europe/Berlin", utc(2027, 1, 15, 8, 0)),  # CET, UTC+1
            ("UTC", utc(2027, 1, 15, 9, 0)),
            ("America/New_York", utc(2027, 1, 15, 14, 0)),  # EST, UTC-5
        ],
    )
    def test_each_zone_gets_its_own_nine_oclock(self, zone: str, expected: datetime) -> None:
        assert due(NINE, zone, utc(2027, 1, 15, 6, 0)) == (expected, "")

    def test_a_time_already_passed_is_skipped(self) -> None:
        # 15:00 in Tokyo.
        assert due(NINE, "Asia/Tokyo", utc(2027, 1, 15, 6, 0)) == (None, "local_time_passed")

    def test_or_moved_to_the_next_day(self) -> None:
        timing = RunTiming(local_time=time(9, 0), next_day_if_passed=True)
        # 09:00 JST on the 16th.
        assert due(timing, "Asia/Tokyo", utc(2027, 1, 15, 6, 0)) == (utc(2027, 1, 16, 0, 0), "")

    def test_the_local_date_is_the_recipients_not_utcs(self) -> None:
        # 23:00 UTC on the 15th is already the 16th in Tokyo (08:00): today's 09:00 is due.
        assert due(NINE, "Asia/Tokyo", utc(2027, 1, 15, 23, 0)) == (utc(2027, 1, 16, 0, 0), "")

    def test_a_subscriber_without_a_zone_takes_the_sites_then_utc(self) -> None:
        with_site = RunTiming(local_time=time(9, 0), default_timezone="America/New_York")
        assert due(with_site, "", utc(2027, 1, 15, 6, 0)) == (utc(2027, 1, 15, 14, 0), "")
        assert due(NINE, "", utc(2027, 1, 15, 6, 0)) == (utc(2027, 1, 15, 9, 0), "")
        assert due(NINE, "Not/AZone", utc(2027, 1, 15, 6, 0)) == (utc(2027, 1, 15, 9, 0), "")


class TestDaylightSaving:
    def test_summer_time_moves_the_utc_hour(self) -> None:
        # CEST, UTC+2.
        assert due(NINE, "Europe/Berlin", utc(2027, 7, 1, 4, 0)) == (utc(2027, 7, 1, 7, 0), "")

    def test_a_time_the_clocks_skip_goes_an_hour_later_by_the_new_clock(self) -> None:
        # Berlin springs forward at 02:00 on 28 March 2027: 02:30 does not exist.
        timing = RunTiming(local_time=time(2, 30))
        moment, reason = due(timing, "Europe/Berlin", utc(2027, 3, 27, 23, 30))
        assert reason == ""
        assert moment == utc(2027, 3, 28, 1, 30)  # 03:30 CEST

    def test_a_repeated_time_goes_the_first_time_it_comes(self) -> None:
        # New York falls back at 02:00 EDT on 7 November 2027: 01:30 happens twice.
        timing = RunTiming(local_time=time(1, 30))
        moment, _ = due(timing, "America/New_York", utc(2027, 11, 7, 4, 0))  # 00:00 EDT
        assert moment == utc(2027, 11, 7, 5, 30)  # 01:30 EDT, not 06:30 (01:30 EST)


class TestCutOff:
    def test_due_after_the_cut_off_is_not_sent(self) -> None:
        timing = RunTiming(local_time=time(9, 0), cut_off_time=utc(2027, 1, 15, 10, 0))
        assert due(timing, "UTC", utc(2027, 1, 15, 6, 0)) == (utc(2027, 1, 15, 9, 0), "")
        assert due(timing, "America/New_York", utc(2027, 1, 15, 6, 0)) == (None, "cut_off")

    def test_without_a_local_time_the_cut_off_alone_lets_everyone_go_now(self) -> None:
        timing = RunTiming(cut_off_time=utc(2027, 1, 15, 10, 0))
        assert due(timing, "UTC", utc(2027, 1, 15, 6, 0)) == (None, "")


class TestRequest:
    def test_round_trip_through_the_run_row(self) -> None:
        timing = timing_from_proto(
            delivery_pb2.RunTiming(
                local_time="09:30", default_timezone="Europe/Paris", next_day_if_passed=True
            ),
            utc(2027, 1, 1),
        )
        assert timing_from_json(timing_to_json(timing)) == timing
        assert timing_to_json(RunTiming()) == ""
        assert timing_from_json("") == RunTiming()

    @pytest.mark.parametrize(
        ("message", "field"),
        [
            (delivery_pb2.RunTiming(local_time="9:00"), "timing.local_time"),
            (delivery_pb2.RunTiming(local_time="24:00"), "timing.local_time"),
            (delivery_pb2.RunTiming(default_timezone="Moon/Base"), "timing.default_timezone"),
        ],
    )
    def test_bad_values_are_refused_naming_the_field(
        self, message: delivery_pb2.RunTiming, field: str
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            timing_from_proto(message, utc(2027, 1, 1))
        assert raised.value.metadata.get("field") == field


def test_next_day_crosses_a_month_end() -> None:
    timing = RunTiming(local_time=time(9, 0), next_day_if_passed=True)
    moment, _ = due(timing, "UTC", utc(2027, 1, 31, 12, 0))
    assert moment == utc(2027, 2, 1, 9, 0)
    assert moment - utc(2027, 1, 31, 9, 0) == timedelta(days=1)
