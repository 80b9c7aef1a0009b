"""A run's description (clarion.common.v1.RunDescription): the campaign's notification
title and UTM parameters as the site wrote them, for reporting's webhooks. Checked when
the run starts, kept with it as compact JSON, and handed to reporting when the run is
recorded there (RecordRunAudienceRequest.description). Delivery itself does nothing
else with it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from clarion.common.v1 import common_pb2
from services.kit.errors import InvalidArgument

# As the proto's constraints say.
MAX_TITLE_LENGTH = 1024
MAX_UTM_LENGTH = 128
MAX_VARIANT_TITLES = 5
MAX_VARIANT_ID_LENGTH = 16
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_VARIANT_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
# NUL and the other C0 controls and DEL; tab, newline and carriage return are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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


def _check_text(value: str, field: str, most: int) -> None:
    if len(value) > most:
        raise InvalidArgument(
            "INVALID_RUN_DESCRIPTION",
            f"{field} is {len(value)} characters; give at most {most}",
            field=field,
        )
    if _CONTROL.search(value):
        raise InvalidArgument(
            "INVALID_RUN_DESCRIPTION",
            f"{field} must not contain NUL or other control characters",
            field=field,
        )


def description_from_proto(message: common_pb2.RunDescription) -> RunDescription:
    """The description of a StartDeliveryRun request (set), or INVALID_ARGUMENT
    INVALID_RUN_DESCRIPTION naming the field."""
    where = "description"
    _check_text(message.notification_title, f"{where}.notification_title", MAX_TITLE_LENGTH)
    for name in UTM_FIELDS:
        _check_text(getattr(message, name), f"{where}.{name}", MAX_UTM_LENGTH)
    if len(message.variant_titles) > MAX_VARIANT_TITLES:
        raise InvalidArgument(
            "INVALID_RUN_DESCRIPTION",
            f"{len(message.variant_titles)} variant titles; a run has at most "
            f"{MAX_VARIANT_TITLES} variants",
            field=f"{where}.variant_titles",
        )
    seen: set[str] = set()
    for index, variant in enumerate(message.variant_titles):
        field = f"{where}.variant_titles[{index}]"
        if (
            not variant.variant_id
            or len(variant.variant_id) > MAX_VARIANT_ID_LENGTH
            or not _VARIANT_ID.match(variant.variant_id)
            or variant.variant_id in seen
        ):
            raise InvalidArgument(
                "INVALID_RUN_DESCRIPTION",
                f"{field}.variant_id must be a variant's id (1-{MAX_VARIANT_ID_LENGTH} "
                "characters of A-Z a-z 0-9 _ . : -), each once",
                field=f"{field}.variant_id",
            )
        seen.add(variant.variant_id)
        _check_text(variant.notification_title, f"{field}.notification_title", MAX_TITLE_LENGTH)
    return RunDescription(
        notification_title=message.notification_title,
        **{name: getattr(message, name) for name in UTM_FIELDS},
        variant_titles=tuple((v.variant_id, v.notification_title) for v in message.variant_titles),
    )


__all__ = ["RunDescription", "description_from_json", "description_from_proto"]
