"""What each recipient's payload is made of beyond the run's payload: the run's content
options (RunContent's fields past payload, TTL and urgency) as delivery keeps them, the
template context each recipient is queued with, and rendering a templated payload for
one recipient.

A run without options stores "" and sends its payload as campaign rendered it, with only
the per-recipient fields appended (domain/payload.py): no JSON is parsed per recipient.
A run whose payload (or a browser's payload) holds templates renders it per recipient
with services/kit/templates.py, reading `profile` (the properties the run asked segment
for) and `event` (the run's RecipientContext for the recipient's profile, else its
subscriber).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.segment.v1 import profile_pb2
from services.delivery.domain.payload import (
    MAX_PAYLOAD_BYTES,
    PayloadError,
    check_shared_payload,
    for_recipient,
)
from services.delivery.domain.policies import person_key
from services.delivery.domain.rules import Reason
from services.kit.errors import InvalidArgument
from services.kit.templates import (
    MissingValue,
    MissingValues,
    PayloadTemplate,
    RenderRefused,
    TemplateProblem,
    UnsafeTemplate,
    check,
    is_template,
    property_value,
)

# RFC 8030 §5.4: at most 32 characters of the URL- and filename-safe base64 alphabet.
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BROWSERS = frozenset(common_pb2.Browser.values()) - {common_pb2.BROWSER_UNSPECIFIED}


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ContentOptions:
    """How a run's payload is made per recipient; the default is "as it is"."""

    # The profile properties its templates read (asked of segment with every page).
    profile_properties: tuple[str, ...] = ()
    # A value a template prints without a fallback and the recipient lacks: suppress the
    # recipient (personalization_missing), or print missing_value_text.
    suppress_missing_values: bool = False
    missing_value_text: str = ""
    # clarion.common.v1.Browser number -> the payload its recipients get instead.
    browser_payloads: Mapping[int, bytes] = field(default_factory=dict)
    # The RFC 8030 Topic of every push; "": one derived from the run id.
    topic: str = ""
    # The run's payload or a browser's holds a template: rendered per recipient.
    templated: bool = False

    @property
    def missing_values(self) -> MissingValues:
        return MissingValues(self.suppress_missing_values, self.missing_value_text)

    def payload_for(self, browser: int, run_payload: bytes) -> bytes:
        """What a recipient of `browser` is sent (before rendering)."""
        return self.browser_payloads.get(browser, run_payload)

    def to_json(self) -> str:
        """Compact JSON of the fields that are set; "" when none is."""
        document: dict[str, Any] = {}
        if self.profile_properties:
            document["profile_properties"] = list(self.profile_properties)
        if self.suppress_missing_values:
            document["suppress_missing_values"] = True
        if self.missing_value_text:
            document["missing_value_text"] = self.missing_value_text
        if self.browser_payloads:
            document["browser_payloads"] = {
                str(browser): payload.decode()
                for browser, payload in sorted(self.browser_payloads.items())
            }
        if self.topic:
            document["topic"] = self.topic
        if self.templated:
            document["templated"] = True
        return _compact(document) if document else ""

    @classmethod
    def from_json(cls, text: str) -> ContentOptions:
        if not text:
            return NO_OPTIONS
        document = json.loads(text)
        return cls(
            profile_properties=tuple(document.get("profile_properties", ())),
            suppress_missing_values=bool(document.get("suppress_missing_values", False)),
            missing_value_text=document.get("missing_value_text", ""),
            browser_payloads={
                int(browser): payload.encode()
                for browser, payload in document.get("browser_payloads", {}).items()
            },
            topic=document.get("topic", ""),
            templated=bool(document.get("templated", False)),
        )


NO_OPTIONS = ContentOptions()


