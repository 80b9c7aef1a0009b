"""A run's description (clarion.common.v1.RunDescription): the campaign's notification
title and UTM parameters as the site wrote them, for reporting's webhooks. Checked when
the run starts, kept with it as compact JSON, and handed to reporting when the run is
recorded there (RecordRunAudienceRequest.description). Delivery itself does nothing
else with it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from clarion.common.v1 import common_pb2
from services.kit.errors import InvalidArgument
from services.kit.validation import InvalidField, check_request

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


@dataclass(frozen=True)
class RunDescription:
    notification_title: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""
    # (variant id, its title) of each A/B variant, in the campaign's order.
    variant_titles: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        """delivery_runs.description: compact JSON by the proto's field names, empty
        ones left out ("{}" for an empty description, "" only for none)."""
        document: dict[str, object] = {
            name: getattr(self, name)
            for name in ("notification_title", *UTM_FIELDS)
            if getattr(self, name)
        }
        if self.variant_titles:
            document["variant_titles"] = [list(pair) for pair in self.variant_titles]
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def to_proto(self) -> common_pb2.RunDescription:
        return common_pb2.RunDescription(
            notification_title=self.notification_title,
            utm_source=self.utm_source,
            utm_medium=self.utm_medium,
            utm_campaign=self.utm_campaign,
            utm_content=self.utm_content,
            utm_term=self.utm_term,
            variant_titles=[
                common_pb2.VariantTitle(variant_id=variant_id, notification_title=title)
                for variant_id, title in self.variant_titles
            ],
        )


def description_from_json(text: str) -> RunDescription | None:
    """A stored description; None for "" (the run was started without one)."""
    if not text:
        return None
    document = json.loads(text)
    return RunDescription(
        notification_title=document.get("notification_title", ""),
        **{name: document.get(name, "") for name in UTM_FIELDS},
        variant_titles=tuple(
            (variant_id, title) for variant_id, title in document.get("variant_titles", ())
        ),
    )


def description_from_proto(message: common_pb2.RunDescription) -> RunDescription:
    """The description of a StartDeliveryRun request (set), or INVALID_ARGUMENT
    INVALID_RUN_DESCRIPTION naming the field. The proto's own limits (lengths, control
    characters, variant ids, at most 5 variants) are the kit's request checks; only
    "every variant named, each once" is delivery's."""
    where = "description"
    try:
        check_request(message)
    except InvalidField as problem:
        field = f"{where}.{problem.metadata['field']}"
        raise InvalidArgument(
            "INVALID_RUN_DESCRIPTION", f"{where}.{problem.message}", field=field
        ) from None
    seen: set[str] = set()
    for index, variant in enumerate(message.variant_titles):
        if not variant.variant_id or variant.variant_id in seen:
            field = f"{where}.variant_titles[{index}].variant_id"
            raise InvalidArgument(
                "INVALID_RUN_DESCRIPTION",
                f"{field} must name a variant, each once",
                field=field,
            )
        seen.add(variant.variant_id)
    return RunDescription(
        notification_title=message.notification_title,
        **{name: getattr(message, name) for name in UTM_FIELDS},
        variant_titles=tuple((v.variant_id, v.notification_title) for v in message.variant_titles),
    )


__all__ = ["RunDescription", "description_from_json", "description_from_proto"]
