"""A campaign file's `trigger:` block (what makes it a live campaign), and a trigger in
words for `clarion campaign show` and `list`.

    trigger:
      event: Added To Cart              # the event that sets it off (required)
      where:                            # optional: every condition on its properties holds
        - {property: category, equals: shoes}
        - {property: price, greater_than: 50}
      unless: {event: Charged, within: 10m}   # push only if this does not follow in time
      # or: remind: {property: travel_date, before: 1d}  (or after: 2h; neither: at it)
      cooldown: 24h                     # at most one push per person in this time
      start: 2027-01-01T00:00:00Z       # events before it are not acted on
      end: 2027-02-01T00:00:00Z         # no push after it; the campaign then completes

A condition is `{property: NAME, OPERATOR: VALUE}` with one operator: equals,
not_equals, contains, starts_with, greater_than, less_than (one value); in (a list);
between (a list of two); exists (true: the property is set, false: it is not);
within_last_days, more_than_days_ago, within_next_days (a number of days). A value's
YAML type is its type: text, a number, true/false, or a time written unquoted with its
zone (2027-01-01T00:00:00Z). `unless:` also takes `where:` (conditions on the event
that cancels the wait) and `keep_first_wait: true` (another triggering event while the
wait is open does not restart it). Durations: a number with a unit, s, m, h, d or w,
or several (1h30m).

A mistake is one OperatorError naming the key (`trigger.unless.within`) and saying what
is expected; the campaign service checks the rest (ranges, types against the site's).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2
from services.kit.operator import OperatorError

TRIGGER_KEYS = ("event", "where", "unless", "remind", "cooldown", "start", "end")
UNLESS_KEYS = ("event", "where", "within", "keep_first_wait")
REMIND_KEYS = ("property", "before", "after")
DURATION_EXAMPLE = "a duration such as 90s, 10m, 2h, 1d or 1h30m"
TIME_EXAMPLE = "a time with its zone, such as 2027-01-01T09:00:00Z"

_OPERATOR = segment_pb2.PropertyOperator
# Operators that compare with one value.
_ONE_VALUE = {
    "equals": _OPERATOR.PROPERTY_OPERATOR_EQUALS,
    "not_equals": _OPERATOR.PROPERTY_OPERATOR_NOT_EQUALS,
    "contains": _OPERATOR.PROPERTY_OPERATOR_CONTAINS,
    "starts_with": _OPERATOR.PROPERTY_OPERATOR_STARTS_WITH,
    "greater_than": _OPERATOR.PROPERTY_OPERATOR_GREATER_THAN,
    "less_than": _OPERATOR.PROPERTY_OPERATOR_LESS_THAN,
}
_DAYS = {
    "within_last_days": _OPERATOR.PROPERTY_OPERATOR_WITHIN_LAST_DAYS,
    "more_than_days_ago": _OPERATOR.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO,
    "within_next_days": _OPERATOR.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS,
}
OPERATOR_KEYS = (*_ONE_VALUE, "in", "between", "exists", *_DAYS)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")


def read_trigger(given: Any) -> campaign_pb2.Trigger | None:
    """The `trigger:` block as a Trigger; None when it is absent or empty (not a live
    campaign). Raises OperatorError naming the key at fault."""
    if given is None or given == {}:
        return None
    mapping = _mapping(given, "trigger", "`event: NAME` and optionally where:, unless: ...")
    _known_keys(mapping, "trigger", TRIGGER_KEYS)
    trigger = campaign_pb2.Trigger(event_name=_event_name(mapping, "trigger.event"))
    trigger.event_filters.extend(read_conditions(mapping.get("where"), "trigger.where"))
    if "unless" in mapping and "remind" in mapping:
        raise OperatorError(
            "trigger: a trigger waits one way: unless: (event then inaction) or remind: "
            "(a date reminder), not both"
        )
    if "unless" in mapping:
        trigger.inaction.CopyFrom(_inaction(mapping["unless"]))
    if "remind" in mapping:
        trigger.date_reminder.CopyFrom(_reminder(mapping["remind"]))
    if "cooldown" in mapping:
        trigger.person_cooldown_seconds = duration_seconds(mapping["cooldown"], "trigger.cooldown")
    for key, field in (("start", "start_time"), ("end", "end_time")):
        if key in mapping:
            getattr(trigger, field).CopyFrom(_timestamp(mapping[key], f"trigger.{key}"))
    return trigger


def read_conditions(given: Any, key: str) -> list[segment_pb2.PropertyCondition]:
    """`where:`: a list of conditions (or one), each `{property: NAME, OPERATOR: VALUE}`."""
    if given is None:
        return []
    items = [given] if isinstance(given, dict) else given
    if not isinstance(items, list):
        raise OperatorError(
            f"{key}: expected a list of conditions such as "
            f"`- {{property: category, equals: shoes}}`, got {_shown(given)}"
        )
    return [read_condition(item, f"{key}[{index}]") for index, item in enumerate(items)]


def read_condition(given: Any, key: str) -> segment_pb2.PropertyCondition:
    """One condition on an event property, `{property: NAME, OPERATOR: VALUE}`."""
    expected = "{property: NAME, OPERATOR: VALUE} with one of " + ", ".join(OPERATOR_KEYS)
    mapping = _mapping(given, key, expected)
    name = mapping.get("property")
    if not isinstance(name, str) or not name.strip():
        raise OperatorError(f"{key}: property: the property's name is required, as in {expected}")
    operators = [k for k in mapping if k != "property"]
    unknown = [str(k) for k in operators if k not in OPERATOR_KEYS]
    if unknown:
        raise OperatorError(
            f"{key}: {', '.join(unknown)} is not an operator: use one of {', '.join(OPERATOR_KEYS)}"
        )
    if len(operators) != 1:
        raise OperatorError(
            f"{key}: give one operator (of {', '.join(OPERATOR_KEYS)}), "
            + ("not several" if operators else "none is given")
        )
    (operator,) = operators
    value = mapping[operator]
    at = f"{key}.{operator}"
    condition = segment_pb2.PropertyCondition(name=name)
    if operator in _ONE_VALUE:
        condition.operator = _ONE_VALUE[operator]
        if isinstance(value, list | dict):
            hint = "; for several, use in: [...]" if operator == "equals" else ""
            raise OperatorError(f"{at}: expected one value, got {_shown(value)}{hint}")
        condition.values.append(_value(value, at))
    elif operator in ("in", "between"):
        condition.operator = _OPERATOR.Value(f"PROPERTY_OPERATOR_{operator.upper()}")
        between = operator == "between"
        if not isinstance(value, list) or (len(value) != 2 if between else not value):
            wanted = "a list of two values, [low, high]" if between else "a list, [a, b, ...]"
            raise OperatorError(f"{at}: expected {wanted}, got {_shown(value)}")
        condition.values.extend(_value(item, f"{at}[{i}]") for i, item in enumerate(value))
    elif operator == "exists":
        if not isinstance(value, bool):
            raise OperatorError(
                f"{at}: expected true (the property is set) or false (it is not), "
                f"got {_shown(value)}"
            )
        condition.operator = (
            _OPERATOR.PROPERTY_OPERATOR_EXISTS if value else _OPERATOR.PROPERTY_OPERATOR_NOT_EXISTS
        )
    else:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OperatorError(
                f"{at}: expected a whole number of days (1 or more), got {_shown(value)}"
            )
        condition.operator = _DAYS[operator]
        condition.days = value
    return condition


def duration_seconds(given: Any, key: str) -> int:
    """`90s`, `10m`, `2h`, `1d`, `1w` or several together (`1h30m`), in seconds."""
    text = given.strip().lower() if isinstance(given, str) else None
    if text is None or not _DURATION.fullmatch(text):
        raise OperatorError(f"{key}: expected {DURATION_EXAMPLE}, got {_shown(given)}")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _inaction(given: Any) -> campaign_pb2.Inaction:
    key = "trigger.unless"
    mapping = _mapping(given, key, "{event: Charged, within: 10m}")
    _known_keys(mapping, key, UNLESS_KEYS)
    if "within" not in mapping:
        raise OperatorError(f"{key}.within: how long to wait is required: {DURATION_EXAMPLE}")
    keep = mapping.get("keep_first_wait", False)
    if not isinstance(keep, bool):
        raise OperatorError(f"{key}.keep_first_wait: expected true or false, got {_shown(keep)}")
    inaction = campaign_pb2.Inaction(
        event_name=_event_name(mapping, f"{key}.event"),
        window_seconds=duration_seconds(mapping["within"], f"{key}.within"),
        keep_first_wait=keep,
    )
    inaction.event_filters.extend(read_conditions(mapping.get("where"), f"{key}.where"))
    return inaction


def _reminder(given: Any) -> campaign_pb2.DateReminder:
    key = "trigger.remind"
    mapping = _mapping(given, key, "{property: travel_date, before: 1d} (or after:)")
    _known_keys(mapping, key, REMIND_KEYS)
    name = mapping.get("property")
    if not isinstance(name, str) or not name.strip():
        raise OperatorError(
            f"{key}.property: the event's timestamp property to remind at is required, "
            "e.g. travel_date"
        )
    if "before" in mapping and "after" in mapping:
        raise OperatorError(f"{key}: before: or after:, not both")
    offset = 0
    if "before" in mapping:
        offset = -duration_seconds(mapping["before"], f"{key}.before")
    elif "after" in mapping:
        offset = duration_seconds(mapping["after"], f"{key}.after")
    return campaign_pb2.DateReminder(property=name, offset_seconds=offset)


def _event_name(mapping: dict[Any, Any], key: str) -> str:
    name = mapping.get("event")
    if not isinstance(name, str) or not name.strip():
        got = "" if name is None else f", got {_shown(name)}"
        raise OperatorError(
            f"{key}: the event's name is required, e.g. `event: Added To Cart`{got}"
        )
    return name


def _value(given: Any, key: str) -> profile_pb2.PropertyValue:
    """A scalar as the PropertyValue of its YAML type."""
    if isinstance(given, bool):
        return profile_pb2.PropertyValue(bool_value=given)
    if isinstance(given, int | float):
        return profile_pb2.PropertyValue(number_value=float(given))
    if isinstance(given, str):
        return profile_pb2.PropertyValue(string_value=given)
    if isinstance(given, datetime):
        return profile_pb2.PropertyValue(timestamp_value=_timestamp(given, key))
    if isinstance(given, date):
        raise OperatorError(
            f"{key}: a date alone has no zone: give {TIME_EXAMPLE} (or quote it as text)"
        )
    raise OperatorError(
        f"{key}: expected text, a number, true/false or {TIME_EXAMPLE}; got {_shown(given)}"
    )


def _timestamp(given: Any, key: str) -> Timestamp:
    """An unquoted YAML time (a datetime) or RFC 3339 text; without a zone it is UTC, as
    the schedule's times are."""
    moment = given
    if isinstance(given, str):
        try:
            moment = datetime.fromisoformat(given.strip())
        except ValueError:
            raise OperatorError(f"{key}: expected {TIME_EXAMPLE}, got {_shown(given)}") from None
    if not isinstance(moment, datetime):
        why = "a date alone has no zone" if isinstance(moment, date) else f"got {_shown(given)}"
        raise OperatorError(f"{key}: expected {TIME_EXAMPLE} ({why})")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _mapping(given: Any, key: str, expected: str) -> dict[Any, Any]:
    if not isinstance(given, dict):
        raise OperatorError(f"{key}: expected a mapping, {expected}; got {_shown(given)}")
    return given


