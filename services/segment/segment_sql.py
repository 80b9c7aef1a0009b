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
from datetime import UTC, datetime, timedelta
from enum import Enum
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
from sqlalchemy.sql.elements import False_, KeyedColumnElement, True_

from services.kit.db import UTCDateTime
from services.segment.definition import (
    AggregateFunction,
    All,
    AnyOf,
    Behaviour,
    Comparison,
    Condition,
    Count,
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
    PROFILE_SCOPE,
    EventRow,
    ProfileRow,
    PropertyType,
    SubscriberRow,
    SubscriberState,
    event_scope,
)

_SUBSCRIBERS = cast(Table, SubscriberRow.__table__)
_PROFILES = cast(Table, ProfileRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)

# (scope, property name) -> the type the site stores for it.
KnownTypes = Mapping[tuple[str, str], PropertyType]


def _iso(value: datetime) -> str:
    """A timestamp as properties store it (domain.to_json), so text order is time order."""
    return value.astimezone(UTC).isoformat()


def _time(value: datetime) -> Any:
    return bindparam(None, value, type_=UTCDateTime)


# A time that moves with the evaluation time, by parameter name: its offset from `now`
# and whether it is compared as text (a timestamp property) rather than as a time.
Clock = Mapping[str, tuple[timedelta, bool]]


def clock_values(clock: Clock, now: datetime) -> dict[str, Any]:
    """The values of a statement's moving times at another evaluation time."""
    return {
        name: _iso(now + offset) if as_text else now + offset
        for name, (offset, as_text) in clock.items()
    }


def type_keys(condition: Condition) -> set[tuple[str, str]]:
    """The (scope, name) property-type keys a definition refers to: ("profile", name)
    for property conditions, ("event:<event name>", name) for event filters and
    aggregates."""
    keys: set[tuple[str, str]] = set()

    def visit(node: Condition) -> None:
        match node:
            case All(conditions) | AnyOf(conditions):
                for child in conditions:
                    visit(child)
            case Negate(child):
                visit(child)
            case PropertyTest(name=name):
                keys.add((PROFILE_SCOPE, name))
            case Behaviour():
                scope = event_scope(node.event_name)
                keys.update((scope, test.name) for test in node.filters)
                if node.aggregate is not None:
                    keys.add((scope, node.aggregate.property))

    visit(condition)
    return keys


class Person:
    """One person to evaluate alone: a profile, or an anonymous subscriber."""

    def __init__(self, profile_id: str | None, subscriber_id: str | None) -> None:
        if (profile_id is None) == (subscriber_id is None):
            raise ValueError("a person is a profile or an anonymous subscriber")
        self.profile_id = profile_id
        self.subscriber_id = subscriber_id

    @property
    def key(self) -> str:
        """The id its events are matched on: the profile's, else the subscriber's."""
        return self.profile_id or self.subscriber_id or ""


class Branch(Enum):
    """The two kinds of person, each its own SELECT of the union, so that what a kind
    cannot have folds to a constant there (an anonymous browser has no properties) and
    PostgreSQL sees plain filters it can apply while it scans."""

    # A profile, paired with each of its subscribers or, without any, with none:
    # profiles LEFT JOIN subscribers. Every subscriber's profile_id names a stored
    # profile (registering, Identify and imports create it), so this covers them all.
    PROFILE = "profile"
    # A subscriber without a profile.
    ANONYMOUS = "anonymous"


class _Sources:
    """The columns one branch reads: the person key events are matched on, the profile's
    properties and test flag (None for anonymous browsers), and the subscriber's table
    (NULL columns for a profile without subscribers)."""

    def __init__(self, branch: Branch, s: Any, p: Any) -> None:
        self.branch = branch
        self.key = s.c.subscriber_id if branch is Branch.ANONYMOUS else p.c.profile_id
        self.properties = None if branch is Branch.ANONYMOUS else p.c.properties
        self.test_profile = None if branch is Branch.ANONYMOUS else p.c.test_profile
        self.subscriber = s


