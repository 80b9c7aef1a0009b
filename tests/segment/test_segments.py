"""CreateSegment, GetSegment, UpdateSegment, DeleteSegment, ListSegments through the real
server: saved definitions, their validation (reason and field path), paging, site scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import profile_pb2
from clarion.segment.v1 import segment_pb2 as seg
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from tests.segment.helpers import Site, error_field, expect_error
from tests.segment.test_profiles import set_, update, upsert

Stub = pb_grpc.SegmentServiceStub
ROOT = "segment.definition.condition"


def stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def value(v: Any) -> profile_pb2.PropertyValue:
    if isinstance(v, bool):
        return profile_pb2.PropertyValue(bool_value=v)
    if isinstance(v, int | float):
        return profile_pb2.PropertyValue(number_value=v)
    if isinstance(v, datetime):
        return profile_pb2.PropertyValue(timestamp_value=stamp(v))
    if isinstance(v, list):
        return profile_pb2.PropertyValue(string_list_value=profile_pb2.StringList(values=v))
    return profile_pb2.PropertyValue(string_value=v)


def prop(name: str, operator: str, *values: Any, days: int = 0) -> seg.Condition:
    return seg.Condition(
        property=seg.PropertyCondition(
            name=name,
            operator=seg.PropertyOperator.Value(f"PROPERTY_OPERATOR_{operator}"),
            values=[value(v) for v in values],
            days=days,
        )
    )


def all_of(*conditions: seg.Condition) -> seg.Condition:
    return seg.Condition(all=seg.ConditionGroup(conditions=conditions))


def any_of(*conditions: seg.Condition) -> seg.Condition:
    return seg.Condition(any=seg.ConditionGroup(conditions=conditions))


def negate(condition: seg.Condition) -> seg.Condition:
    return seg.Condition(negate=seg.Negation(condition=condition))


def segment(condition: seg.Condition | None = None, **fields: Any) -> seg.Segment:
    values: dict[str, Any] = {"display_name": "Buyers"}
    values.update(fields)
    out = seg.Segment(**values)
    if condition is not None:
        out.definition.condition.CopyFrom(condition)
    return out


async def create(stub: Stub, site: Site, message: seg.Segment) -> seg.Segment:
    response = await stub.CreateSegment(
        pb.CreateSegmentRequest(segment=message), metadata=site.metadata
    )
    return response.segment


async def get(stub: Stub, site: Site, segment_id: str) -> seg.Segment:
    response = await stub.GetSegment(
        pb.GetSegmentRequest(segment_id=segment_id), metadata=site.metadata
    )
    return response.segment


async def refused(
    stub: Stub, site: Site, condition: seg.Condition, reason: str, field: str
) -> None:
    error = await expect_error(
        stub.CreateSegment(
            pb.CreateSegmentRequest(segment=segment(condition)), metadata=site.metadata
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert error_field(error) == field, error.details()


def rich_definition() -> seg.Condition:
    """Every kind of leaf, group, negation and window."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 2, 1, 12, 30, tzinfo=UTC)
    return all_of(
        prop("plan", "EQUALS", "pro"),
        prop("plan", "NOT_EQUALS", "free"),
        prop("age", "IN", 18, 21.5, 30),
        prop("bio", "CONTAINS", "rust"),
        prop("tags", "CONTAINS", "vip"),
        prop("email", "STARTS_WITH", "ann"),
        prop("score", "GREATER_THAN", 10),
        prop("score", "LESS_THAN", 99.5),
        prop("signup", "BETWEEN", start, end),
        prop("verified", "EQUALS", True),
        prop("phone", "EXISTS"),
        prop("fax", "NOT_EXISTS"),
        prop("last_seen", "WITHIN_LAST_DAYS", days=7),
        prop("signup", "MORE_THAN_DAYS_AGO", days=30),
        prop("renewal", "WITHIN_NEXT_DAYS", days=14),
        any_of(
            seg.Condition(
                behaviour=seg.BehaviourCondition(
                    event_name="Purchase",
                    count=seg.CountComparison(
                        comparison=seg.COMPARISON_BETWEEN, value=2, upper=5
                    ),
                    window=seg.TimeWindow(last_days=30),
                    event_filters=[prop("category", "EQUALS", "shoes").property],
                    aggregate=seg.AggregateCondition(
                        function=seg.AGGREGATE_FUNCTION_SUM,
                        property="amount",
                        comparison=seg.COMPARISON_AT_LEAST,
                        value=100.5,
                    ),
                )
            ),
            seg.Condition(
                behaviour=seg.BehaviourCondition(
                    event_name="Login",
                    did_not=True,
                    window=seg.TimeWindow(
                        between=seg.TimeRange(start=stamp(start), end=stamp(end))
                    ),
                )
            ),
            seg.Condition(
                behaviour=seg.BehaviourCondition(
                    event_name="Visit", window=seg.TimeWindow(last_hours=36)
                )
            ),
            seg.Condition(
                behaviour=seg.BehaviourCondition(
                    event_name="Visit",
                    count=seg.CountComparison(comparison=seg.COMPARISON_AT_MOST, value=3),
                    aggregate=seg.AggregateCondition(
                        function=seg.AGGREGATE_FUNCTION_AVERAGE,
                        property="seconds",
                        comparison=seg.COMPARISON_BETWEEN,
                        value=1,
                        upper=2.5,
                    ),
                )
            ),
        ),
        negate(seg.Condition(test_profile=True)),
        seg.Condition(
            subscriber=seg.SubscriberCondition(
                browsers=[common_pb2.BROWSER_CHROME, common_pb2.BROWSER_FIREFOX],
                timezones=["Europe/Berlin", "America/New_York"],
                subscribed_before=stamp(end),
                subscribed_after=stamp(start),
                reachable=True,
            )
        ),
    )