def _known_keys(mapping: dict[Any, Any], key: str, known: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise OperatorError(f"{key} takes {', '.join(known)}; not {', '.join(unknown)}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# In words.


def trigger_words(trigger: campaign_pb2.Trigger, since: datetime | None = None) -> str:
    """What sets the campaign off, e.g. "on Added To Cart where category = shoes, unless
    Charged within 10 min; at most once per person per 24 h". `since` (aware): when the
    trigger was set; a start_time later than that is said ("from ..."), not the one
    Clarion gives a trigger without (then)."""
    words = f"on {trigger.event_name}" + _where(trigger.event_filters)
    kind = trigger.WhichOneof("wait")
    if kind == "inaction":
        inaction = trigger.inaction
        words += (
            f", unless {inaction.event_name}{_where(inaction.event_filters)} within "
            f"{duration_words(inaction.window_seconds)}"
        )
        if inaction.keep_first_wait:
            words += f" (a later {trigger.event_name} does not restart the wait)"
    elif kind == "date_reminder":
        reminder = trigger.date_reminder
        offset = reminder.offset_seconds
        side = "before" if offset < 0 else "after"
        when = f"{duration_words(abs(offset))} {side}" if offset else "at"
        words += f", {when} its {reminder.property}"
    if trigger.person_cooldown_seconds:
        words += f"; at most once per person per {duration_words(trigger.person_cooldown_seconds)}"
    if trigger.HasField("start_time") and (
        since is None or trigger.start_time.ToDatetime(UTC) > since + timedelta(seconds=1)
    ):
        words += f"; from {_moment(trigger.start_time)}"
    if trigger.HasField("end_time"):
        words += f"; until {_moment(trigger.end_time)}"
    return words


def duration_words(seconds: int) -> str:
    """A length of time in its largest whole unit: 90 s, 10 min, 24 h, 3 d (a day is
    said in hours up to 24 h)."""
    if seconds >= 2 * 86_400 and seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def condition_words(condition: segment_pb2.PropertyCondition) -> str:
    """One condition, e.g. "category = shoes", "price between 10 and 20"."""
    values = [_value_words(v) for v in condition.values]
    first = values[0] if values else "?"
    name = condition.name
    op = segment_pb2.PropertyOperator.Name(condition.operator)
    op = op.removeprefix("PROPERTY_OPERATOR_").lower()
    phrases = {
        "equals": f"{name} = {first}",
        "not_equals": f"{name} != {first}",
        "in": f"{name} in ({', '.join(values)})",
        "contains": f"{name} contains {first}",
        "starts_with": f"{name} starts with {first}",
        "greater_than": f"{name} > {first}",
        "less_than": f"{name} < {first}",
        "between": f"{name} between {first} and {values[1] if len(values) > 1 else '?'}",
        "exists": f"{name} is set",
        "not_exists": f"{name} is not set",
        "within_last_days": f"{name} within the last {condition.days} days",
        "more_than_days_ago": f"{name} more than {condition.days} days ago",
        "within_next_days": f"{name} within the next {condition.days} days",
    }
    return phrases.get(op, f"{name} {op} {', '.join(values)}")


def _where(conditions: Any) -> str:
    if not conditions:
        return ""
    return " where " + " and ".join(condition_words(c) for c in conditions)


def _value_words(value: profile_pb2.PropertyValue) -> str:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return f"{value.number_value:g}"
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "timestamp_value":
        return _moment(value.timestamp_value)
    if kind == "string_list_value":
        return "[" + ", ".join(value.string_list_value.values) + "]"
    return value.string_value


def _moment(stamp: Timestamp) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