class SegmentCompiler:
    """Compiles one definition for one site at one evaluation time.

    For every person at once, behaviour conditions are lookups in the set of people
    the window's events name (grouped by person when a count or an aggregate is asked),
    each set computed once per statement; for one person (`person`), they are counts
    over that person's events alone, through the per-person index.
    """

    def __init__(
        self,
        site_id: str,
        now: datetime,
        types: KnownTypes,
        *,
        postgresql: bool,
        person: Person | None = None,
        sample_below: int | None = None,
    ) -> None:
        self.now = now
        self.types = types
        self.postgresql = postgresql
        self.person = person
        # Only people whose sample_bucket (0-99, a hash of their id) is below this: an
        # estimate from that share of them (PostgreSQL).
        self.sample_below = sample_below
        # (behaviour leaf, anonymous branch) -> the CTE of the people it selects.
        self._people: dict[tuple[int, bool], Any] = {}
        # The site, the person and every time that moves with `now` are named
        # parameters, so a statement built once can run again for another site, person
        # or time with new values (SubscriberStore keeps one person's statements).
        self._site = bindparam("site_id", site_id)
        self._person_id = (
            None if person is None
            else bindparam("person_id", person.key)
        )  # fmt: skip
        self.clock: dict[str, tuple[timedelta, bool]] = {}

    def _moving(self, value: datetime, *, as_text: bool = False) -> Any:
        """A time computed from `now` (a window's or a relative bound), as a named
        parameter whose offset from `now` is kept in self.clock."""
        offset = value - self.now
        seconds = round(offset.total_seconds())
        name = f"{'text' if as_text else 'time'}_{'m' if seconds < 0 else 'p'}{abs(seconds)}"
        self.clock[name] = (offset, as_text)
        if as_text:
            return bindparam(name, _iso(value))
        return bindparam(name, value, type_=UTCDateTime)

    def matching(self, condition: Condition | None) -> Select[Any]:
        """The pairs that match: profile_id, subscriber_id, browser, timezone, state,
        create_time, unsubscribe_time (the subscriber's columns NULL for a profile
        without one)."""
        s, p = _SUBSCRIBERS.alias("s"), _PROFILES.alias("p")
        person = self.person
        branches = []
        if person is None or person.profile_id is not None:
            profiles = (
                select(*_pair_columns(p.c.profile_id, s))
                .select_from(
                    p.outerjoin(
                        s, and_(s.c.site_id == p.c.site_id, s.c.profile_id == p.c.profile_id)
                    )
                )
                .where(p.c.site_id == self._site)
            )
            if person is not None:
                profiles = profiles.where(p.c.profile_id == self._person_id)
            if self.sample_below is not None:
                profiles = profiles.where(p.c.sample_bucket < self.sample_below)
            branches.append((profiles, _Sources(Branch.PROFILE, s, p)))
        if person is None or person.subscriber_id is not None:
            anonymous = select(*_pair_columns(None, s)).where(
                s.c.site_id == self._site, s.c.profile_id.is_(None)
            )
            if person is not None:
                anonymous = anonymous.where(s.c.subscriber_id == self._person_id)
            if self.sample_below is not None:
                anonymous = anonymous.where(s.c.sample_bucket < self.sample_below)
            branches.append((anonymous, _Sources(Branch.ANONYMOUS, s, p)))
        selects = []
        for query, sources in branches:
            if condition is not None:
                predicate = self.predicate(condition, sources)
                if isinstance(predicate, False_):
                    continue
                query = query.where(predicate)
            selects.append(query)
        if not selects:
            return select(*_pair_columns(None, None)).where(false())
        if len(selects) == 1:
            return selects[0]
        return cast(Select[Any], select(union_all(*selects).subquery("pairs")))

    def predicate(self, condition: Condition, sources: _Sources) -> ColumnElement[bool]:
        """The condition on one branch's row. Leaves may be NULL (a missing property),
        which WHERE, AND and OR treat as false; a negation makes its operand two-valued
        first, so NOT never turns such a NULL into "no row"."""
        match condition:
            case All(conditions):
                return and_(*(self.predicate(c, sources) for c in conditions))
            case AnyOf(conditions):
                return or_(*(self.predicate(c, sources) for c in conditions))
            case Negate(child):
                inner = self.predicate(child, sources)
                if isinstance(inner, True_ | False_):
                    return not_(inner)
                return not_(_two_valued(inner))
            case PropertyTest():
                if sources.properties is None:
                    return _absent(condition)
                return self.property_test(condition, sources.properties, PROFILE_SCOPE)
            case Behaviour():
                return self.behaviour(condition, sources)
            case SubscriberTest():
                return self.subscriber_test(condition, sources.subscriber)
            case TestProfile():
                if sources.test_profile is None:
                    return false()
                return sources.test_profile.is_(True)
        raise TypeError(f"not a condition: {condition!r}")

    # ---------------------------------------------------------------- properties

    def property_test(self, test: PropertyTest, properties: Any, scope: str) -> ColumnElement[bool]:
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
                parts.append(extracted >= self._moving(low, as_text=True))
            if high is not None:
                bound = self._moving(high, as_text=True)
                parts.append(extracted < bound if strict else extracted <= bound)
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
                return cast(ColumnElement[bool], func.substr(extracted, 1, len(prefix)) == prefix)
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

    def behaviour(self, behaviour: Behaviour, sources: _Sources) -> ColumnElement[bool]:
        e = _EVENTS.alias("e")
        scope = event_scope(behaviour.event_name)
        where: list[ColumnElement[bool]] = [
            e.c.site_id == self._site,
            e.c.name == behaviour.event_name,
        ]
        start, end, end_inclusive = window_bounds(behaviour.window, self.now)
        # The last N hours move with `now`; dates between are fixed.
        at = self._moving if behaviour.window.last_hours is not None else _time
        if start is not None:
            where.append(e.c.occur_time >= at(start))
        if end is not None:
            where.append(e.c.occur_time <= at(end) if end_inclusive else e.c.occur_time < at(end))
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
            tests.append(_compare(function, aggregate.comparison, aggregate.value, aggregate.upper))
        if sources.branch is Branch.ANONYMOUS:
            key = e.c.subscriber_id
            where += [e.c.profile_id.is_(None), e.c.subscriber_id.is_not(None)]
        else:
            key = e.c.profile_id
            where.append(e.c.profile_id.is_not(None))
        if self.person is not None:
            return self._one_persons_behaviour(e, key, where, tests)
        if self.sample_below is not None:
            # Only the sampled people's events: the same hash as the sample_bucket
            # columns (models.SAMPLE_BUCKET_OF_*), so the sets stay small too.
            where.append(func.mod(func.abs(func.hashtext(key)), 100) < self.sample_below)
        negated = aggregate is None and count_admits_zero(count)
        anonymous = sources.branch is Branch.ANONYMOUS
        people = self._people.get((id(behaviour), anonymous))
        if people is None:
            query = select(key.label("person")).where(*where)
            if not (aggregate is None and _at_least_once(count, negated)):
                # A count or an aggregate: per person. "Did it" / "did not do it" needs
                # no grouping: any event will do.
                query = query.group_by(key).having(not_(tests[0]) if negated else and_(*tests))
            # Computed once per statement, then hashed: PostgreSQL cannot estimate how
            # many people a JSON condition keeps, and with a low guess it probes the
            # events index once per person instead (minutes at a million profiles).
            people = query.cte(f"people_{len(self._people)}").prefix_with(
                "MATERIALIZED", dialect="postgresql"
            )
            self._people[(id(behaviour), anonymous)] = people
        # Both sides are never NULL (the key is the branch's own non-NULL id), so NOT IN
        # is exact. IS [NOT] TRUE keeps PostgreSQL from turning the test into a join
        # whose order a bad row estimate picks: it stays one hashed lookup per row.
        among = sources.key.in_(select(people.c.person))
        return among.is_not(True) if negated else among.is_(True)

    def _one_persons_behaviour(
        self,
        e: Any,
        key: Any,
        where: list[ColumnElement[bool]],
        tests: list[ColumnElement[bool]],
    ) -> ColumnElement[bool]:
        """The same test over one person's events: a scalar subquery evaluated once.
        Without a GROUP BY, HAVING sees the person's events as one group (count 0 when
        there are none), so "admits zero" needs no inversion here."""
        assert self._person_id is not None
        mine = key == self._person_id
        return _two_valued(exists(select(func.count()).where(*where, mine).having(and_(*tests))))

    # --------------------------------------------------------------- subscriber

    def subscriber_test(self, test: SubscriberTest, s: Any) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if test.browsers:
            parts.append(s.c.browser.in_([b.value for b in test.browsers]))
        if test.timezones:
            parts.append(s.c.timezone.in_(list(test.timezones)))
        if test.subscribed_before is not None:
            parts.append(s.c.create_time < _time(test.subscribed_before))
        if test.subscribed_after is not None:
            parts.append(s.c.create_time >= _time(test.subscribed_after))
        if test.reachable:
            parts.append(s.c.state == SubscriberState.ACTIVE.value)
        return and_(*parts)


