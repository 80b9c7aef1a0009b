"""Definitions between proto and domain (services.segment.wire) and the type check
against a site's stored property types (services.segment.segments.check_types)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clarion.segment.v1 import segment_pb2 as seg
from services.kit.errors import InvalidArgument
from services.segment.definition import (
    Behaviour,
    PropertyOperator,
    PropertyTest,
    Window,
    from_json,
    to_json,
)
from services.segment.models import PropertyType
from services.segment.segments import check_types, type_keys
from services.segment.wire import (
    audience_from_proto,
    condition_from_proto,
    condition_to_proto,
    definition_from_proto,
)
from tests.segment.test_segments import prop, rich_definition

PATH = "definition.condition"


class TestRoundTrip:
    def test_every_leaf_kind_comes_back_equal(self) -> None:
        sent = rich_definition()
        condition = condition_from_proto(sent, PATH)
        assert condition_to_proto(condition) == sent
        assert from_json(to_json(condition)) == condition

    def test_values_become_python_values(self) -> None:
        moment = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
        test = condition_from_proto(prop("x", "IN", 3, 4.5), PATH)
        assert test == PropertyTest("x", PropertyOperator.IN, PropertyType.NUMBER, (3.0, 4.5))
        test = condition_from_proto(prop("x", "GREATER_THAN", moment), PATH)
        assert isinstance(test, PropertyTest) and test.values == (moment,)
        assert test.type is PropertyType.TIMESTAMP
        test = condition_from_proto(prop("x", "EXISTS"), PATH)
        assert isinstance(test, PropertyTest) and test.type is None

    @pytest.mark.parametrize(
        ("window", "stored", "shown"),
        [
            (seg.TimeWindow(last_days=3), Window(last_hours=72), seg.TimeWindow(last_days=3)),
            (seg.TimeWindow(last_hours=48), Window(last_hours=48), seg.TimeWindow(last_days=2)),
            (seg.TimeWindow(last_hours=5), Window(last_hours=5), seg.TimeWindow(last_hours=5)),
            (seg.TimeWindow(ever=True), Window(), None),
            (None, Window(), None),
        ],
    )
    def test_windows(
        self, window: seg.TimeWindow | None, stored: Window, shown: seg.TimeWindow | None
    ) -> None:
        message = seg.Condition(behaviour=seg.BehaviourCondition(event_name="Open"))
        if window is not None:
            message.behaviour.window.CopyFrom(window)
        behaviour = condition_from_proto(message, PATH)
        assert isinstance(behaviour, Behaviour) and behaviour.window == stored
        back = condition_to_proto(behaviour).behaviour
        assert (back.window if back.HasField("window") else None) == shown


class TestAudience:
    def test_kinds(self) -> None:
        assert audience_from_proto(seg.AudienceSelector(), "audience") is None
        assert audience_from_proto(seg.AudienceSelector(segment_id="seg_1"), "audience") == "seg_1"
        selector = seg.AudienceSelector(
            definition=seg.SegmentDefinition(condition=prop("plan", "EXISTS"))
        )
        assert isinstance(audience_from_proto(selector, "audience"), PropertyTest)

    def test_a_definition_is_checked(self) -> None:
        selector = seg.AudienceSelector(
            definition=seg.SegmentDefinition(condition=prop("n", "BETWEEN", 2, 1))
        )
        with pytest.raises(InvalidArgument) as raised:
            audience_from_proto(selector, "audience")
        assert raised.value.reason == "NEVER_MATCHES"
        assert raised.value.metadata["field"] == "audience.definition.condition.property.values"
        empty = seg.AudienceSelector(segment_id="")
        with pytest.raises(InvalidArgument) as raised:
            audience_from_proto(empty, "audience")
        assert raised.value.reason == "MISSING_SEGMENT_ID"
        with pytest.raises(InvalidArgument) as raised:
            definition_from_proto(seg.SegmentDefinition(), "audience.definition")
        assert raised.value.reason == "MISSING_DEFINITION"


PROFILE_TYPES = {"age": "number", "tags": "string_list", "name": "string", "seen": "timestamp"}
EVENT_TYPES = {("event:Buy", "amount"): "number", ("event:Buy", "sku"): "string"}


class TestCheckTypes:
    def check(self, condition: seg.Condition) -> None:
        check_types(condition_from_proto(condition, PATH), PROFILE_TYPES, EVENT_TYPES, PATH)

    @pytest.mark.parametrize(
        "condition",
        [
            prop("age", "BETWEEN", 1, 2),
            prop("tags", "CONTAINS", "x"),
            prop("name", "CONTAINS", "x"),
            prop("name", "IN", "a", "b"),
            prop("seen", "WITHIN_LAST_DAYS", days=2),
            prop("tags", "EXISTS"),
            prop("never_stored", "EQUALS", 1),
        ],
    )
    def test_fitting_conditions(self, condition: seg.Condition) -> None:
        self.check(condition)

    @pytest.mark.parametrize(
        ("condition", "field"),
        [
            (prop("age", "EQUALS", "1"), f"{PATH}.property.values"),
            (prop("tags", "IN", "a"), f"{PATH}.property.operator"),
            (prop("age", "CONTAINS", "1"), f"{PATH}.property.operator"),
            (prop("tags", "STARTS_WITH", "a"), f"{PATH}.property.operator"),
            (prop("name", "MORE_THAN_DAYS_AGO", days=1), f"{PATH}.property.operator"),
            (
                seg.Condition(
                    negate=seg.Negation(
                        condition=seg.Condition(
                            behaviour=seg.BehaviourCondition(
                                event_name="Buy",
                                event_filters=[prop("amount", "EQUALS", "1").property],
                            )
                        )
                    )
                ),
                f"{PATH}.negate.condition.behaviour.event_filters[0].values",
            ),
        ],
    )
    def test_mismatches(self, condition: seg.Condition, field: str) -> None:
        with pytest.raises(InvalidArgument) as raised:
            self.check(condition)
        assert raised.value.reason == "PROPERTY_TYPE_MISMATCH"
        assert raised.value.metadata["field"] == field

    def test_type_keys(self) -> None:
        condition = condition_from_proto(rich_definition(), PATH)
        keys = type_keys(condition)
        assert ("profile", "age") in keys
        assert ("event:Purchase", "category") in keys and ("event:Purchase", "amount") in keys
        assert ("event:Visit", "seconds") in keys
