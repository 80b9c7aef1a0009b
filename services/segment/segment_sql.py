"""Segment definitions compiled to one SQL query (SQLAlchemy Core), the same on SQLite and
PostgreSQL: the store's half of services/segment/definition.py.

The query ranges over `pairs`: every subscriber of the site with its profile's columns
(none for an anonymous one), plus every profile without a subscriber. A condition
becomes a predicate on that row; behaviour conditions become semi-joins (`IN`) against
events grouped by person, so no row is filtered in Python.

Every leaf predicate is two-valued (wrapped in COALESCE(..., false)): SQL's NULL would
otherwise make NOT(x) drop the rows a user expects it to keep (a missing property, an
anonymous person). A count that a person with no events satisfies ("at most 2",
"did not") is compiled as "not among those whose count fails it", because such people
have no group in the events at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import KeyedColumnElement

from services.kit.db import UTCDateTime
from services.segment.definition import (
    AggregateFunction,
    All,
    AnyOf,
    Behaviour,
    Comparison,
    Condition,
    Negate,
    PropertyOperator,
    PropertyTest,
    SubscriberTest,
    TestProfile,
    count_admits_zero,
    effective_count,
    relative_bounds,
    window_bounds,
)
from services.segment.models import (
    EventRow,
    ProfileRow,
    PropertyType,
    SubscriberRow,
    SubscriberState,
)

_SUBSCRIBERS = cast(Table, SubscriberRow.__table__)
_PROFILES = cast(Table, ProfileRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)

PROFILE_SCOPE = "profile"
# (scope, property name) -> the type the site stores for it.
KnownTypes = Mapping[tuple[str, str], PropertyType]


def _event_scope(event_name: str) -> str:
    return f"event:{event_name}"


def _iso(value: datetime) -> str:
    """A timestamp as properties store it (domain.to_json), so text order is time order."""
    return value.astimezone(UTC).isoformat()


def _time(value: datetime) -> Any:
    return bindparam(None, value, type_=UTCDateTime)


class Person:
    """One person to evaluate alone: a profile, or an anonymous subscriber."""

    def __init__(self, profile_id: str | None, subscriber_id: str | None) -> None:
        if (profile_id is None) == (subscriber_id is None):
            raise ValueError("a person is a profile or an anonymous subscriber")
        self.profile_id = profile_id
        self.subscriber_id = subscriber_id


def pairs_query(site_id: str, person: Person | None = None) -> Select[Any]:
    """Every (person, subscriber) pair of the site with what conditions read (only the
    given person's, when one is given)."""
    s, p = _SUBSCRIBERS.alias("s"), _PROFILES.alias("p")
    with_subscriber = (
        select(
            s.c.profile_id,
            s.c.subscriber_id,
            s.c.browser,
            s.c.timezone,
            s.c.state,
            s.c.create_time,
            s.c.unsubscribe_time,
            p.c.properties,
            p.c.test_profile,
        )
        .select_from(
            s.outerjoin(p, and_(p.c.site_id == s.c.site_id, p.c.profile_id == s.c.profile_id))
        )
        .where(s.c.site_id == site_id)
    )
    if person is not None and person.profile_id is not None:
        with_subscriber = with_subscriber.where(s.c.profile_id == person.profile_id)
    elif person is not None:
        with_subscriber = with_subscriber.where(
            s.c.subscriber_id == person.subscriber_id, s.c.profile_id.is_(None)
        )
    lone = _SUBSCRIBERS.alias("lone")
    without_subscriber = select(
        p.c.profile_id,
        null().label("subscriber_id"),
        null().label("browser"),
        null().label("timezone"),
        null().label("state"),
        null().label("create_time"),
        null().label("unsubscribe_time"),
        p.c.properties,
        p.c.test_profile,
    ).where(
        p.c.site_id == site_id,
        ~exists().where(lone.c.site_id == site_id, lone.c.profile_id == p.c.profile_id),
    )
    if person is not None:
        if person.profile_id is None:
            return with_subscriber
        without_subscriber = without_subscriber.where(p.c.profile_id == person.profile_id)
    return cast(Select[Any], union_all(with_subscriber, without_subscriber))


class SegmentCompiler:
    """Compiles one definition for one site at one evaluation time.

    For every person at once, behaviour conditions are semi-joins against the events
    grouped by person (one pass over the window's events); for one person (`person`),
    they are counts over that person's events alone, through the per-person index.
    """

    def __init__(
        self,
        site_id: str,
        now: datetime,
        types: KnownTypes,
        *,
        postgresql: bool,
        person: Person | None = None,
    ) -> None:
        self.site_id = site_id
        self.now = now
        self.types = types
        self.postgresql = postgresql
        self.person = person

    def matching(self, condition: Condition | None) -> Select[Any]:
        """The pairs that match, with every column of pairs_query."""
        pairs = pairs_query(self.site_id, self.person).subquery("pairs")
        query = select(pairs)
        if condition is not None:
            query = query.where(self.predicate(condition, pairs))
        return query

    # ----------------------------------------------------------------- the tree

    def predicate(self, condition: Condition, pairs: Any) -> ColumnElement[bool]:
        match condition:
            case All(conditions):
                return and_(*(self.predicate(c, pairs) for c in conditions))
            case AnyOf(conditions):
                return or_(*(self.predicate(c, pairs) for c in conditions))
            case Negate(child):
                return not_(self.predicate(child, pairs))
            case PropertyTest():
                return _two_valued(
                    self.property_test(condition, pairs.c.properties, PROFILE_SCOPE)
                )
            case Behaviour():
                return self.behaviour(condition, pairs)
            case SubscriberTest():
                return _two_valued(self.subscriber_test(condition, pairs))
            case TestProfile():
                return pairs.c.test_profile.is_(True)
        raise TypeError(f"not a condition: {condition!r}")

    # ---------------------------------------------------------------- properties

    def property_test(
        self, test: PropertyTest, properties: Any, scope: str
    ) -> ColumnElement[bool]:
        stored = self.types.get((scope, test.name))
        operator = test.operator
        if stored is None:
            # Nobody of the site has ever had the property.
            return true() if operator is PropertyOperator.NOT_EXISTS else false()
        if operator is PropertyOperator.EXISTS:
            return self._has(properties, test.name)
        if operator is PropertyOperator.NOT_EXISTS:
            return not_(_two_valued(self._has(properties, test.name)))
        if operator is PropertyOperator.CONTAINS:
            (value,) = test.values
            if test.type is not PropertyType.STRING:
                return false()
            if stored is PropertyType.STRING_LIST:
                return self._list_has(properties, test.name, str(value))
            if stored is PropertyType.STRING:
                text = properties[test.name].as_string()
                finder = func.strpos if self.postgresql else func.instr
                return cast(ColumnElement[bool], finder(text, str(value)) > 0)
            return false()
        if test.type is not None and test.type is not stored:
            return false()
        if stored is PropertyType.STRING_LIST:
            return false()  # lists are only looked into (CONTAINS)
        extracted = self._typed(properties, test.name, stored)
        values = [self._comparable(v, stored) for v in test.values]
        if operator in _RELATIVE:
            if stored is not PropertyType.TIMESTAMP:
                return false()
            low, high, strict = relative_bounds(test, self.now)
            parts = []
            if low is not None:
                parts.append(extracted >= _iso(low))
            if high is not None:
                parts.append(extracted < _iso(high) if strict else extracted <= _iso(high))
            return and_(*parts)
        match operator:
            case PropertyOperator.EQUALS:
                return cast(ColumnElement[bool], extracted == values[0])
            case PropertyOperator.NOT_EQUALS:
                return cast(ColumnElement[bool], extracted != values[0])
            case PropertyOperator.IN:
                return extracted.in_(values)
            case PropertyOperator.STARTS_WITH:
                prefix = str(values[0])
                return cast(
                    ColumnElement[bool], func.substr(extracted, 1, len(prefix)) == prefix
                )
            case PropertyOperator.GREATER_THAN:
                return cast(ColumnElement[bool], extracted > values[0])
            case PropertyOperator.LESS_THAN:
                return cast(ColumnElement[bool], extracted < values[0])
            case PropertyOperator.BETWEEN:
                return extracted.between(values[0], values[1])
        return false()

    def _typed(self, properties: Any, name: str, stored: PropertyType) -> Any:
        element = properties[name]
        if stored is PropertyType.NUMBER:
            return element.as_float()
        if stored is PropertyType.BOOLEAN:
            return element.as_boolean()
        return element.as_string()  # strings; timestamps as ISO text

    @staticmethod
    def _comparable(value: Any, stored: PropertyType) -> Any:
        if isinstance(value, datetime):
            return _iso(value)
        if stored is PropertyType.NUMBER:
            return float(value)
        return value

    def _has(self, properties: Any, name: str) -> ColumnElement[bool]:
        if self.postgresql:
            return cast(ColumnElement[bool], func.jsonb_exists(properties, name))
        path = '$."' + name.replace('"', '\\"') + '"'
        return cast(ColumnElement[bool], func.json_type(properties, path).is_not(None))

    def _list_has(self, properties: Any, name: str, item: str) -> ColumnElement[bool]:
        if self.postgresql:
            return cast(
                ColumnElement[bool],
                properties[name].op("@>", is_comparison=True)(bindparam(None, [item], type_=JSONB)),
            )
        path = '$."' + name.replace('"', '\\"') + '"'
        items = func.json_each(properties, path).table_valued("value").alias("items")
        return exists(select(literal(1)).select_from(items).where(items.c.value == item))

    # ---------------------------------------------------------------- behaviour

    def behaviour(self, behaviour: Behaviour, pairs: Any) -> ColumnElement[bool]:
        e = _EVENTS.alias("e")
        scope = _event_scope(behaviour.event_name)
        where: list[ColumnElement[bool]] = [
            e.c.site_id == self.site_id,
            e.c.name == behaviour.event_name,
        ]
        start, end, end_inclusive = window_bounds(behaviour.window, self.now)
        if start is not None:
            where.append(e.c.occur_time >= _time(start))
        if end is not None:
            where.append(e.c.occur_time <= _time(end) if end_inclusive else e.c.occur_time < _time(end))
        for test in behaviour.filters:
            where.append(_two_valued(self.property_test(test, e.c.properties, scope)))
        count = effective_count(behaviour)
        aggregate = behaviour.aggregate
        tests = [_compare(func.count(), count.comparison, count.value, count.upper)]
        if aggregate is not None:
            stored = self.types.get((scope, aggregate.property))
            if stored is not PropertyType.NUMBER:
                return false()  # no event has it as a number: no aggregate, no match
            amount = e.c.properties[aggregate.property].as_float()
            function = _AGGREGATES[aggregate.function](amount)
            tests.append(function.is_not(None))
            tests.append(
                _compare(function, aggregate.comparison, aggregate.value, aggregate.upper)
            )
        if self.person is not None:
            return self._one_persons_behaviour(e, where, tests)
        negated = aggregate is None and count_admits_zero(count)
        having = not_(tests[0]) if negated else and_(*tests)
        by_profile = (
            select(e.c.profile_id)
            .where(*where, e.c.profile_id.is_not(None))
            .group_by(e.c.profile_id)
            .having(having)
        )
        by_anonymous = (
            select(e.c.subscriber_id)
            .where(*where, e.c.profile_id.is_(None), e.c.subscriber_id.is_not(None))
            .group_by(e.c.subscriber_id)
            .having(having)
        )
        among = or_(
            and_(pairs.c.profile_id.is_not(None), pairs.c.profile_id.in_(by_profile)),
            and_(pairs.c.profile_id.is_(None), pairs.c.subscriber_id.in_(by_anonymous)),
        )
        return not_(_two_valued(among)) if negated else _two_valued(among)

    def _one_persons_behaviour(
        self, e: Any, where: list[ColumnElement[bool]], tests: list[ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        """The same test over one person's events: a scalar subquery evaluated once.
        Without a GROUP BY, HAVING sees the person's events as one group (count 0 when
        there are none), so "admits zero" needs no inversion here."""
        assert self.person is not None
        if self.person.profile_id is not None:
            mine = e.c.profile_id == self.person.profile_id
        else:
            mine = and_(e.c.profile_id.is_(None), e.c.subscriber_id == self.person.subscriber_id)
        return _two_valued(exists(select(func.count()).where(*where, mine).having(and_(*tests))))

    # --------------------------------------------------------------- subscriber

    def subscriber_test(self, test: SubscriberTest, pairs: Any) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = [pairs.c.subscriber_id.is_not(None)]
        if test.browsers:
            parts.append(pairs.c.browser.in_([b.value for b in test.browsers]))
        if test.timezones:
            parts.append(pairs.c.timezone.in_(list(test.timezones)))
        if test.subscribed_before is not None:
            parts.append(pairs.c.create_time < _time(test.subscribed_before))
        if test.subscribed_after is not None:
            parts.append(pairs.c.create_time >= _time(test.subscribed_after))
        if test.reachable:
            parts.append(pairs.c.state == SubscriberState.ACTIVE.value)
        return and_(*parts)


_RELATIVE = frozenset(
    {
        PropertyOperator.WITHIN_LAST_DAYS,
        PropertyOperator.MORE_THAN_DAYS_AGO,
        PropertyOperator.WITHIN_NEXT_DAYS,
    }
)

_AGGREGATES = {
    AggregateFunction.SUM: func.sum,
    AggregateFunction.AVERAGE: func.avg,
    AggregateFunction.MIN: func.min,
    AggregateFunction.MAX: func.max,
}


def _compare(x: Any, comparison: Comparison, value: float, upper: float) -> ColumnElement[bool]:
    match comparison:
        case Comparison.AT_LEAST:
            return cast(ColumnElement[bool], x >= value)
        case Comparison.AT_MOST:
            return cast(ColumnElement[bool], x <= value)
        case Comparison.EXACTLY:
            return cast(ColumnElement[bool], x == value)
        case Comparison.BETWEEN:
            return cast(ColumnElement[bool], x.between(value, upper))
        case Comparison.MORE_THAN:
            return cast(ColumnElement[bool], x > value)
        case Comparison.LESS_THAN:
            return cast(ColumnElement[bool], x < value)


def _two_valued(predicate: ColumnElement[bool] | KeyedColumnElement[Any]) -> ColumnElement[bool]:
    """true or false, never NULL (see the module's docstring)."""
    return cast(ColumnElement[bool], func.coalesce(predicate, false()))
