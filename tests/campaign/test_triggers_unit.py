"""Live campaign triggers: what a trigger is refused for (reason and field), how its
event filters match an event's properties, reminder times, and the proto and JSON
round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clarion.campaign.v1 import campaign_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2
from services.campaign.domain.triggers import (
    DateReminder,
    EventFilter,
    Inaction,
    Operator,
    Trigger,
    event_names,
    event_value,
    matches,
    reminder_time,
    trigger_from_json,
    trigger_from_proto,
    trigger_to_json,
    trigger_to_proto,
)
from services.kit.errors import InvalidArgument

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
BERLIN_WINTER = timezone(timedelta(hours=1))
TOKYO = timezone(timedelta(hours=9))
Op = segment_pb2.PropertyOperator


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def value(given: Any) -> profile_pb2.PropertyValue:
    if isinstance(given, bool):
        return profile_pb2.PropertyValue(bool_value=given)
    if isinstance(given, int | float):
        return profile_pb2.PropertyValue(number_value=given)
    if isinstance(given, datetime):
        return profile_pb2.PropertyValue(timestamp_value=ts(given))
    if isinstance(given, list):
        return profile_pb2.PropertyValue(string_list_value=profile_pb2.StringList(values=given))
    return profile_pb2.PropertyValue(string_value=given)


def condition(
    name: str, operator: int, *values: Any, days: int = 0
) -> segment_pb2.PropertyCondition:
    return segment_pb2.PropertyCondition(
        name=name, operator=operator, values=[value(v) for v in values], days=days
    )


def parsed(message: campaign_pb2.Trigger, now: datetime = NOW) -> Trigger:
    trigger = trigger_from_proto(message, now)
    assert trigger is not None
    return trigger


def refusal(message: campaign_pb2.Trigger, now: datetime = NOW, **kw: Any) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        trigger_from_proto(message, now, **kw)
    return caught.value.reason, caught.value.metadata["field"]


def with_filter(*filters: segment_pb2.PropertyCondition) -> campaign_pb2.Trigger:
    return campaign_pb2.Trigger(event_name="Added To Cart", event_filters=list(filters))


def one(test: segment_pb2.PropertyCondition) -> EventFilter:
    return parsed(with_filter(test)).filters[0]


def holds(test: segment_pb2.PropertyCondition, now: datetime = NOW, **properties: Any) -> bool:
    return matches([one(test)], properties, now)


class TestTriggerFromProto:
    def test_unset_or_default_is_no_trigger(self) -> None:
        assert trigger_from_proto(None, NOW) is None
        assert trigger_from_proto(campaign_pb2.Trigger(), NOW) is None

    def test_a_plain_trigger_starts_now_without_end_or_cooldown(self) -> None:
        trigger = parsed(campaign_pb2.Trigger(event_name="Added To Cart"))
        assert trigger == Trigger(
            event_name="Added To Cart",
            filters=(),
            wait=None,
            person_cooldown=timedelta(0),
            start_time=NOW,
            end_time=None,
        )

    def test_every_field_is_read(self) -> None:
        start, end = NOW - timedelta(days=1), NOW + timedelta(days=10)
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="Added To Cart",
                event_filters=[condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes")],
                inaction=campaign_pb2.Inaction(
                    event_name="Charged",
                    event_filters=[condition("amount", Op.PROPERTY_OPERATOR_GREATER_THAN, 10)],
                    window_seconds=3600,
                    keep_first_wait=True,
                ),
                person_cooldown_seconds=86400,
                start_time=ts(start),
                end_time=ts(end),
            )
        )
        assert trigger == Trigger(
            event_name="Added To Cart",
            filters=(EventFilter("category", Operator.EQUALS, ("shoes",)),),
            wait=Inaction(
                event_name="Charged",
                filters=(EventFilter("amount", Operator.GREATER_THAN, (10.0,)),),
                window=timedelta(hours=1),
                keep_first_wait=True,
            ),
            person_cooldown=timedelta(days=1),
            start_time=start,
            end_time=end,
        )
        assert trigger.start_time.tzinfo is UTC

    def test_a_date_reminder_is_read(self) -> None:
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="Booked",
                date_reminder=campaign_pb2.DateReminder(
                    property="travel_date", offset_seconds=-86400
                ),
            )
        )
        assert trigger.wait == DateReminder(property="travel_date", offset=timedelta(days=-1))

    def test_in_values_given_twice_are_kept_once(self) -> None:
        test = one(condition("size", Op.PROPERTY_OPERATOR_IN, "S", "M", "S"))
        assert test.values == ("S", "M")

    def test_the_field_prefix_names_where_the_trigger_is(self) -> None:
        message = campaign_pb2.Trigger(inaction=campaign_pb2.Inaction(event_name="Charged"))
        assert refusal(message, field="campaign.trigger") == (
            "MISSING_EVENT_NAME",
            "campaign.trigger.event_name",
        )

    def test_now_must_be_aware(self) -> None:
        with pytest.raises(ValueError):
            trigger_from_proto(campaign_pb2.Trigger(event_name="x"), datetime(2027, 1, 1))


class TestTriggerRefusals:
    @pytest.mark.parametrize(
        ("message", "reason", "field"),
        [
            (
                campaign_pb2.Trigger(person_cooldown_seconds=60),
                "MISSING_EVENT_NAME",
                "trigger.event_name",
            ),
            (campaign_pb2.Trigger(event_name="   "), "MISSING_EVENT_NAME", "trigger.event_name"),
            (
                campaign_pb2.Trigger(event_name="Added\nTo Cart"),
                "INVALID_EVENT_NAME",
                "trigger.event_name",
            ),
            (
                campaign_pb2.Trigger(event_name="x" * 129),
                "INVALID_EVENT_NAME",
                "trigger.event_name",
            ),
            (
                campaign_pb2.Trigger(event_name="e", person_cooldown_seconds=-1),
                "INVALID_COOLDOWN",
                "trigger.person_cooldown_seconds",
            ),
            (
                campaign_pb2.Trigger(event_name="e", person_cooldown_seconds=2592001),
                "INVALID_COOLDOWN",
                "trigger.person_cooldown_seconds",
            ),
            (
                campaign_pb2.Trigger(event_name="e", end_time=ts(NOW - timedelta(seconds=1))),
                "INVALID_END_TIME",
                "trigger.end_time",
            ),
            (
                campaign_pb2.Trigger(event_name="e", end_time=ts(NOW)),
                "INVALID_END_TIME",
                "trigger.end_time",
            ),
            (
                campaign_pb2.Trigger(
                    event_name="e",
                    start_time=ts(NOW + timedelta(days=2)),
                    end_time=ts(NOW + timedelta(days=1)),
                ),
                "INVALID_END_TIME",
                "trigger.end_time",
            ),
            (
                campaign_pb2.Trigger(
                    event_name="e",
                    start_time=ts(NOW - timedelta(days=2)),
                    end_time=ts(NOW - timedelta(days=1)),
                ),
                "INVALID_END_TIME",
                "trigger.end_time",
            ),
            (
                campaign_pb2.Trigger(event_name="e", start_time=Timestamp(seconds=-(10**12))),
                "INVALID_FIELD",
                "trigger.start_time",
            ),
        ],
    )
    def test_trigger_fields(self, message: campaign_pb2.Trigger, reason: str, field: str) -> None:
        assert refusal(message) == (reason, field)

    def test_the_limits_themselves_are_taken(self) -> None:
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="x" * 128,
                person_cooldown_seconds=2592000,
                end_time=ts(NOW + timedelta(seconds=1)),
            )
        )
        assert trigger.person_cooldown == timedelta(days=30)

    @pytest.mark.parametrize(
        ("inaction", "reason", "field"),
        [
            (
                campaign_pb2.Inaction(window_seconds=600),
                "MISSING_EVENT_NAME",
                "trigger.inaction.event_name",
            ),
            (
                campaign_pb2.Inaction(event_name="Charged", window_seconds=59),
                "INVALID_WINDOW",
                "trigger.inaction.window_seconds",
            ),
            (
                campaign_pb2.Inaction(event_name="Charged"),
                "INVALID_WINDOW",
                "trigger.inaction.window_seconds",
            ),
            (
                campaign_pb2.Inaction(event_name="Charged", window_seconds=2592001),
                "INVALID_WINDOW",
                "trigger.inaction.window_seconds",
            ),
            (
                campaign_pb2.Inaction(
                    event_name="Charged",
                    window_seconds=600,
                    event_filters=[condition("amount", Op.PROPERTY_OPERATOR_UNSPECIFIED)],
                ),
                "UNKNOWN_OPERATOR",
                "trigger.inaction.event_filters[0].operator",
            ),
        ],
    )
    def test_inaction(self, inaction: campaign_pb2.Inaction, reason: str, field: str) -> None:
        message = campaign_pb2.Trigger(event_name="Added To Cart", inaction=inaction)
        assert refusal(message) == (reason, field)

    def test_inaction_window_limits_are_taken(self) -> None:
        for seconds in (60, 2592000):
            message = campaign_pb2.Trigger(
                event_name="Added To Cart",
                inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=seconds),
            )
            wait = parsed(message).wait
            assert isinstance(wait, Inaction) and wait.window == timedelta(seconds=seconds)

    @pytest.mark.parametrize(
        ("trigger_filters", "inaction_filters"),
        [
            ([], []),
            (
                [condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes")],
                [condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes")],
            ),
            # Every triggering event (category shoes) also meets the inaction's filters.
            ([condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes")], []),
            (
                [condition("size", Op.PROPERTY_OPERATOR_IN, "S", "M")],
                [condition("size", Op.PROPERTY_OPERATOR_IN, "M", "S", "M")],
            ),
        ],
    )
    def test_an_inaction_event_that_always_cancels_itself_is_refused(
        self,
        trigger_filters: list[segment_pb2.PropertyCondition],
        inaction_filters: list[segment_pb2.PropertyCondition],
    ) -> None:
        message = campaign_pb2.Trigger(
            event_name="Viewed",
            event_filters=trigger_filters,
            inaction=campaign_pb2.Inaction(
                event_name="Viewed", event_filters=inaction_filters, window_seconds=600
            ),
        )
        assert refusal(message) == ("INVALID_INACTION", "trigger.inaction.event_name")

    def test_the_same_event_with_other_filters_is_an_inaction(self) -> None:
        message = campaign_pb2.Trigger(
            event_name="Viewed",
            event_filters=[condition("page", Op.PROPERTY_OPERATOR_EQUALS, "cart")],
            inaction=campaign_pb2.Inaction(
                event_name="Viewed",
                event_filters=[condition("page", Op.PROPERTY_OPERATOR_EQUALS, "checkout")],
                window_seconds=600,
            ),
        )
        assert isinstance(parsed(message).wait, Inaction)

    @pytest.mark.parametrize(
        ("reminder", "reason", "field"),
        [
            (
                campaign_pb2.DateReminder(offset_seconds=3600),
                "MISSING_PROPERTY",
                "trigger.date_reminder.property",
            ),
            (
                campaign_pb2.DateReminder(property="travel/date"),
                "INVALID_PROPERTY_NAME",
                "trigger.date_reminder.property",
            ),
            (
                campaign_pb2.DateReminder(property="travel_date", offset_seconds=366 * 86400 + 1),
                "INVALID_OFFSET",
                "trigger.date_reminder.offset_seconds",
            ),
            (
                campaign_pb2.DateReminder(property="travel_date", offset_seconds=-366 * 86400 - 1),
                "INVALID_OFFSET",
                "trigger.date_reminder.offset_seconds",
            ),
        ],
    )
    def test_date_reminder(
        self, reminder: campaign_pb2.DateReminder, reason: str, field: str
    ) -> None:
        message = campaign_pb2.Trigger(event_name="Booked", date_reminder=reminder)
        assert refusal(message) == (reason, field)

    def test_reminder_offsets_of_366_days_either_way_are_taken(self) -> None:
        for seconds in (366 * 86400, -366 * 86400, 0):
            message = campaign_pb2.Trigger(
                event_name="Booked",
                date_reminder=campaign_pb2.DateReminder(
                    property="travel_date", offset_seconds=seconds
                ),
            )
            assert parsed(message).wait == DateReminder("travel_date", timedelta(seconds=seconds))


class TestFilterRefusals:
    @pytest.mark.parametrize(
        ("test", "reason", "field"),
        [
            (
                condition("", Op.PROPERTY_OPERATOR_EXISTS),
                "INVALID_CONDITION",
                "trigger.event_filters[1].name",
            ),
            (
                condition("a\tb", Op.PROPERTY_OPERATOR_EXISTS),
                "INVALID_CONDITION",
                "trigger.event_filters[1].name",
            ),
            (
                condition("x" * 65, Op.PROPERTY_OPERATOR_EXISTS),
                "INVALID_CONDITION",
                "trigger.event_filters[1].name",
            ),
            (
                condition("price", Op.PROPERTY_OPERATOR_UNSPECIFIED),
                "UNKNOWN_OPERATOR",
                "trigger.event_filters[1].operator",
            ),
            (
                condition("price", 99),
                "UNKNOWN_OPERATOR",
                "trigger.event_filters[1].operator",
            ),
            # How many values.
            *(
                (condition("p", operator), "INVALID_CONDITION", "trigger.event_filters[1].values")
                for operator in (
                    Op.PROPERTY_OPERATOR_EQUALS,
                    Op.PROPERTY_OPERATOR_NOT_EQUALS,
                    Op.PROPERTY_OPERATOR_IN,
                    Op.PROPERTY_OPERATOR_CONTAINS,
                    Op.PROPERTY_OPERATOR_STARTS_WITH,
                    Op.PROPERTY_OPERATOR_GREATER_THAN,
                    Op.PROPERTY_OPERATOR_LESS_THAN,
                    Op.PROPERTY_OPERATOR_BETWEEN,
                )
            ),
            *(
                (
                    condition("p", operator, "a", "b"),
                    "INVALID_CONDITION",
                    "trigger.event_filters[1].values",
                )
                for operator in (
                    Op.PROPERTY_OPERATOR_EQUALS,
                    Op.PROPERTY_OPERATOR_NOT_EQUALS,
                    Op.PROPERTY_OPERATOR_CONTAINS,
                    Op.PROPERTY_OPERATOR_STARTS_WITH,
                )
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, 1, 2),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, 2, 3),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_IN, *range(1001)),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_EXISTS, "a"),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_NOT_EXISTS, "a"),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, NOW, days=3),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            # days.
            *(
                (
                    condition("p", operator, days=days),
                    "INVALID_CONDITION",
                    "trigger.event_filters[1].days",
                )
                for operator in (
                    Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS,
                    Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO,
                    Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS,
                )
                for days in (0, -1, 36501)
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_EXISTS, days=3),
                "INVALID_CONDITION",
                "trigger.event_filters[1].days",
            ),
            # Types.
            (
                condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, 3),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_CONTAINS, True),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_CONTAINS, NOW),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, "10"),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, False),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, "a", "b"),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, NOW),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[1]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_IN, "a", "b", 3),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[2]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_IN, 1, True),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[1]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 5, 4),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, NOW, NOW - timedelta(seconds=1)),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_EQUALS, ["a", "b"]),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                segment_pb2.PropertyCondition(
                    name="p",
                    operator=Op.PROPERTY_OPERATOR_EQUALS,
                    values=[profile_pb2.PropertyValue()],
                ),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_EQUALS, float("nan")),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, float("inf")),
                "INVALID_CONDITION",
                "trigger.event_filters[1].values[0]",
            ),
        ],
    )
    def test_refused(self, test: segment_pb2.PropertyCondition, reason: str, field: str) -> None:
        message = with_filter(condition("ok", Op.PROPERTY_OPERATOR_EXISTS), test)
        assert refusal(message) == (reason, field)

    def test_at_most_twenty_filters(self) -> None:
        tests = [condition(f"p{i}", Op.PROPERTY_OPERATOR_EXISTS) for i in range(21)]
        assert refusal(with_filter(*tests)) == ("DEFINITION_TOO_LARGE", "trigger.event_filters")
        assert len(parsed(with_filter(*tests[:20])).filters) == 20

    @pytest.mark.parametrize(
        "test",
        [
            condition("p", Op.PROPERTY_OPERATOR_EQUALS, True),
            condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, NOW),
            condition("p", Op.PROPERTY_OPERATOR_IN, *range(1000)),
            condition("p", Op.PROPERTY_OPERATOR_CONTAINS, ""),
            condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, "ab"),
            condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, NOW),
            condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, -1.5),
            condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 2, 2),
            condition("p", Op.PROPERTY_OPERATOR_BETWEEN, NOW, NOW + timedelta(days=1)),
            condition("p", Op.PROPERTY_OPERATOR_EXISTS),
            condition("p", Op.PROPERTY_OPERATOR_NOT_EXISTS),
            condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=1),
            condition("p", Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=36500),
            condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=7),
            condition("order id.v-2", Op.PROPERTY_OPERATOR_EXISTS),
        ],
    )
    def test_taken(self, test: segment_pb2.PropertyCondition) -> None:
        assert parsed(with_filter(test)).filters[0].name == test.name


class TestEventValue:
    def test_each_kind(self) -> None:
        assert event_value(value("shoes")) == "shoes"
        assert event_value(value(3)) == 3.0 and isinstance(event_value(value(3)), float)
        assert event_value(value(False)) is False
        assert event_value(value(["a", "b"])) == ("a", "b")
        moment = event_value(value(datetime(2027, 3, 1, 13, 0, tzinfo=BERLIN_WINTER)))
        assert moment == datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
        assert isinstance(moment, datetime) and moment.tzinfo is UTC

    def test_unset_is_none(self) -> None:
        assert event_value(profile_pb2.PropertyValue()) is None

    def test_an_empty_string_and_zero_are_values(self) -> None:
        assert event_value(value("")) == ""
        assert event_value(value(0)) == 0.0


class TestMatches:
    def test_no_filters_match_everything(self) -> None:
        assert matches([], {}, NOW)

    def test_every_filter_must_hold(self) -> None:
        filters = parsed(
            with_filter(
                condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes"),
                condition("price", Op.PROPERTY_OPERATOR_GREATER_THAN, 50),
            )
        ).filters
        assert matches(filters, {"category": "shoes", "price": 60.0}, NOW)
        assert not matches(filters, {"category": "shoes", "price": 40.0}, NOW)
        assert not matches(filters, {"category": "hats", "price": 60.0}, NOW)

    @pytest.mark.parametrize(
        ("test", "yes", "no"),
        [
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, "shoes"), "shoes", "Shoes"),
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, 3), 3.0, 3.5),
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, True), True, False),
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, NOW), NOW, NOW + timedelta(1)),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, "shoes"), "hats", "shoes"),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, 1), 2.0, 1.0),
            (condition("p", Op.PROPERTY_OPERATOR_IN, "S", "M"), "M", "L"),
            (condition("p", Op.PROPERTY_OPERATOR_IN, 1, 2), 2.0, 3.0),
            (condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "oe"), "shoes", "hats"),
            (condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, "sh"), "shoes", "ashes"),
            (condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, 10), 10.5, 10.0),
            (condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, 10), 9.5, 10.0),
            (
                condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, NOW),
                NOW + timedelta(microseconds=1),
                NOW,
            ),
            (condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, NOW), NOW - timedelta(1), NOW),
            (condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, 2), 1.0, 2.5),
            (condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, 2), 2.0, 0.5),
            (
                condition("p", Op.PROPERTY_OPERATOR_BETWEEN, NOW, NOW + timedelta(days=1)),
                NOW + timedelta(days=1),
                NOW + timedelta(days=1, seconds=1),
            ),
            (condition("p", Op.PROPERTY_OPERATOR_EXISTS), "", None),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EXISTS), None, ""),
            (
                condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=2),
                NOW - timedelta(days=2),
                NOW - timedelta(days=2, seconds=1),
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=2),
                NOW,
                NOW + timedelta(seconds=1),
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=2),
                NOW - timedelta(days=2, seconds=1),
                NOW - timedelta(days=2),
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=2),
                NOW + timedelta(days=2),
                NOW + timedelta(days=2, seconds=1),
            ),
            (
                condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=2),
                NOW,
                NOW - timedelta(seconds=1),
            ),
        ],
    )
    def test_operator(self, test: segment_pb2.PropertyCondition, yes: Any, no: Any) -> None:
        def properties(given: Any) -> dict[str, Any]:
            return {} if given is None else {"p": given}

        assert matches([one(test)], properties(yes), NOW)
        assert not matches([one(test)], properties(no), NOW)

    @pytest.mark.parametrize(
        "test",
        [
            condition("p", Op.PROPERTY_OPERATOR_EQUALS, "a"),
            condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, "a"),
            condition("p", Op.PROPERTY_OPERATOR_IN, "a"),
            condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "a"),
            condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, "a"),
            condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, 1),
            condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, 1),
            condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, 2),
            condition("p", Op.PROPERTY_OPERATOR_EXISTS),
            condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=1),
            condition("p", Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=1),
            condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=1),
        ],
    )
    def test_a_missing_property_is_false(self, test: segment_pb2.PropertyCondition) -> None:
        assert not holds(test, q="a")
        assert holds(condition("p", Op.PROPERTY_OPERATOR_NOT_EXISTS), q="a")

    @pytest.mark.parametrize(
        ("test", "other"),
        [
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, "1"), 1.0),
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, 1), True),
            (condition("p", Op.PROPERTY_OPERATOR_EQUALS, True), 1.0),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, "1"), 2.0),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, 1), "x"),
            (condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, NOW), "2027-03-01"),
            (condition("p", Op.PROPERTY_OPERATOR_IN, "1", "2"), 1.0),
            (condition("p", Op.PROPERTY_OPERATOR_IN, 1, 2), True),
            (condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "1"), 1.0),
            (condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, "1"), 10.0),
            (condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, 1), NOW),
            (condition("p", Op.PROPERTY_OPERATOR_GREATER_THAN, NOW), 1e12),
            (condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, 1), "0"),
            (condition("p", Op.PROPERTY_OPERATOR_BETWEEN, 1, 2), True),
            (condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=1), "2027-03-01"),
            (condition("p", Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=1), 0.0),
            (condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=1), ("a",)),
        ],
    )
    def test_a_value_of_another_type_is_false(
        self, test: segment_pb2.PropertyCondition, other: Any
    ) -> None:
        assert not holds(test, p=other)

    def test_a_list_property_is_only_looked_into(self) -> None:
        tags = ("sale", "new")
        assert holds(condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "sale"), p=tags)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "sal"), p=tags)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_CONTAINS, "x"), p=())
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_EQUALS, "sale"), p=tags)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_EQUALS, "sale"), p=("sale",))
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, "x"), p=tags)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_IN, "sale", "new"), p=tags)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_STARTS_WITH, "sa"), p=tags)
        assert holds(condition("p", Op.PROPERTY_OPERATOR_EXISTS), p=tags)
        assert holds(condition("p", Op.PROPERTY_OPERATOR_EXISTS), p=())
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_NOT_EXISTS), p=tags)

    def test_timestamps_compare_as_instants_across_zones(self) -> None:
        noon_utc = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
        same_in_berlin = datetime(2027, 3, 1, 13, 0, tzinfo=BERLIN_WINTER)
        same_in_tokyo = datetime(2027, 3, 1, 21, 0, tzinfo=TOKYO)
        equals = condition("p", Op.PROPERTY_OPERATOR_EQUALS, same_in_tokyo)
        assert holds(equals, p=noon_utc)
        assert holds(equals, p=same_in_berlin)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_NOT_EQUALS, noon_utc), p=same_in_tokyo)
        # 12:30 in Berlin is 11:30 UTC: before noon UTC although "12:30" > "12:00".
        assert holds(
            condition("p", Op.PROPERTY_OPERATOR_LESS_THAN, noon_utc),
            p=datetime(2027, 3, 1, 12, 30, tzinfo=BERLIN_WINTER),
        )
        assert holds(
            condition("p", Op.PROPERTY_OPERATOR_BETWEEN, same_in_berlin, same_in_tokyo),
            p=noon_utc,
        )
        assert holds(condition("p", Op.PROPERTY_OPERATOR_IN, same_in_berlin), p=same_in_tokyo)

    def test_relative_operators_count_from_now_in_any_zone(self) -> None:
        within = condition("p", Op.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=1)
        tomorrow_in_tokyo = (NOW + timedelta(hours=23)).astimezone(TOKYO)
        assert holds(within, now=NOW, p=tomorrow_in_tokyo)
        assert holds(within, now=NOW.astimezone(BERLIN_WINTER), p=tomorrow_in_tokyo)
        assert not holds(within, now=NOW - timedelta(hours=2), p=tomorrow_in_tokyo)

    def test_relative_bounds_beyond_the_calendar(self) -> None:
        early = datetime(50, 1, 1, tzinfo=UTC)
        assert holds(
            condition("p", Op.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=36500),
            now=early,
            p=datetime(1, 1, 1, tzinfo=UTC),
        )
        assert not holds(
            condition("p", Op.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=36500),
            now=early,
            p=datetime(1, 1, 1, tzinfo=UTC),
        )

    def test_int_properties_count_as_numbers(self) -> None:
        assert holds(condition("p", Op.PROPERTY_OPERATOR_EQUALS, 3), p=3)
        assert not holds(condition("p", Op.PROPERTY_OPERATOR_EQUALS, "3"), p=3)

    def test_now_must_be_aware(self) -> None:
        with pytest.raises(ValueError):
            matches([], {}, datetime(2027, 1, 1))


class TestReminderTime:
    REMINDER = DateReminder(property="travel_date", offset=timedelta(days=-1))

    def test_before_the_date(self) -> None:
        travel = datetime(2027, 6, 10, 9, 0, tzinfo=TOKYO)
        due = reminder_time(self.REMINDER, {"travel_date": travel})
        assert due == datetime(2027, 6, 9, 0, 0, tzinfo=UTC)
        assert due is not None and due.tzinfo is UTC

    def test_after_the_date(self) -> None:
        after = DateReminder(property="travel_date", offset=timedelta(hours=2))
        travel = datetime(2027, 6, 10, 9, 0, tzinfo=UTC)
        assert reminder_time(after, {"travel_date": travel}) == datetime(
            2027, 6, 10, 11, 0, tzinfo=UTC
        )

    def test_at_the_date(self) -> None:
        at = DateReminder(property="travel_date", offset=timedelta(0))
        assert reminder_time(at, {"travel_date": NOW}) == NOW

    @pytest.mark.parametrize(
        "properties",
        [
            {},
            {"other": NOW},
            {"travel_date": "2027-06-10"},
            {"travel_date": 1.0},
            {"travel_date": ("a",)},
        ],
    )
    def test_no_time_without_a_timestamp(self, properties: dict[str, Any]) -> None:
        assert reminder_time(self.REMINDER, properties) is None

    def test_a_time_outside_the_calendar_is_none(self) -> None:
        assert reminder_time(self.REMINDER, {"travel_date": datetime(1, 1, 1, tzinfo=UTC)}) is None


class TestEventNames:
    def test_the_trigger_event_alone(self) -> None:
        assert event_names(parsed(campaign_pb2.Trigger(event_name="Viewed"))) == ("Viewed",)

    def test_with_the_inaction_event_sorted(self) -> None:
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="Viewed",
                inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=600),
            )
        )
        assert event_names(trigger) == ("Charged", "Viewed")

    def test_the_same_event_once(self) -> None:
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="Viewed",
                inaction=campaign_pb2.Inaction(
                    event_name="Viewed",
                    event_filters=[condition("page", Op.PROPERTY_OPERATOR_EQUALS, "checkout")],
                    window_seconds=600,
                ),
            )
        )
        assert event_names(trigger) == ("Viewed",)


# Round trips.

_names = st.text(min_size=1, max_size=128).filter(lambda s: s.isprintable() and s.strip())
_property_names = st.from_regex(r"[A-Za-z0-9_ .\-]{1,64}", fullmatch=True)
_instants = st.datetimes(timezones=st.just(UTC))
_numbers = st.floats(allow_nan=False, allow_infinity=False)
_texts = st.text(max_size=40)
_scalars: dict[str, st.SearchStrategy[Any]] = {
    "text": _texts,
    "number": _numbers,
    "bool": st.booleans(),
    "time": _instants,
}


@st.composite
def _filters(draw: st.DrawFn) -> EventFilter:
    name = draw(_property_names)
    operator = draw(st.sampled_from(list(Operator)))
    days = 0
    values: tuple[Any, ...] = ()
    if operator in (Operator.EQUALS, Operator.NOT_EQUALS):
        values = (draw(st.one_of(*_scalars.values())),)
    elif operator is Operator.IN:
        kind = draw(st.sampled_from(sorted(_scalars)))
        values = tuple(draw(st.lists(_scalars[kind], min_size=1, max_size=5, unique=True)))
    elif operator in (Operator.CONTAINS, Operator.STARTS_WITH):
        values = (draw(_texts),)
    elif operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        values = (draw(st.one_of(_numbers, _instants)),)
    elif operator is Operator.BETWEEN:
        pair = st.tuples(_numbers, _numbers) | st.tuples(_instants, _instants)
        values = tuple(sorted(draw(pair)))
    elif operator not in (Operator.EXISTS, Operator.NOT_EXISTS):
        days = draw(st.integers(1, 36500))
    return EventFilter(name=name, operator=operator, values=values, days=days)


_filter_lists = st.lists(_filters(), max_size=4).map(tuple)
_waits = st.one_of(
    st.none(),
    st.builds(
        Inaction,
        event_name=_names,
        filters=_filter_lists,
        window=st.integers(60, 2592000).map(lambda s: timedelta(seconds=s)),
        keep_first_wait=st.booleans(),
    ),
    st.builds(
        DateReminder,
        property=_property_names,
        offset=st.integers(-366 * 86400, 366 * 86400).map(lambda s: timedelta(seconds=s)),
    ),
)


@st.composite
def _triggers(draw: st.DrawFn) -> Trigger:
    start = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    )
    end = draw(st.none() | st.integers(1, 10**9).map(lambda s: start + timedelta(seconds=s)))
    return Trigger(
        event_name=draw(_names),
        filters=draw(_filter_lists),
        wait=draw(_waits),
        person_cooldown=timedelta(seconds=draw(st.integers(0, 2592000))),
        start_time=start,
        end_time=end,
    )


def _cancels_itself(trigger: Trigger) -> bool:
    """Refused by trigger_from_proto: every triggering event meets the inaction."""

    def key(test: EventFilter) -> tuple[Any, ...]:
        values = frozenset(test.values) if test.operator is Operator.IN else test.values
        return (test.name, test.operator, values, test.days)

    wait = trigger.wait
    return (
        isinstance(wait, Inaction)
        and wait.event_name == trigger.event_name
        and {key(f) for f in wait.filters} <= {key(f) for f in trigger.filters}
    )


class TestRoundTrips:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(_triggers())
    def test_json(self, trigger: Trigger) -> None:
        text = trigger_to_json(trigger)
        assert trigger_from_json(text) == trigger
        assert trigger_to_json(trigger_from_json(text)) == text

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(_triggers())
    def test_proto(self, trigger: Trigger) -> None:
        assume(not _cancels_itself(trigger))
        message = trigger_to_proto(trigger)
        assert trigger_from_proto(message, trigger.start_time) == trigger

    def test_json_is_compact_and_stable(self) -> None:
        trigger = parsed(
            campaign_pb2.Trigger(
                event_name="Added To Cart",
                event_filters=[
                    condition("category", Op.PROPERTY_OPERATOR_EQUALS, "shoes"),
                    condition("at", Op.PROPERTY_OPERATOR_GREATER_THAN, NOW),
                ],
                inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=600),
            )
        )
        assert trigger_to_json(trigger) == (
            '{"event":"Added To Cart","filters":['
            '{"name":"category","op":"equals","values":["shoes"],"days":0},'
            '{"name":"at","op":"greater_than","values":[{"t":"2027-03-01T12:00:00Z"}],"days":0}],'
            '"wait":{"inaction":{"event":"Charged","filters":[],"window":600,'
            '"keep_first":false}},"cooldown":0,"start":"2027-03-01T12:00:00Z","end":null}'
        )

    def test_a_reminder_through_json_and_proto(self) -> None:
        message = campaign_pb2.Trigger(
            event_name="Booked",
            date_reminder=campaign_pb2.DateReminder(property="travel_date", offset_seconds=-60),
            person_cooldown_seconds=30,
            start_time=ts(NOW),
            end_time=ts(NOW + timedelta(days=1)),
        )
        trigger = parsed(message)
        assert trigger_to_proto(trigger) == message
        assert trigger_from_json(trigger_to_json(trigger)) == trigger
