"""A run's conversion goal (clarion.common.v1.ConversionGoal): checked when the run
starts, kept with it as compact JSON, and handed to reporting with the run's audience
(RecordRunAudienceRequest.conversion_goal), which attributes conversions by it. Delivery
itself does nothing else with it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from clarion.common.v1 import common_pb2
from services.kit.errors import InvalidArgument

MAX_EVENT_NAME_LENGTH = 128
MAX_REVENUE_PROPERTY_LENGTH = 64
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 30 * 24 * 3600
# One line of text: no control characters, no line breaks or tabs.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ConversionGoal:
    event_name: str
    window_seconds: int
    # A numeric property of the event that is its revenue; "": none.
    revenue_property: str = ""

    def to_json(self) -> str:
        """delivery_runs.conversion_goal: compact JSON by the proto's field names."""
        document: dict[str, str | int] = {
            "event_name": self.event_name,
            "window_seconds": self.window_seconds,
        }
        if self.revenue_property:
            document["revenue_property"] = self.revenue_property
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def to_proto(self) -> common_pb2.ConversionGoal:
        return common_pb2.ConversionGoal(
            event_name=self.event_name,
            window_seconds=self.window_seconds,
            revenue_property=self.revenue_property,
        )


def goal_from_json(text: str) -> ConversionGoal | None:
    """A stored goal; None for "" (the run has none)."""
    if not text:
        return None
    document = json.loads(text)
    return ConversionGoal(
        event_name=document["event_name"],
        window_seconds=int(document["window_seconds"]),
        revenue_property=document.get("revenue_property", ""),
    )


def goal_from_proto(message: common_pb2.ConversionGoal) -> ConversionGoal:
    """The goal of a StartDeliveryRun request (set), or INVALID_ARGUMENT
    INVALID_CONVERSION_GOAL naming the field."""
    name = message.event_name
    if not name or len(name) > MAX_EVENT_NAME_LENGTH or _NOT_ONE_LINE.search(name):
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"conversion_goal.event_name must be 1-{MAX_EVENT_NAME_LENGTH} characters on "
            "one line (the goal event's name)",
            field="conversion_goal.event_name",
        )
    if not MIN_WINDOW_SECONDS <= message.window_seconds <= MAX_WINDOW_SECONDS:
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"conversion_goal.window_seconds is {message.window_seconds}; give "
            f"{MIN_WINDOW_SECONDS} to {MAX_WINDOW_SECONDS} (60 seconds to 30 days)",
            field="conversion_goal.window_seconds",
        )
    revenue = message.revenue_property
    if len(revenue) > MAX_REVENUE_PROPERTY_LENGTH or _NOT_ONE_LINE.search(revenue):
        raise InvalidArgument(
            "INVALID_CONVERSION_GOAL",
            f"conversion_goal.revenue_property must be at most {MAX_REVENUE_PROPERTY_LENGTH} "
            "characters on one line",
            field="conversion_goal.revenue_property",
        )
    return ConversionGoal(name, message.window_seconds, revenue)


__all__ = ["ConversionGoal", "goal_from_json", "goal_from_proto"]
