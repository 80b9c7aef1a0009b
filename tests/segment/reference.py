"""A plain-Python evaluator of segment definitions, written from the semantics in
services/segment/definition.py (and clarion/segment/v1/segment.proto) and not from the
SQL form, so the tests can hold the store's answers against it.

It reads the site as the store keeps it, in memory: profiles, subscribers, events and
the fixed type of each property name (per scope). Values are typed Python values: str,
float, bool, aware datetime, and tuples (or lists) of str for string lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.segment.definition import (
    RELATIVE_TIME_OPERATORS,
    AggregateFunction,
    All,
    AnyOf,
    Behaviour,
    Condition,
    Negate,
    PropertyOperator,
    PropertyTest,
    SubscriberTest,
    TestProfile,
    compare,
    effective_count,
    relative_bounds,
    window_bounds,
)
from services.segment.models import Browser, PropertyType

PROFILE_SCOPE = "profile"

Pair = tuple[str | None, str | None]


def event_scope(event_name: str) -> str:
    return f"event:{event_name}"


@dataclass(frozen=True)
class Profile:
    profile_id: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    test_profile: bool = False


@dataclass(frozen=True)
class Subscriber:
    subscriber_id: str
    profile_id: str | None
    browser: Browser
    timezone: str
    state: str  # "active" or "unsubscribed"
    create_time: datetime


@dataclass(frozen=True)
class Event:
    event_id: str
    name: str
    profile_id: str | None
    subscriber_id: str | None
    occur_time: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteData:
    profiles: Sequence[Profile]
    subscribers: Sequence[Subscriber]
    events: Sequence[Event]
    # (scope, name) -> type: "profile" or "event:<name>", as segment_property_types.
    types: Mapping[tuple[str, str], PropertyType]

    def types_of(self, scope: str) -> dict[str, PropertyType]:
        return {name: t for (s, name), t in self.types.items() if s == scope}


@dataclass(frozen=True)
class Person:
    """A profile, or an anonymous subscriber (a person of its own)."""

    profile_id: str | None
    properties: Mapping[str, Any]
    test_profile: bool
    events: Sequence[Event]


def pairs(site: SiteData) -> Iterator[tuple[Person, Subscriber | None]]:
    """Every (person, subscriber or None) pair of the site."""
    for profile in site.profiles:
        person = Person(
            profile.profile_id,
            profile.properties,
            profile.test_profile,
            [e for e in site.events if e.profile_id == profile.profile_id],
        )
        own = [s for s in site.subscribers if s.profile_id == profile.profile_id]
        if not own:
            yield person, None
        for subscriber in own:
            yield person, subscriber
    for subscriber in site.subscribers:
        if subscriber.profile_id is None:
            events = [
                e
                for e in site.events
                if e.profile_id is None and e.subscriber_id == subscriber.subscriber_id
            ]
            yield Person(None, {}, False, events), subscriber


def property_holds(
    test: PropertyTest,
    properties: Mapping[str, Any],
    types: Mapping[str, PropertyType],
    now: datetime,
) -> bool:
    """One property condition on one set of properties (a profile's or an event's)."""
    op = test.operator
    if test.name not in properties:
        return op is PropertyOperator.NOT_EXISTS
    if op is PropertyOperator.EXISTS:
        return True
    if op is PropertyOperator.NOT_EXISTS:
        return False
    stored_type = types[test.name]
    value = properties[test.name]
    if op in RELATIVE_TIME_OPERATORS:
        if stored_type is not PropertyType.TIMESTAMP:
            return False
        low, high, strict_high = relative_bounds(test, now)
        above_low = low is None or low <= value
        below_high = high is None or (value < high if strict_high else value <= high)
        return above_low and below_high
    values = test.values
    if op is PropertyOperator.CONTAINS:
        # test.type is the values' type (as the API builds it): one string, looked for in
        # text or among a list's items.
        if test.type is not PropertyType.STRING:
            return False
        if stored_type is PropertyType.STRING_LIST:
            return values[0] in list(value)
        return stored_type is PropertyType.STRING and values[0] in value
    if stored_type is not test.type:
        return False
    match op:
        case PropertyOperator.EQUALS:
            return bool(value == values[0])
        case PropertyOperator.NOT_EQUALS:
            return bool(value != values[0])
        case PropertyOperator.IN:
            return value in values
        case PropertyOperator.STARTS_WITH:
            return bool(value.startswith(values[0]))
        case PropertyOperator.GREATER_THAN:
            return bool(value > values[0])
        case PropertyOperator.LESS_THAN:
            return bool(value < values[0])
        case PropertyOperator.BETWEEN:
            return bool(values[0] <= value <= values[1])
    raise AssertionError(f"unhandled operator {op}")


def behaviour_holds(behaviour: Behaviour, person: Person, site: SiteData, now: datetime) -> bool:
    types = site.types_of(event_scope(behaviour.event_name))
    start, end, end_inclusive = window_bounds(behaviour.window, now)
    found = [
        e
        for e in person.events
        if e.name == behaviour.event_name
        and (start is None or start <= e.occur_time)
        and (end is None or e.occur_time < end or (end_inclusive and e.occur_time == end))
        and all(property_holds(f, e.properties, types, now) for f in behaviour.filters)
    ]
    count = effective_count(behaviour)
    if not compare(count.comparison, float(len(found)), count.value, count.upper):
        return False
    aggregate = behaviour.aggregate
    if aggregate is None:
        return True
    if types.get(aggregate.property) is not PropertyType.NUMBER:
        return False
    numbers = [float(e.properties[aggregate.property]) for e in found if aggregate.property in e.properties]
    if not numbers:
        return False
    match aggregate.function:
        case AggregateFunction.SUM:
            result = sum(numbers)
        case AggregateFunction.AVERAGE:
            result = sum(numbers) / len(numbers)
        case AggregateFunction.MIN:
            result = min(numbers)
        case AggregateFunction.MAX:
            result = max(numbers)
    return compare(aggregate.comparison, result, aggregate.value, aggregate.upper)


def subscriber_holds(test: SubscriberTest, subscriber: Subscriber | None) -> bool:
    if subscriber is None:
        return False
    return (
        (not test.browsers or subscriber.browser in test.browsers)
        and (not test.timezones or subscriber.timezone in test.timezones)
        and (test.subscribed_before is None or subscriber.create_time < test.subscribed_before)
        and (test.subscribed_after is None or subscriber.create_time >= test.subscribed_after)
        and (not test.reachable or subscriber.state == "active")
    )


def holds(
    condition: Condition,
    person: Person,
    subscriber: Subscriber | None,
    site: SiteData,
    now: datetime,
) -> bool:
    match condition:
        case All(conditions):
            return all(holds(c, person, subscriber, site, now) for c in conditions)
        case AnyOf(conditions):
            return any(holds(c, person, subscriber, site, now) for c in conditions)
        case Negate(child):
            return not holds(child, person, subscriber, site, now)
        case PropertyTest():
            return property_holds(condition, person.properties, site.types_of(PROFILE_SCOPE), now)
        case Behaviour():
            return behaviour_holds(condition, person, site, now)
        case SubscriberTest():
            return subscriber_holds(condition, subscriber)
        case TestProfile():
            return person.test_profile
    raise TypeError(f"not a condition: {condition!r}")


def matching_pairs(site: SiteData, condition: Condition | None, now: datetime) -> set[Pair]:
    """(profile_id or None, subscriber_id or None) of every pair the condition selects."""
    return {
        (person.profile_id, subscriber.subscriber_id if subscriber else None)
        for person, subscriber in pairs(site)
        if condition is None or holds(condition, person, subscriber, site, now)
    }