def _pair_columns(profile_id: Any, s: Any) -> list[Any]:
    """The columns every branch of the union gives, in one order."""

    def of(name: str) -> Any:
        return s.c[name] if s is not None else null().label(name)

    return [
        profile_id.label("profile_id") if profile_id is not None else null().label("profile_id"),
        of("subscriber_id"),
        of("browser"),
        of("timezone"),
        of("state"),
        of("create_time"),
        of("unsubscribe_time"),
    ]


def _absent(test: PropertyTest) -> ColumnElement[bool]:
    """A property condition on a person without properties (an anonymous browser)."""
    return true() if test.operator is PropertyOperator.NOT_EXISTS else false()


def _at_least_once(count: Count, negated: bool) -> bool:
    """Whether the count test is just "did it at least once" (or, negated, "not even
    once"), which needs no GROUP BY."""
    if negated:
        return (
            count.comparison is Comparison.EXACTLY
            and count.value == 0
            or (count.comparison is Comparison.AT_MOST and count.value < 1)
            or (count.comparison is Comparison.LESS_THAN and count.value <= 1)
        )
    return (count.comparison is Comparison.AT_LEAST and count.value <= 1 and count.value > 0) or (
        count.comparison is Comparison.MORE_THAN and 0 <= count.value < 1
    )


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