class TestCreateSegment:
    async def test_a_rich_definition_comes_back_as_sent(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        sent = segment(
            rich_definition(),
            display_name="  Big spenders  ",
            description="People who buy a lot.\nSecond line.",
            labels={"team": "growth", "tier-1": ""},
        )
        created = await create(stub, site, sent)
        assert created.segment_id.startswith("seg_") and len(created.segment_id) == 36
        assert created.display_name == "Big spenders"
        assert created.description == sent.description
        assert dict(created.labels) == {"team": "growth", "tier-1": ""}
        assert created.definition == sent.definition
        assert created.create_time == created.update_time == stamp(clock.now())
        assert await get(stub, site, created.segment_id) == created

    async def test_output_fields_sent_are_ignored(self, stub: Stub, site: Site) -> None:
        created = await create(
            stub,
            site,
            segment(
                prop("plan", "EXISTS"),
                segment_id="seg_0123456789abcdef0123456789abcdef",
                create_time=stamp(datetime(2000, 1, 1, tzinfo=UTC)),
            ),
        )
        assert created.segment_id != "seg_0123456789abcdef0123456789abcdef"
        assert created.create_time.seconds > stamp(datetime(2000, 1, 1, tzinfo=UTC)).seconds

    async def test_ever_comes_back_as_no_window(self, stub: Stub, site: Site) -> None:
        sent = seg.Condition(
            behaviour=seg.BehaviourCondition(event_name="Open", window=seg.TimeWindow(ever=True))
        )
        created = await create(stub, site, segment(sent))
        behaviour = created.definition.condition.behaviour
        assert behaviour.event_name == "Open" and not behaviour.HasField("window")

    @pytest.mark.parametrize(
        ("fields", "reason", "field"),
        [
            ({"display_name": ""}, "MISSING_DISPLAY_NAME", "segment.display_name"),
            ({"display_name": "   "}, "MISSING_DISPLAY_NAME", "segment.display_name"),
            ({"display_name": "x" * 201}, "INVALID_FIELD", "segment.display_name"),
            ({"display_name": "two\nlines"}, "INVALID_FIELD", "segment.display_name"),
            ({"description": "x" * 2001}, "INVALID_FIELD", "segment.description"),
            ({"labels": {"Team": "a"}}, "INVALID_LABEL", "segment.labels"),
            ({"labels": {"1team": "a"}}, "INVALID_LABEL", "segment.labels"),
            ({"labels": {"k" * 65: "a"}}, "INVALID_LABEL", "segment.labels"),
            ({"labels": {"team": "v" * 65}}, "INVALID_LABEL", "segment.labels[team]"),
            ({"labels": {f"k{i}": "" for i in range(21)}}, "INVALID_LABEL", "segment.labels"),
        ],
    )
    async def test_bad_fields_are_refused(
        self, stub: Stub, site: Site, fields: dict[str, Any], reason: str, field: str
    ) -> None:
        error = await expect_error(
            stub.CreateSegment(
                pb.CreateSegmentRequest(segment=segment(prop("plan", "EXISTS"), **fields)),
                metadata=site.metadata,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
        )
        assert error_field(error) == field

    async def test_a_definition_is_required(self, stub: Stub, site: Site) -> None:
        error = await expect_error(
            stub.CreateSegment(pb.CreateSegmentRequest(segment=segment()), metadata=site.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_DEFINITION",
        )
        assert error_field(error) == "segment.definition"
        message = segment()
        message.definition.SetInParent()
        error = await expect_error(
            stub.CreateSegment(pb.CreateSegmentRequest(segment=message), metadata=site.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_DEFINITION",
        )
        assert error_field(error) == ROOT


class TestDefinitionValidation:
    async def test_unset_condition(self, stub: Stub, site: Site) -> None:
        await refused(
            stub,
            site,
            all_of(prop("plan", "EXISTS"), seg.Condition()),
            "MISSING_CONDITION",
            f"{ROOT}.all.conditions[1]",
        )
        await refused(
            stub, site, negate(seg.Condition()), "MISSING_CONDITION", f"{ROOT}.negate.condition"
        )

    async def test_unspecified_and_unknown_operators(self, stub: Stub, site: Site) -> None:
        unspecified = seg.Condition(property=seg.PropertyCondition(name="plan"))
        await refused(
            stub,
            site,
            all_of(prop("plan", "EXISTS"), unspecified),
            "UNKNOWN_OPERATOR",
            f"{ROOT}.all.conditions[1].property.operator",
        )
        unknown = seg.Condition(property=seg.PropertyCondition(name="plan", operator=99))
        await refused(stub, site, unknown, "UNKNOWN_OPERATOR", f"{ROOT}.property.operator")
        no_comparison = seg.Condition(
            behaviour=seg.BehaviourCondition(event_name="Buy", count=seg.CountComparison(value=1))
        )
        await refused(
            stub, site, no_comparison, "UNKNOWN_OPERATOR", f"{ROOT}.behaviour.count.comparison"
        )
        no_function = seg.Condition(
            behaviour=seg.BehaviourCondition(
                event_name="Buy",
                aggregate=seg.AggregateCondition(
                    property="amount", comparison=seg.COMPARISON_AT_LEAST
                ),
            )
        )
        await refused(
            stub, site, no_function, "UNKNOWN_OPERATOR", f"{ROOT}.behaviour.aggregate.function"
        )

    async def test_between_reversed_never_matches(self, stub: Stub, site: Site) -> None:
        await refused(
            stub,
            site,
            any_of(prop("plan", "EXISTS"), prop("score", "BETWEEN", 10, 5)),
            "NEVER_MATCHES",
            f"{ROOT}.any.conditions[1].property.values",
        )

    async def test_nine_levels_are_too_deep(self, stub: Stub, site: Site) -> None:
        condition = prop("plan", "EXISTS")
        for _ in range(7):
            condition = negate(condition)
        created = await create(stub, site, segment(condition))  # 8 levels: 7 and the leaf
        assert created.segment_id
        deeper = negate(condition)
        await refused(
            stub,
            site,
            deeper,
            "DEFINITION_TOO_DEEP",
            ROOT + ".negate.condition" * 8,
        )

    async def test_over_200_conditions_are_too_many(self, stub: Stub, site: Site) -> None:
        leaves = [prop("plan", "EQUALS", f"p{i}") for i in range(201)]
        await refused(
            stub, site, any_of(*leaves), "DEFINITION_TOO_LARGE", f"{ROOT}.any.conditions"
        )
        # 200 nodes spread over groups (the root, two groups, 99 + 98 leaves) are kept;
        # one more is refused where it stands.
        spread = any_of(any_of(*leaves[:99]), any_of(*leaves[99:197]))
        created = await create(stub, site, segment(spread))
        assert created.segment_id
        spread = any_of(any_of(*leaves[:99]), any_of(*leaves[99:197]), leaves[197])
        await refused(
            stub, site, spread, "DEFINITION_TOO_LARGE", f"{ROOT}.any.conditions[2]"
        )

    async def test_type_mismatch_with_a_stored_profile_property(
        self, stub: Stub, site: Site
    ) -> None:
        await upsert(
            stub,
            site,
            update("user-1", set_("age", 42), set_("tags", ["a"]), set_("name", "Ann")),
        )
        await refused(
            stub,
            site,
            all_of(prop("plan", "EXISTS"), prop("age", "EQUALS", "42")),
            "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.all.conditions[1].property.values",
        )
        await refused(
            stub, site, prop("tags", "EQUALS", "a"), "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.property.operator",
        )
        await refused(
            stub, site, prop("name", "WITHIN_LAST_DAYS", days=3), "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.property.operator",
        )
        # What fits the stored types is kept; a name the site never stored takes any type.
        fits = all_of(
            prop("age", "GREATER_THAN", 18),
            prop("tags", "CONTAINS", "a"),
            prop("name", "STARTS_WITH", "A"),
            prop("unknown", "EQUALS", True),
        )
        assert (await create(stub, site, segment(fits))).segment_id

    async def test_type_mismatch_with_a_stored_event_property(
        self, stub: Stub, site: Site
    ) -> None:
        event = profile_pb2.Event(
            event_id="e1",
            name="Purchase",
            profile_id="user-1",
            occur_time=stamp(datetime(2025, 12, 1, tzinfo=UTC)),
            properties=[
                profile_pb2.Property(name="sku", value=value("A-1")),
                profile_pb2.Property(name="amount", value=value(10)),
            ],
        )
        await stub.TrackEvents(pb.TrackEventsRequest(events=[event]), metadata=site.metadata)
        filtered = seg.Condition(
            behaviour=seg.BehaviourCondition(
                event_name="Purchase", event_filters=[prop("sku", "EQUALS", 5).property]
            )
        )
        await refused(
            stub, site, filtered, "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.behaviour.event_filters[0].values",
        )
        aggregated = seg.Condition(
            behaviour=seg.BehaviourCondition(
                event_name="Purchase",
                aggregate=seg.AggregateCondition(
                    function=seg.AGGREGATE_FUNCTION_SUM,
                    property="sku",
                    comparison=seg.COMPARISON_AT_LEAST,
                    value=1,
                ),
            )
        )
        await refused(
            stub, site, aggregated, "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.behaviour.aggregate.property",
        )
        # Another event's property of the same name is another scope.
        other = seg.Condition(
            behaviour=seg.BehaviourCondition(
                event_name="Refund", event_filters=[prop("sku", "EQUALS", 5).property]
            )
        )
        assert (await create(stub, site, segment(other))).segment_id

    async def test_a_list_is_never_a_value(self, stub: Stub, site: Site) -> None:
        await refused(
            stub,
            site,
            prop("tags", "EQUALS", ["a", "b"]),
            "INVALID_VALUES",
            f"{ROOT}.property.values[0]",
        )

    async def test_values_of_one_condition_share_a_type(self, stub: Stub, site: Site) -> None:
        await refused(
            stub,
            site,
            prop("age", "IN", 1, "two"),
            "PROPERTY_TYPE_MISMATCH",
            f"{ROOT}.property.values[1]",
        )

    async def test_a_value_without_a_kind(self, stub: Stub, site: Site) -> None:
        condition = prop("age", "IN", 1)
        condition.property.values.add()
        await refused(stub, site, condition, "MISSING_VALUE", f"{ROOT}.property.values[1]")

    @pytest.mark.parametrize(
        ("condition", "reason", "field"),
        [
            (seg.Condition(test_profile=False), "INVALID_CONDITION", f"{ROOT}.test_profile"),
            (
                seg.Condition(
                    behaviour=seg.BehaviourCondition(
                        event_name="Open", window=seg.TimeWindow(ever=False)
                    )
                ),
                "INVALID_WINDOW",
                f"{ROOT}.behaviour.window.ever",
            ),
            (
                seg.Condition(
                    behaviour=seg.BehaviourCondition(
                        event_name="Open",
                        window=seg.TimeWindow(between=seg.TimeRange(start=stamp(datetime(2026, 1, 1, tzinfo=UTC)))),
                    )
                ),
                "INVALID_WINDOW",
                f"{ROOT}.behaviour.window.between.end",
            ),
            (
                seg.Condition(subscriber=seg.SubscriberCondition(reachable=False)),
                "EMPTY_CONDITION",
                f"{ROOT}.subscriber",
            ),
            (
                seg.Condition(
                    subscriber=seg.SubscriberCondition(browsers=[common_pb2.BROWSER_UNSPECIFIED])
                ),
                "INVALID_BROWSER",
                f"{ROOT}.subscriber.browsers[0]",
            ),
            (
                seg.Condition(subscriber=seg.SubscriberCondition(timezones=["Mars/Olympus"])),
                "INVALID_TIMEZONE",
                f"{ROOT}.subscriber.timezones[0]",
            ),
            (all_of(), "EMPTY_GROUP", f"{ROOT}.all"),
            (prop("", "EXISTS"), "MISSING_PROPERTY_NAME", f"{ROOT}.property.name"),
            (prop("a/b", "EXISTS"), "INVALID_PROPERTY_NAME", f"{ROOT}.property.name"),
            (prop("plan", "EQUALS", "a", days=3), "INVALID_DAYS", f"{ROOT}.property.days"),
            (prop("seen", "WITHIN_LAST_DAYS"), "INVALID_DAYS", f"{ROOT}.property.days"),
            (prop("plan", "EQUALS"), "INVALID_VALUES", f"{ROOT}.property.values"),
            (
                seg.Condition(
                    behaviour=seg.BehaviourCondition(
                        event_name="Open", window=seg.TimeWindow(last_days=0)
                    )
                ),
                "INVALID_WINDOW",
                f"{ROOT}.behaviour.window",
            ),
            (
                seg.Condition(
                    behaviour=seg.BehaviourCondition(
                        event_name="Open",
                        did_not=True,
                        count=seg.CountComparison(comparison=seg.COMPARISON_AT_LEAST, value=1),
                    )
                ),
                "INVALID_BEHAVIOUR",
                f"{ROOT}.behaviour.did_not",
            ),
            (
                seg.Condition(behaviour=seg.BehaviourCondition()),
                "MISSING_EVENT_NAME",
                f"{ROOT}.behaviour.event_name",
            ),
        ],
    )
    async def test_malformed_conditions(
        self, stub: Stub, site: Site, condition: seg.Condition, reason: str, field: str
    ) -> None:
        await refused(stub, site, condition, reason, field)


class TestGetSegment:
    async def test_another_sites_segment_is_not_found(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        await expect_error(
            get(stub, other_site, created.segment_id),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )

    async def test_missing_and_unknown_ids(self, stub: Stub, site: Site) -> None:
        await expect_error(
            get(stub, site, ""), grpc.StatusCode.INVALID_ARGUMENT, "MISSING_SEGMENT_ID"
        )
        for segment_id in ("seg_" + "0" * 32, "nonsense", "sub_" + "0" * 32):
            await expect_error(
                get(stub, site, segment_id), grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND"
            )


class TestUpdateSegment:
    async def test_replaces_only_what_the_mask_names(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        created = await create(
            stub,
            site,
            segment(prop("plan", "EXISTS"), description="first", labels={"team": "a"}),
        )
        clock.advance(seconds=5)
        change = segment(
            prop("plan", "EQUALS", "pro"),
            segment_id=created.segment_id,
            display_name="Renamed",
            description="ignored: not in the mask",
        )
        response = await stub.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=change, update_mask=FieldMask(paths=["display_name", "definition"])
            ),
            metadata=site.metadata,
        )
        updated = response.segment
        assert updated.display_name == "Renamed"
        assert updated.definition == change.definition
        assert updated.description == "first" and dict(updated.labels) == {"team": "a"}
        assert updated.create_time == created.create_time
        assert updated.update_time == stamp(clock.now())
        assert await get(stub, site, created.segment_id) == updated

        cleared = await stub.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=seg.Segment(segment_id=created.segment_id),
                update_mask=FieldMask(paths=["labels", "description"]),
            ),
            metadata=site.metadata,
        )
        assert not cleared.segment.labels and cleared.segment.description == ""
        assert cleared.segment.definition == change.definition

    async def test_a_definition_outside_the_mask_is_not_read(
        self, stub: Stub, site: Site
    ) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        response = await stub.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=segment(
                    seg.Condition(), segment_id=created.segment_id, display_name="New"
                ),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=site.metadata,
        )
        assert response.segment.definition == created.definition

    async def test_bad_masks(self, stub: Stub, site: Site) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        for paths in ([], ["segment_id"], ["display_name", "create_time"], ["definition.condition"]):
            error = await expect_error(
                stub.UpdateSegment(
                    pb.UpdateSegmentRequest(
                        segment=segment(prop("plan", "EXISTS"), segment_id=created.segment_id),
                        update_mask=FieldMask(paths=paths),
                    ),
                    metadata=site.metadata,
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_UPDATE_MASK",
            )
            assert error_field(error) == "update_mask"
            if paths:
                assert paths[-1] in (error.details() or "")

    async def test_a_bad_definition_is_refused_and_nothing_changes(
        self, stub: Stub, site: Site
    ) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        for change, reason, field in (
            (segment(prop("x", "BETWEEN", 3, 1)), "NEVER_MATCHES", f"{ROOT}.property.values"),
            (segment(), "MISSING_DEFINITION", "segment.definition"),
        ):
            change.segment_id = created.segment_id
            error = await expect_error(
                stub.UpdateSegment(
                    pb.UpdateSegmentRequest(
                        segment=change, update_mask=FieldMask(paths=["definition"])
                    ),
                    metadata=site.metadata,
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                reason,
            )
            assert error_field(error) == field
        assert await get(stub, site, created.segment_id) == created

    async def test_another_sites_segment_is_not_found(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        await expect_error(
            stub.UpdateSegment(
                pb.UpdateSegmentRequest(
                    segment=seg.Segment(segment_id=created.segment_id, display_name="Mine"),
                    update_mask=FieldMask(paths=["display_name"]),
                ),
                metadata=other_site.metadata,
            ),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )
        assert (await get(stub, site, created.segment_id)).display_name == "Buyers"


class TestDeleteSegment:
    async def test_deletes_once(self, stub: Stub, site: Site, other_site: Site) -> None:
        created = await create(stub, site, segment(prop("plan", "EXISTS")))
        request = pb.DeleteSegmentRequest(segment_id=created.segment_id)
        await expect_error(
            stub.DeleteSegment(request, metadata=other_site.metadata),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )
        await stub.DeleteSegment(request, metadata=site.metadata)
        await expect_error(
            get(stub, site, created.segment_id), grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND"
        )
        await expect_error(
            stub.DeleteSegment(request, metadata=site.metadata),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )


class TestListSegments:
    async def test_pages_newest_first(
        self, stub: Stub, site: Site, other_site: Site, clock: FrozenClock
    ) -> None:
        ids = []
        for index in range(5):
            created = await create(
                stub, site, segment(prop("plan", "EXISTS"), display_name=f"S{index}")
            )
            ids.append(created.segment_id)
            if index == 2:
                clock.advance(seconds=1)  # some share a create time, some do not
        await create(stub, other_site, segment(prop("plan", "EXISTS")))
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            response = await stub.ListSegments(
                pb.ListSegmentsRequest(page_size=2, page_token=token), metadata=site.metadata
            )
            pages += 1
            seen.extend(s.segment_id for s in response.segments)
            token = response.next_page_token
            if not token:
                break
        assert seen == ids[::-1]
        assert pages == 3
        everything = await stub.ListSegments(pb.ListSegmentsRequest(), metadata=site.metadata)
        assert [s.segment_id for s in everything.segments] == ids[::-1]
        assert everything.next_page_token == ""
        assert everything.segments[0].definition.condition == prop("plan", "EXISTS")

    async def test_bad_page_arguments(self, stub: Stub, site: Site) -> None:
        await expect_error(
            stub.ListSegments(pb.ListSegmentsRequest(page_size=-1), metadata=site.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_SIZE",
        )
        for token in ("garbage", "eyJhZnRlciI6InNlZ194In0"):  # {"after":"seg_x"}
            await expect_error(
                stub.ListSegments(
                    pb.ListSegmentsRequest(page_token=token), metadata=site.metadata
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_PAGE_TOKEN",
            )
