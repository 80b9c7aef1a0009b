"""A run's conversion goal (clarion.common.v1.ConversionGoal): checked when the run
starts, kept with it as compact JSON, and handed to reporting with the run's audience
(RecordRunAudienceRequest.conversion_goal), which attributes conversions by it. Delivery
itself does nothing else with it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from clarion.common.v1 import common_pb2
from services.kit.goals import check_conversion_goal


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
    check_conversion_goal(message.event_name, message.window_seconds, message.revenue_property)
    return ConversionGoal(message.event_name, message.window_seconds, message.revenue_property)


__all__ = ["ConversionGoal", "goal_from_json", "goal_from_proto"]