def content_options(
    content: delivery_pb2.RunContent, payload: bytes, where: str = "content"
) -> ContentOptions:
    """The run's options from its RunContent (`payload` has passed check_shared_payload);
    INVALID_ARGUMENT naming the field for what delivery could not follow, and for a
    template that could never render. `where`: the RunContent's path in the request
    ("content", or a variant's "variants[i].content")."""
    for index, name in enumerate(content.profile_properties):
        if not name:
            raise InvalidArgument(
                "INVALID_PROPERTY_NAME",
                f"{where}.profile_properties[{index}] is empty; name a profile property",
                field=f"{where}.profile_properties[{index}]",
            )
    if content.topic and not _TOPIC.match(content.topic):
        raise InvalidArgument(
            "INVALID_TOPIC",
            f"{where}.topic must be at most 32 characters of A-Z a-z 0-9 - _",
            field=f"{where}.topic",
        )
    templated = _check_templates(payload, f"{where}.payload")
    browser_payloads: dict[int, bytes] = {}
    for index, item in enumerate(content.browser_payloads):
        at = f"{where}.browser_payloads[{index}]"
        if item.browser not in _BROWSERS or item.browser in browser_payloads:
            again = " (it was given twice)" if item.browser in browser_payloads else ""
            raise InvalidArgument(
                "INVALID_BROWSER",
                f"{at}.browser must name a browser, each at most once{again}",
                field=f"{at}.browser",
            )
        try:
            check_shared_payload(item.payload)
            item.payload.decode()
        except PayloadError as error:
            message = str(error).replace("content.payload", f"{at}.payload")
            raise InvalidArgument("INVALID_PAYLOAD", message, field=f"{at}.payload") from None
        except UnicodeDecodeError:
            raise InvalidArgument(
                "INVALID_PAYLOAD", f"{at}.payload is not UTF-8 JSON", field=f"{at}.payload"
            ) from None
        templated = _check_templates(item.payload, f"{at}.payload") or templated
        browser_payloads[item.browser] = item.payload
    return ContentOptions(
        profile_properties=tuple(dict.fromkeys(content.profile_properties)),
        suppress_missing_values=content.suppress_missing_values,
        missing_value_text=content.missing_value_text,
        browser_payloads=browser_payloads,
        topic=content.topic,
        templated=templated,
    )


@dataclass(frozen=True)
class VariantContent:
    """One A/B variant of a run (RunVariant): its share and what its recipients get."""

    variant_id: str
    weight_percent: int
    payload: bytes = field(repr=False)
    options: ContentOptions = NO_OPTIONS


def variant_run_options(variants: Sequence[VariantContent]) -> ContentOptions:
    """The run row's options for a run with variants: its first variant's, asking
    segment for every variant's profile properties, templated if any variant is (the
    senders then render each recipient's variant)."""
    first = variants[0].options
    properties = dict.fromkeys(p for v in variants for p in v.options.profile_properties)
    return replace(
        first,
        profile_properties=tuple(properties),
        templated=any(v.options.templated for v in variants),
    )


def _check_templates(payload: bytes, where: str) -> bool:
    """Whether the payload holds a template; INVALID_ARGUMENT (the kit's reason:
    INVALID_TEMPLATE, UNKNOWN_VARIABLE, UNSAFE_TEMPLATE) for one that cannot render."""
    templated = False
    for text in _strings(json.loads(payload)):
        if not is_template(text):
            continue
        templated = True
        try:
            check(text)
        except TemplateProblem as problem:
            raise InvalidArgument(problem.reason, f"{where}: {problem}", field=where) from None
    return templated


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


# Per-recipient contexts.


@dataclass(frozen=True)
class RunContext:
    """What a listed profile's (or else subscriber's) templates read as `event`."""

    person_key: str
    # Compact JSON object of the event's properties, as plain values.
    event_properties: str


