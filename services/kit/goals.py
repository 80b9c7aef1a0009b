"""The one rule for a conversion goal (clarion.common.v1.ConversionGoal): campaign checks
it when a campaign keeps it, delivery when a run carries it, reporting when it records
it; all three refuse the same goals the same way."""

from __future__ import annotations

import re

from services.kit.errors import InvalidArgument

MAX_EVENT_NAME_LENGTH = 128
MAX_REVENUE_PROPERTY_LENGTH = 64
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 30 * 24 * 3600
# One line of text: no control characters, line breaks or tabs.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")


def check_conversion_goal(
    event_name: str, window_seconds: int, revenue_property: str, *, field: str = "conversion_goal"
) -> None:
    """InvalidArgument INVALID_CONVERSION_GOAL naming the wrong part of the goal."""
    if (
        not event_name.strip()
        or len(event_name) > MAX_EVENT_NAME_LENGTH
        or _NOT_ONE_LINE.search(event_name)
    ):
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"{field}.event_name must be the goal event's name: one line of 1 to "
            f'{MAX_EVENT_NAME_LENGTH} characters (e.g. "Charged")',
            field=f"{field}.event_name",
        )
    if not MIN_WINDOW_SECONDS <= window_seconds <= MAX_WINDOW_SECONDS:
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"{field}.window_seconds is {window_seconds}; a conversion counts "
            f"{MIN_WINDOW_SECONDS} seconds to {MAX_WINDOW_SECONDS} (30 days) after the push",
            field=f"{field}.window_seconds",
        )
    if len(revenue_property) > MAX_REVENUE_PROPERTY_LENGTH or _NOT_ONE_LINE.search(
        revenue_property
    ):
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"{field}.revenue_property must be one line of at most "
            f"{MAX_REVENUE_PROPERTY_LENGTH} characters, or empty",
            field=f"{field}.revenue_property",
        )
