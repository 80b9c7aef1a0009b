"""A list of flat messages is checked a field at a time first; a bad item is then found
one by one, so the error names the same item, field and reason as an item-by-item check."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2
from clarion.segment.v1 import profile_pb2
from clarion.segment.v1 import segment_service_pb2 as segment_pb2
from services.kit.validation import InvalidField, check_request


def _outcomes(count: int) -> list[reporting_pb2.DeliveryOutcome]:
    return [
        reporting_pb2.DeliveryOutcome(
            run_id="run_1",
            campaign_id="cmp_1",
            subscriber_id=f"sub_{n}",
            status=common_pb2.DELIVERY_STATUS_SENT,
            browser=common_pb2.BROWSER_CHROME,
            occur_time=Timestamp(seconds=1_700_000_000 + n),
            variant="a" if n % 2 else "",
            profile_id=f"prf {n}" if n % 3 else "",
        )
        for n in range(count)
    ]


BAD = [
    ("subscriber_id", "sub\n2", "INVALID_FIELD"),
    ("subscriber_id", "sub 2", "INVALID_FIELD"),
    ("run_id", "r" * 129, "INVALID_FIELD"),
    ("campaign_id", "cmp\x00", "INVALID_FIELD"),
    ("variant", "a" * 17, "INVALID_FIELD"),
    ("profile_id", "two\tparts", "INVALID_FIELD"),
    ("profile_id", "two\nlines", "INVALID_FIELD"),
    ("status", 99, "INVALID_STATUS"),
    ("reason", 999, "INVALID_REASON"),
]


class TestListsOfFlatMessages:
    def test_a_valid_list_passes(self) -> None:
        check_request(ris.RecordDeliveryOutcomesRequest(outcomes=_outcomes(500)))

    @pytest.mark.parametrize(("name", "value", "reason"), BAD)
    @pytest.mark.parametrize("index", [0, 137, 499])
    def test_the_first_bad_item_and_field_are_named(
        self, name: str, value: object, reason: str, index: int
    ) -> None:
        outcomes = _outcomes(501)
        setattr(outcomes[index], name, value)
        # A later bad item too: the first one is named.
        outcomes[500].subscriber_id = "also bad"
        with pytest.raises(InvalidField) as raised:
            check_request(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
        assert raised.value.reason == reason
        assert raised.value.metadata["field"] == f"outcomes[{index}].{name}"

    def test_a_time_out_of_range_is_named(self) -> None:
        outcomes = _outcomes(50)
        outcomes[7].occur_time.seconds = 253_402_300_800
        with pytest.raises(InvalidField) as raised:
            check_request(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
        assert raised.value.metadata["field"] == "outcomes[7].occur_time"


def _imported(count: int) -> list[segment_pb2.ImportedSubscriber]:
    return [
        segment_pb2.ImportedSubscriber(
            row=n + 1,
            subscriber=segment_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=f"https://fcm.googleapis.com/fcm/send/{n}",
                    p256dh=b"\x04" + bytes(64),
                    auth=bytes(16),
                ),
                browser=common_pb2.BROWSER_CHROME,
                timezone="Europe/Berlin" if n % 2 else "",
                profile_id=f"user {n}" if n % 3 else "",
            ),
        )
        for n in range(count)
    ]


SUBSCRIPTION = "subscriber.push_subscription"
BAD_NESTED = [
    (f"{SUBSCRIPTION}.endpoint", "https://x.example/" + "a" * 2048, "INVALID_ENDPOINT"),
    (f"{SUBSCRIPTION}.endpoint", "https://x.example/\x00", "INVALID_ENDPOINT"),
    (f"{SUBSCRIPTION}.p256dh", b"\x04" * 66, "INVALID_P256DH"),
    (f"{SUBSCRIPTION}.auth", bytes(17), "INVALID_AUTH"),
    ("subscriber.timezone", "Europe/\nBerlin", "INVALID_TIMEZONE"),
    ("subscriber.profile_id", "p" * 129, "INVALID_PROFILE_ID"),
    ("subscriber.vapid_key_id", "vk 1", "INVALID_VAPID_KEY_ID"),
    ("subscriber.browser", 99, "INVALID_BROWSER"),
    ("subscriber.apns_device.device_token", "not hex", "INVALID_FIELD"),
]


class TestListsOfNestedMessages:
    """ImportSubscribers: each row holds a subscriber holding a push subscription."""

    def test_a_valid_list_passes(self) -> None:
        check_request(segment_pb2.ImportSubscribersRequest(subscribers=_imported(1000)))

    @pytest.mark.parametrize(("path", "value", "reason"), BAD_NESTED)
    @pytest.mark.parametrize("index", [0, 411, 999])
    def test_the_first_bad_item_and_nested_field_are_named(
        self, path: str, value: object, reason: str, index: int
    ) -> None:
        rows = _imported(1000)
        *parents, name = path.split(".")
        holder = rows[index]
        for parent in parents:
            holder = getattr(holder, parent)
        setattr(holder, name, value)
        if index < 999:  # a later bad item too: the first one is named
            rows[999].subscriber.vapid_key_id = "also bad"
        with pytest.raises(InvalidField) as raised:
            check_request(segment_pb2.ImportSubscribersRequest(subscribers=rows))
        assert raised.value.reason == reason
        assert raised.value.metadata["field"] == f"subscribers[{index}].{path}"

    def test_an_unset_subscriber_or_time_passes_and_a_bad_time_is_named(self) -> None:
        rows = _imported(20)
        rows[3].ClearField("subscriber")
        check_request(segment_pb2.ImportSubscribersRequest(subscribers=rows))
        rows[12].create_time.seconds = -62_135_596_801
        with pytest.raises(InvalidField) as raised:
            check_request(segment_pb2.ImportSubscribersRequest(subscribers=rows))
        assert raised.value.metadata["field"] == "subscribers[12].create_time"


def _events(count: int) -> list[profile_pb2.Event]:
    def value(n: int) -> profile_pb2.PropertyValue:
        if n % 4 == 0:
            return profile_pb2.PropertyValue(string_value=f"shoes {n}")
        if n % 4 == 1:
            return profile_pb2.PropertyValue(number_value=n / 3)
        if n % 4 == 2:
            return profile_pb2.PropertyValue(timestamp_value=Timestamp(seconds=1_700_000_000))
        return profile_pb2.PropertyValue(
            string_list_value=profile_pb2.StringList(values=["a", "b"][: n % 3])
        )

    return [
        profile_pb2.Event(
            event_id=f"evt-{n}",
            name="Product Viewed",
            profile_id=f"user {n}",
            occur_time=Timestamp(seconds=1_700_000_000 + n),
            properties=[
                profile_pb2.Property(name=f"p{k}", value=value(n + k)) for k in range(n % 4)
            ],
        )
        for n in range(count)
    ]


def _set(event: profile_pb2.Event, path: str, value: object) -> None:
    """Sets `path` ("properties.value.number_value": the event's first property) on it."""
    *parents, name = path.split(".")
    holder: Any = event
    for parent in parents:
        holder = getattr(holder, parent)
        if parent == "properties":
            holder = holder[0] if len(holder) else holder.add(name="p0")
    if name == "values":
        holder.values[:] = value
    else:
        setattr(holder, name, value)


BAD_IN_LISTS = [
    ("event_id", "evt 1"),
    ("properties.name", "two\nlines"),
    ("properties.name", "n" * 65),
    ("properties.value.string_value", "s" * 1025),
    ("properties.value.number_value", float("nan")),
    ("properties.value.timestamp_value.seconds", 253_402_300_800),
    ("properties.value.string_list_value.values", ["ok", "x" * 1025]),
    ("properties.value.string_list_value.values", ["v"] * 101),
]


class TestListsWithListsInside:
    """TrackEvents: each event holds a list of properties, a property's value may hold a
    list of strings. The item-by-item check of the same event alone is the reference."""

    def test_a_valid_list_passes(self) -> None:
        check_request(segment_pb2.TrackEventsRequest(events=_events(2000)))

    @pytest.mark.parametrize(("path", "value"), BAD_IN_LISTS)
    @pytest.mark.parametrize("index", [0, 1, 1337, 1999])
    def test_the_error_is_the_one_the_item_alone_gets(
        self, path: str, value: object, index: int
    ) -> None:
        events = _events(2000)
        _set(events[index], path, value)
        with pytest.raises(InvalidField) as alone:
            check_request(segment_pb2.TrackEventsRequest(events=[events[index]]))
        if index < 1999:  # a later bad item too: the first one is named
            events[1999].properties.add(name="bad\tname")
        with pytest.raises(InvalidField) as raised:
            check_request(segment_pb2.TrackEventsRequest(events=events))
        expected = alone.value.metadata["field"].replace("events[0]", f"events[{index}]", 1)
        assert raised.value.metadata["field"] == expected
        assert raised.value.reason == alone.value.reason
        assert raised.value.message == alone.value.message.replace(
            "events[0]", f"events[{index}]", 1
        )

    def test_too_many_properties_on_one_event_is_named(self) -> None:
        events = _events(300)
        events[250].properties.extend(
            profile_pb2.Property(name=f"x{k}", value=profile_pb2.PropertyValue(bool_value=True))
            for k in range(101)
        )
        with pytest.raises(InvalidField) as raised:
            check_request(segment_pb2.TrackEventsRequest(events=events))
        assert raised.value.metadata["field"] == "events[250].properties"
