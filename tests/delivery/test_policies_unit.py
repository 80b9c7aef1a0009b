"""A run's delivery policies (services/delivery/domain/policies.py): the stored form,
who counts as one person, the control group, local days for caps, and the do-not-disturb
window on each recipient's wall clock across midnight and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from google.protobuf import json_format

from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.policies import (
    Policy,
    in_control_group,
    local_day,
    person_key,
    policy_from_json,
    policy_from_proto,
    policy_to_json,
    quiet_hours,
    week_days,
)
from services.kit.errors import InvalidArgument


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def quiet(start: str, end: str, *, delay: bool = True) -> Policy:
    return Policy(
        quiet_start=time.fromisoformat(start), quiet_end=time.fromisoformat(end), quiet_delay=delay
    )


NIGHT = quiet("22:00", "08:00")


class TestStoredPolicy:
    def test_no_policy_is_an_inactive_one(self) -> None:
        for text in ("", "{}"):
            policy = policy_from_json(text)
            assert policy == Policy()
            assert not (policy.active or policy.capped or policy.quiet or policy.throttled)

    def test_reads_the_json_message_to_json_writes(self) -> None:
        message = delivery_pb2.RunPolicy(
            cap_per_day=2,
            cap_per_week=5,
            quiet_start="22:00",
            quiet_end="08:00",
            quiet_delay=True,
            campaign_max_per_minute=100,
            site_max_per_minute=1000,
            control_group_percent=10,
        )
        expected = Policy(
            cap_per_day=2,
            cap_per_week=5,
            quiet_start=time(22, 0),
            quiet_end=time(8, 0),
            quiet_delay=True,
            campaign_max_per_minute=100,
            site_max_per_minute=1000,
            control_group_percent=10,
        )
        written = json_format.MessageToJson(message, preserving_proto_field_name=True)
        assert policy_from_json(written) == expected
        assert policy_from_json(policy_to_json(message)) == expected
        assert expected.active and expected.capped and expected.quiet and expected.throttled

    def test_an_empty_message_is_stored_as_nothing(self) -> None:
        assert policy_to_json(delivery_pb2.RunPolicy()) == ""

    @pytest.mark.parametrize(
        ("policy", "active"),
        [
            (Policy(cap_per_week=1), "capped"),
            (Policy(site_max_per_minute=1), "throttled"),
            (Policy(campaign_max_per_minute=1), "throttled"),
            (quiet("01:00", "02:00"), "quiet"),
            (Policy(control_group_percent=5), None),
        ],
    )
    def test_any_one_setting_makes_it_active(self, policy: Policy, active: str | None) -> None:
        assert policy.active
        for name in ("capped", "quiet", "throttled"):
            assert getattr(policy, name) == (name == active)

    @pytest.mark.parametrize(
        ("start", "end", "field"),
        [
            ("22:00", "", "policy.quiet_end"),
            ("", "08:00", "policy.quiet_start"),
            ("24:00", "08:00", "policy.quiet_start"),
            ("22:00", "8:00", "policy.quiet_end"),
            ("22:00", "08:60", "policy.quiet_end"),
            ("07:30", "07:30", "policy.quiet_end"),
        ],
    )
    def test_quiet_hours_need_two_different_hh_mm(self, start: str, end: str, field: str) -> None:
        with pytest.raises(InvalidArgument) as raised:
            policy_from_proto(delivery_pb2.RunPolicy(quiet_start=start, quiet_end=end))
        assert raised.value.reason == "INVALID_QUIET_HOURS"
        assert raised.value.metadata.get("field") == field


class TestPerson:
    def test_a_profile_is_one_person_whatever_the_browser(self) -> None:
        assert person_key("user-1", "sub_a") == person_key("user-1", "sub_b") == "p:user-1"

    def test_an_anonymous_subscriber_is_a_person_of_its_own(self) -> None:
        assert person_key("", "sub_a") == "s:sub_a"


class TestControlGroup:
    KEYS = [f"s:sub_{n:06d}" for n in range(100_000)]

    def share(self, campaign_id: str, percent: float) -> float:
        held = sum(in_control_group(key, campaign_id, percent) for key in self.KEYS)
        return 100 * held / len(self.KEYS)

    @pytest.mark.parametrize("percent", [1, 10, 50])
    def test_the_share_held_out_is_the_percentage(self, percent: int) -> None:
        assert abs(self.share("cmp_1", percent) - percent) <= 0.5

    def test_a_fraction_of_a_percent_is_honoured(self) -> None:
        assert 0.15 <= self.share("cmp_1", 0.25) <= 0.35

    def test_none_at_zero(self) -> None:
        assert self.share("cmp_1", 0) == 0

    def test_the_same_people_every_run_of_a_campaign(self) -> None:
        first = [in_control_group(key, "cmp_1", 20) for key in self.KEYS[:2000]]
        again = [in_control_group(key, "cmp_1", 20) for key in self.KEYS[:2000]]
        assert first == again

    def test_other_people_in_another_campaign(self) -> None:
        one = {key for key in self.KEYS if in_control_group(key, "cmp_1", 10)}
        other = {key for key in self.KEYS if in_control_group(key, "cmp_2", 10)}
        # Independent choices overlap on about 10 % of 10 %.
        assert abs(100 * len(one & other) / len(self.KEYS) - 1) <= 0.3

    def test_a_larger_percentage_keeps_everyone_a_smaller_one_held(self) -> None:
        ten = {key for key in self.KEYS if in_control_group(key, "cmp_1", 10)}
        twenty = {key for key in self.KEYS if in_control_group(key, "cmp_1", 20)}
        assert ten < twenty


class TestLocalDay:
    def test_the_day_is_the_recipients(self) -> None:
        at = utc(2027, 1, 15, 20, 0)
        assert local_day("Asia/Tokyo", at) == date(2027, 1, 16)  # 05:00 JST
        assert local_day("UTC", at) == date(2027, 1, 15)
        assert local_day("America/Los_Angeles", utc(2027, 1, 15, 5, 0)) == date(2027, 1, 14)

    def test_no_zone_takes_the_default_then_utc(self) -> None:
        at = utc(2027, 1, 15, 20, 0)
        assert local_day("", at, "Asia/Tokyo") == date(2027, 1, 16)
        assert local_day("Not/AZone", at, "Asia/Tokyo") == date(2027, 1, 16)
        assert local_day("Not/AZone", at) == date(2027, 1, 15)

    def test_a_week_is_the_seven_days_ending_on_the_day(self) -> None:
        assert week_days(date(2027, 3, 2)) == (
            date(2027, 2, 24),
            date(2027, 2, 25),
            date(2027, 2, 26),
            date(2027, 2, 27),
            date(2027, 2, 28),
            date(2027, 3, 1),
            date(2027, 3, 2),
        )


class TestQuietHoursOvernight:
    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            (utc(2027, 1, 15, 21, 59), utc(2027, 1, 15, 21, 59)),  # before the start
            (utc(2027, 1, 15, 22, 0), utc(2027, 1, 16, 8, 0)),  # at the start
            (utc(2027, 1, 15, 23, 30), utc(2027, 1, 16, 8, 0)),
            (utc(2027, 1, 16, 0, 0), utc(2027, 1, 16, 8, 0)),  # past midnight
            (utc(2027, 1, 16, 7, 59), utc(2027, 1, 16, 8, 0)),  # just before the end
            (utc(2027, 1, 16, 8, 0), utc(2027, 1, 16, 8, 0)),  # at the end: out
            (utc(2027, 1, 16, 12, 0), utc(2027, 1, 16, 12, 0)),
        ],
    )
    def test_a_push_inside_waits_for_the_end(self, at: datetime, expected: datetime) -> None:
        assert quiet_hours(NIGHT, "UTC", at) == (expected, "")

    def test_or_is_discarded(self) -> None:
        discard = quiet("22:00", "08:00", delay=False)
        assert quiet_hours(discard, "UTC", utc(2027, 1, 16, 3, 0)) == (None, "dnd")
        assert quiet_hours(discard, "UTC", utc(2027, 1, 16, 8, 0)) == (utc(2027, 1, 16, 8, 0), "")

    def test_no_window_lets_everything_through(self) -> None:
        assert quiet_hours(Policy(), "UTC", utc(2027, 1, 16, 3, 0)) == (utc(2027, 1, 16, 3, 0), "")

    def test_the_window_is_on_the_recipients_wall_clock(self) -> None:
        # 22:00 CET is 21:00 UTC; 22:00 in New York (EST) is 03:00 UTC.
        assert quiet_hours(NIGHT, "Europe/Berlin", utc(2027, 1, 15, 20, 59))[0] == utc(
            2027, 1, 15, 20, 59
        )
        assert quiet_hours(NIGHT, "Europe/Berlin", utc(2027, 1, 15, 21, 0)) == (
            utc(2027, 1, 16, 7, 0),
            "",
        )
        assert quiet_hours(NIGHT, "America/New_York", utc(2027, 1, 16, 2, 0))[0] == utc(
            2027, 1, 16, 2, 0
        )
        assert quiet_hours(NIGHT, "America/New_York", utc(2027, 1, 16, 3, 0)) == (
            utc(2027, 1, 16, 13, 0),
            "",
        )

    def test_no_zone_takes_the_default_then_utc(self) -> None:
        at = utc(2027, 1, 15, 21, 30)  # 22:30 CET, 21:30 UTC
        assert quiet_hours(NIGHT, "", at, "Europe/Berlin") == (utc(2027, 1, 16, 7, 0), "")
        assert quiet_hours(NIGHT, "Not/AZone", at, "Europe/Berlin") == (utc(2027, 1, 16, 7, 0), "")
        assert quiet_hours(NIGHT, "Not/AZone", at) == (at, "")
        assert quiet_hours(NIGHT, "", utc(2027, 1, 15, 22, 30)) == (utc(2027, 1, 16, 8, 0), "")


class TestQuietHoursInTheDay:
    NOON = quiet("12:00", "14:00")

    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            (utc(2027, 1, 15, 11, 59), utc(2027, 1, 15, 11, 59)),
            (utc(2027, 1, 15, 12, 0), utc(2027, 1, 15, 14, 0)),
            (utc(2027, 1, 15, 13, 59), utc(2027, 1, 15, 14, 0)),
            (utc(2027, 1, 15, 14, 0), utc(2027, 1, 15, 14, 0)),
            (utc(2027, 1, 15, 23, 0), utc(2027, 1, 15, 23, 0)),
            (utc(2027, 1, 16, 1, 0), utc(2027, 1, 16, 1, 0)),
        ],
    )
    def test_a_window_within_one_day(self, at: datetime, expected: datetime) -> None:
        assert quiet_hours(self.NOON, "UTC", at) == (expected, "")

    def test_in_the_recipients_zone(self) -> None:
        # 12:00 JST is 03:00 UTC.
        assert quiet_hours(self.NOON, "Asia/Tokyo", utc(2027, 1, 15, 3, 0)) == (
            utc(2027, 1, 15, 5, 0),
            "",
        )
        assert quiet_hours(self.NOON, "Asia/Tokyo", utc(2027, 1, 15, 5, 0))[0] == utc(
            2027, 1, 15, 5, 0
        )


class TestQuietHoursAcrossDaylightSaving:
    """Berlin: 28 March 2027 02:00 CET -> 03:00 CEST (01:00 UTC); 31 October 2027
    03:00 CEST -> 02:00 CET (01:00 UTC). New York: 14 March 2027 02:00 EST -> 03:00 EDT
    (07:00 UTC); 7 November 2027 02:00 EDT -> 01:00 EST (06:00 UTC)."""

    @pytest.mark.parametrize(
        ("zone", "opens", "closes"),
        [
            # 22:00 CET to 08:00 CEST: a night of nine hours.
            ("Europe/Berlin", utc(2027, 3, 27, 21, 0), utc(2027, 3, 28, 6, 0)),
            # 22:00 CEST to 08:00 CET: a night of eleven hours.
            ("Europe/Berlin", utc(2027, 10, 30, 20, 0), utc(2027, 10, 31, 7, 0)),
            # 22:00 EST to 08:00 EDT.
            ("America/New_York", utc(2027, 3, 14, 3, 0), utc(2027, 3, 14, 12, 0)),
            # 22:00 EDT to 08:00 EST.
            ("America/New_York", utc(2027, 11, 7, 2, 0), utc(2027, 11, 7, 13, 0)),
        ],
    )
    def test_a_night_ends_at_eight_local_whatever_the_change(
        self, zone: str, opens: datetime, closes: datetime
    ) -> None:
        before = opens - timedelta(minutes=1)  # 21:59 local
        assert quiet_hours(NIGHT, zone, before) == (before, "")
        assert quiet_hours(NIGHT, zone, opens) == (closes, "")
        assert quiet_hours(NIGHT, zone, closes - timedelta(minutes=1)) == (closes, "")
        assert quiet_hours(NIGHT, zone, closes) == (closes, "")

    def test_a_start_the_clocks_skip_starts_at_the_jump_in_berlin(self) -> None:
        window = quiet("02:30", "06:00")
        # On a normal night 02:30 CET comes at 01:30 UTC.
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 27, 1, 29))[0] == utc(
            2027, 3, 27, 1, 29
        )
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 27, 1, 30)) == (
            utc(2027, 3, 27, 5, 0),
            "",
        )
        # On the 28th the clock goes from 01:59:59 CET to 03:00 CEST (01:00 UTC).
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 28, 0, 59, 59))[0] == utc(
            2027, 3, 28, 0, 59, 59
        )
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 28, 1, 0)) == (
            utc(2027, 3, 28, 4, 0),  # 06:00 CEST
            "",
        )

    def test_a_start_the_clocks_skip_starts_at_the_jump_in_new_york(self) -> None:
        window = quiet("02:30", "06:00", delay=False)
        # 01:59 EST, then 03:00 EDT (07:00 UTC).
        assert quiet_hours(window, "America/New_York", utc(2027, 3, 14, 6, 59))[1] == ""
        assert quiet_hours(window, "America/New_York", utc(2027, 3, 14, 7, 0)) == (None, "dnd")
        assert quiet_hours(window, "America/New_York", utc(2027, 3, 14, 9, 59)) == (None, "dnd")
        assert quiet_hours(window, "America/New_York", utc(2027, 3, 14, 10, 0))[1] == ""

    def test_an_end_the_clocks_skip_ends_at_the_jump(self) -> None:
        window = quiet("22:00", "02:30")
        # 22:00 CET on the 27th is 21:00 UTC; the night ends at the jump, 01:00 UTC.
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 28, 0, 59)) == (
            utc(2027, 3, 28, 1, 0),
            "",
        )
        assert quiet_hours(window, "Europe/Berlin", utc(2027, 3, 28, 1, 0))[0] == utc(
            2027, 3, 28, 1, 0
        )

    def test_a_repeated_end_ends_the_first_time_it_comes(self) -> None:
        window = quiet("22:00", "01:30")
        # 01:30 EDT is 05:30 UTC; 01:30 EST an hour later.
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 5, 29)) == (
            utc(2027, 11, 7, 5, 30),
            "",
        )
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 5, 30))[1] == ""
        # 01:00 EST, the second time the clock reads it: the window has ended.
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 6, 0))[0] == utc(
            2027, 11, 7, 6, 0
        )

    def test_a_repeated_start_starts_the_first_time_it_comes(self) -> None:
        window = quiet("01:30", "05:00")
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 5, 29))[0] == utc(
            2027, 11, 7, 5, 29
        )
        # From 01:30 EDT to 05:00 EST (10:00 UTC).
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 5, 30)) == (
            utc(2027, 11, 7, 10, 0),
            "",
        )
        assert quiet_hours(window, "America/New_York", utc(2027, 11, 7, 6, 45)) == (
            utc(2027, 11, 7, 10, 0),
            "",
        )