def plain_value(value: profile_pb2.PropertyValue) -> Any:
    """A typed property value as plain JSON, as a template reads it: a string, a number
    (whole ones without ".0"), a bool, a timestamp as ISO 8601, a list of strings; None
    when it holds none."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return property_value(value.number_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        return property_value(value.timestamp_value.ToDatetime(tzinfo=UTC))
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    return None


def plain_properties(properties: Iterable[profile_pb2.Property]) -> dict[str, Any]:
    """Named typed values as a plain dict; a property without a value is left out."""
    plain = {}
    for item in properties:
        converted = plain_value(item.value)
        if converted is not None:
            plain[item.name] = converted
    return plain


def run_contexts(contexts: Sequence[delivery_pb2.RecipientContext]) -> list[RunContext]:
    """The run's contexts, keyed by person, event properties as compact JSON.
    INVALID_ARGUMENT unless each names exactly one of a profile and a subscriber, each
    person at most once, and every event property has a name."""
    made: dict[str, RunContext] = {}
    for index, context in enumerate(contexts):
        where = f"audience.contexts[{index}]"
        if bool(context.profile_id) == bool(context.subscriber_id):
            raise InvalidArgument(
                "INVALID_CONTEXT",
                f"{where} must name a profile_id or a subscriber_id, not both",
                field=where,
            )
        key = person_key(context.profile_id, context.subscriber_id)
        if key in made:
            what = "profile" if context.profile_id else "subscriber"
            raise InvalidArgument(
                "DUPLICATE_CONTEXT",
                f"{where} is a second context for {what} "
                f"{context.profile_id or context.subscriber_id!r}; give at most one each",
                field=where,
            )
        for number, item in enumerate(context.event_properties):
            if not item.name:
                raise InvalidArgument(
                    "INVALID_PROPERTY_NAME",
                    f"{where}.event_properties[{number}].name is empty",
                    field=f"{where}.event_properties[{number}].name",
                )
        made[key] = RunContext(key, _compact(plain_properties(context.event_properties)))
    return list(made.values())


def recipient_context(profile: Mapping[str, Any], event_properties: str) -> str:
    """A recipient's context column: compact JSON {"profile": {...}, "event": {...}}
    without the empty ones; "" when both are (its templates then read {} for each)."""
    parts = []
    if profile:
        parts.append('"profile":' + _compact(profile))
    if event_properties and event_properties != "{}":
        parts.append('"event":' + event_properties)
    return "{" + ",".join(parts) + "}" if parts else ""


def template_context(context: str) -> dict[str, Any]:
    """What a recipient's templates read, from its context column."""
    stored = json.loads(context) if context else {}
    return {"profile": stored.get("profile", {}), "event": stored.get("event", {})}


# Rendering.


def compile_payload(payload: bytes, options: ContentOptions) -> PayloadTemplate | None:
    """The payload as a template (once per run and browser); None when it holds none
    and is sent as it is."""
    template = PayloadTemplate(payload, options.missing_values)
    return template if template.templated else None


def render_for_recipient(
    template: PayloadTemplate, context: str, subscriber_id: str, engagement_token: str
) -> bytes | Reason:
    """The recipient's payload with its per-recipient fields, or why it gets none:
    personalization_missing (it lacks a value and the run suppresses such recipients),
    payload_too_large (the rendered copy does not fit one Web Push record),
    personalization_invalid (its values made a template fail)."""
    try:
        rendered = template.render(template_context(context))
    except MissingValue:
        return Reason.PERSONALIZATION_MISSING
    except UnsafeTemplate:
        # The kit's output bound (or a repetition past it): it could not fit anyway.
        return Reason.PAYLOAD_TOO_LARGE
    except RenderRefused:
        return Reason.PERSONALIZATION_INVALID
    payload = for_recipient(rendered, subscriber_id, engagement_token)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Reason.PAYLOAD_TOO_LARGE
    return payload


__all__ = [
    "NO_OPTIONS",
    "ContentOptions",
    "RunContext",
    "VariantContent",
    "compile_payload",
    "content_options",
    "person_key",
    "plain_properties",
    "plain_value",
    "recipient_context",
    "render_for_recipient",
    "run_contexts",
    "template_context",
    "variant_run_options",
]
