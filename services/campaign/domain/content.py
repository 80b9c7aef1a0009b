"""The one owner of notification content: what a notification may hold, and the push
payloads it becomes.

A notification is the contract's own message (clarion.common.v1.Notification), stored
serialized; it reaches the browser as a clarion.common.v1.PushPayload JSON object that
this module renders, leaving the per-recipient fields to delivery. A new notification
field touches the two messages in common.proto and this module, nothing else.

Title, body, target_url and each action's title and url are Jinja2 templates
(services/kit/templates.py) reading `profile.<property>` and, in a live campaign,
`event.<property>`. The payload keeps them as templates: delivery renders them for each
recipient. What a browser cannot show is data (domain/browsers.py): its recipients get a
copy of the payload without those fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from google.protobuf import json_format

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain.browsers import ALL_BROWSERS, RULES, BrowserRule
from services.kit import templates
from services.kit.errors import InvalidArgument

MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 1024
MAX_URL_LENGTH = 2048
MAX_ACTIONS = 2
MAX_ACTION_TITLE_LENGTH = 64
MAX_TAG_LENGTH = 64
# RFC 8291 with one 4096-byte aes128gcm record: 4096 - 86 header - 16 tag - 1 delimiter,
# less the room delivery needs for each recipient's subscriber_id and engagement_token.
MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1
PER_RECIPIENT_ROOM = 256
MAX_SHARED_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES - PER_RECIPIENT_ROOM
# Run ids are only known when a run starts; this one has the same length (new_id: 32 hex).
PLACEHOLDER_RUN_ID = "run_" + "f" * 32
# The PushPayload contract's version (common.proto): every payload carries it, and a
# service worker refuses one it does not know.
PAYLOAD_VERSION = 1

Notification = common_pb2.Notification

# The notification field each PushPayload field comes from (for messages naming it).
_SOURCE_FIELDS = {
    "title": "title",
    "body": "body",
    "icon": "icon_url",
    "image": "image_url",
    "url": "target_url",
    "badge": "badge_url",
    "actions": "actions",
    "require_interaction": "require_interaction",
    "silent": "silent",
    "tag": "tag",
    "renotify": "renotify",
}
# Fields holding an image's URL: shown as given, never templates.
_IMAGE_URL_FIELDS = ("icon_url", "image_url", "badge_url")
_UTM_FIELDS = ("source", "medium", "campaign", "content", "term")
# What the size check renders templates with: no property has a value, so each prints
# its fallback (its own `default(...)`, else the campaign's missing-value text).
_NO_VALUES: Mapping[str, Mapping[str, Any]] = {name: {} for name in templates.NAMESPACES}
_POSITION_PREFIX = re.compile(r"^line \d+(, column \d+)?: ")


@dataclass(frozen=True)
class ContentWarning:
    """Something a campaign may do, but some recipients will not see as written."""

    reason: str  # e.g. "SAFARI_FIELDS_DROPPED"
    field: str  # e.g. "notification.icon_url"
    message: str  # for a person


@dataclass(frozen=True)
class RunContentParts:
    """What a run sends, fixed when it starts."""

    # The PushPayload JSON for every browser without its own.
    payload: bytes
    # common_pb2.Browser value -> payload, only browsers whose copy differs (Safari).
    browser_payloads: dict[int, bytes]
    # The profile properties the templates read (sorted).
    profile_properties: tuple[str, ...]
    # The event properties the templates read (sorted).
    event_properties: tuple[str, ...]
    suppress_missing_values: bool
    missing_value_text: str
    topic: str


def validate(
    notification: Notification,
    campaign_id: str,
    *,
    site_id: str,
    personalization: campaign_pb2.Personalization | None = None,
    utm: campaign_pb2.UtmParameters | None = None,
    live: bool = False,
    possible_browsers: Collection[int] = ALL_BROWSERS,
) -> list[ContentWarning]:
    """Raises InvalidArgument naming the first field that is wrong; returns what some
    recipients will miss (fields the browsers in `possible_browsers` cannot show).

    `live`: the campaign is triggered by events, so its templates may read `event`."""
    namespaces = templates.NAMESPACES if live else ("profile",)
    if not notification.title.strip():
        raise InvalidArgument(
            "MISSING_TITLE", "the notification needs a title", field="notification.title"
        )
    _check_length("notification.title", notification.title, MAX_TITLE_LENGTH, "INVALID_TITLE")
    _check_template("notification.title", notification.title, namespaces)
    _check_length("notification.body", notification.body, MAX_BODY_LENGTH, "INVALID_BODY")
    _check_template("notification.body", notification.body, namespaces)
    for name in _IMAGE_URL_FIELDS:
        _check_static_url(f"notification.{name}", getattr(notification, name))
    _check_click_url("notification.target_url", notification.target_url, namespaces)
    _check_actions(notification, namespaces)
    _check_tag(notification)
    browsers = set(possible_browsers)
    rules = [(browser, RULES[browser]) for browser in sorted(browsers & RULES.keys())]
    for _, rule in rules:
        if rule.needs_click_url and not notification.target_url:
            raise InvalidArgument(
                "MISSING_DEEPLINK",
                f"{rule.name} requires a deeplink: a click on the notification opens "
                f"nothing without one. Set notification.target_url, or narrow the audience "
                f"with a browser condition that leaves out {rule.name}",
                field="notification.target_url",
            )
    # Each payload must fit as a recipient gets it (every template printing its fallback
    # value, the longest it prints without values) and as delivery takes it (templates
    # as written).
    measured = _payload_fields(
        notification,
        site_id,
        campaign_id,
        PLACEHOLDER_RUN_ID,
        text=_measured(_missing_text(personalization)),
        click=_measured_click(_missing_text(personalization), _utm_params(utm)),
    )
    as_sent = run_content(
        notification, campaign_id, PLACEHOLDER_RUN_ID, site_id=site_id, utm=utm
    )
    _check_size(
        max(
            len(payload)
            for payload in (
                *_browser_copies(measured).values(),
                as_sent.payload,
                *as_sent.browser_payloads.values(),
            )
        )
    )
    return [
        ContentWarning(
            f"{rule.warning_code}_FIELDS_DROPPED",
            f"notification.{_SOURCE_FIELDS[field]}",
            f"{rule.name} cannot show notification.{_SOURCE_FIELDS[field]}: its recipients "
            "get the notification without it",
        )
        for _, rule in rules
        for field in _dropped(rule, measured)
    ]


def run_content(
    notification: Notification,
    campaign_id: str,
    run_id: str,
    *,
    site_id: str,
    personalization: campaign_pb2.Personalization | None = None,
    utm: campaign_pb2.UtmParameters | None = None,
    topic: str = "",
    test: bool = False,
) -> RunContentParts:
    """The payloads and options of a run of a (valid) notification: templates kept for
    delivery to render, static click URLs given their UTM parameters now. `test`: a
    test send's, every payload marked test."""
    params = _utm_params(utm)
    query = urlencode(params)

    def click(url: str) -> str:
        if templates.is_template(url):
            # Delivery renders it, checks the result and adds the UTM parameters.
            return templates.wrap_click_url(url, query)
        return templates.add_query(url, params)

    fields = _payload_fields(
        notification, site_id, campaign_id, run_id, text=_as_is, click=click
    )
    if test:
        fields["test"] = True  # no browser rule drops it: every copy has it
    parts = _browser_copies(fields)
    variables = template_variables(notification)
    suppress = (
        personalization is not None
        and personalization.on_missing == campaign_pb2.MISSING_VALUE_ACTION_SUPPRESS
    )
    return RunContentParts(
        payload=parts[None],
        browser_payloads={
            browser: payload for browser, payload in parts.items() if browser is not None
        },
        profile_properties=tuple(sorted(variables.profile)),
        event_properties=tuple(sorted(variables.event)),
        suppress_missing_values=suppress,
        missing_value_text=_missing_text(personalization),
        topic=topic,
    )


def render_payload(
    notification: Notification, campaign_id: str, run_id: str, *, site_id: str
) -> bytes:
    """The run's PushPayload JSON (for every browser without its own): compact UTF-8,
    empty fields left out."""
    return run_content(notification, campaign_id, run_id, site_id=site_id).payload


def template_variables(notification: Notification) -> templates.Variables:
    """The properties the notification's templates read; InvalidArgument if one of them
    is not a template."""
    found = templates.Variables()
    for field, source in _template_fields(notification):
        found |= _check_template(field, source, templates.NAMESPACES)
    return found


def utm_query(utm: campaign_pb2.UtmParameters | None) -> str:
    """The UTM parameters as a URL query ("utm_source=...&utm_medium=..."), empty ones
    left out."""
    return urlencode(_utm_params(utm))


def _utm_params(utm: campaign_pb2.UtmParameters | None) -> list[tuple[str, str]]:
    if utm is None:
        return []
    return [(f"utm_{name}", getattr(utm, name)) for name in _UTM_FIELDS if getattr(utm, name)]


def _missing_text(personalization: campaign_pb2.Personalization | None) -> str:
    return personalization.missing_value_text if personalization is not None else ""


def _template_fields(notification: Notification) -> list[tuple[str, str]]:
    fields = [
        ("notification.title", notification.title),
        ("notification.body", notification.body),
        ("notification.target_url", notification.target_url),
    ]
    for index, action in enumerate(notification.actions):
        fields.append((f"notification.actions[{index}].title", action.title))
        fields.append((f"notification.actions[{index}].url", action.url))
    return fields


def _payload_fields(
    notification: Notification,
    site_id: str,
    campaign_id: str,
    run_id: str,
    *,
    text: Callable[[str], str],
    click: Callable[[str], str],
) -> dict[str, Any]:
    """The PushPayload as JSON fields, empty ones left out; `text` and `click` make a
    text field's and a click URL's value from its source."""
    payload = common_pb2.PushPayload(
        title=text(notification.title),
        body=text(notification.body),
        icon=notification.icon_url,
        image=notification.image_url,
        url=click(notification.target_url) if notification.target_url else "",
        campaign_id=campaign_id,
        run_id=run_id,
        badge=notification.badge_url,
        actions=[
            common_pb2.PushAction(
                action=f"action_{number}",
                title=text(action.title),
                url=click(action.url) if action.url else "",
                icon=action.icon_url,
            )
            for number, action in enumerate(notification.actions, start=1)
        ],
        require_interaction=notification.require_interaction,
        silent=notification.silent,
        tag=notification.tag,
        renotify=notification.renotify,
        site_id=site_id,
        version=PAYLOAD_VERSION,
    )
    return json_format.MessageToDict(payload, preserving_proto_field_name=True)


def _browser_copies(fields: Mapping[str, Any]) -> dict[int | None, bytes]:
    """The payload every browser gets (key None) and a copy for each browser whose rule
    drops a field the payload has."""
    parts: dict[int | None, bytes] = {None: _encode(fields)}
    for browser, rule in RULES.items():
        if _dropped(rule, fields):
            parts[browser] = _encode({k: v for k, v in fields.items() if k not in rule.drops})
    return parts


def _dropped(rule: BrowserRule, fields: Mapping[str, Any]) -> list[str]:
    """The payload fields present in `fields` that the browser cannot show, in payload
    order."""
    return [name for name in fields if name in rule.drops]


def _encode(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def _as_is(source: str) -> str:
    return source


def _measured(missing_text: str) -> Callable[[str], str]:
    """A template's longest fallback rendering, for the size check."""
    missing = templates.MissingValues(text=missing_text)

    def text(source: str) -> str:
        if not templates.is_template(source):
            return source
        try:
            return templates.render(source, _NO_VALUES, missing)
        except templates.RenderRefused:
            # Needs a value to render at all (`profile.count + 1`): its source stands in.
            return source

    return text


def _measured_click(missing_text: str, params: list[tuple[str, str]]) -> Callable[[str], str]:
    text = _measured(missing_text)
    return lambda url: templates.add_query(text(url), params)


def _check_size(size: int) -> None:
    if size > MAX_SHARED_PAYLOAD_BYTES:
        raise InvalidArgument(
            "PAYLOAD_TOO_LARGE",
            f"the push message would carry {size} bytes of JSON (templates as written, or "
            f"printing their fallback values), more than the {MAX_SHARED_PAYLOAD_BYTES} bytes "
            "a Web Push "
            "message leaves for it; shorten the title, body, URLs, actions or the "
            "missing-value text",
            field="notification",
            payload_bytes=str(size),
            limit_bytes=str(MAX_SHARED_PAYLOAD_BYTES),
        )


def _check_template(
    field: str, source: str, namespaces: Collection[str]
) -> templates.Variables:
    """The properties the template `source` reads, or InvalidArgument naming the field
    and where in it the problem is."""
    if not templates.is_template(source):
        return templates.Variables()
    try:
        return templates.check(source, namespaces)
    except templates.TemplateProblem as first:
        problem, detail = first, _POSITION_PREFIX.sub("", str(first))
        if "event" not in namespaces and first.reason == "UNKNOWN_VARIABLE":
            try:
                templates.check(source, templates.NAMESPACES)
            except templates.TemplateProblem as other:
                # A problem beside reading `event`: the one a live campaign would have too.
                problem, detail = other, _POSITION_PREFIX.sub("", str(other))
            else:
                detail = (
                    "event properties are only for live campaigns (triggered by an event); "
                    "this campaign's templates may read profile.<property>"
                )
        raise InvalidArgument(
            problem.reason,
            f"{field}, line {problem.line}, column {problem.column}: {detail}",
            field=field,
            line=str(problem.line),
            column=str(problem.column),
        ) from None


def _check_actions(notification: Notification, namespaces: Collection[str]) -> None:
    # The contract's own constraint refuses more first; this guards direct callers.
    if len(notification.actions) > MAX_ACTIONS:
        raise InvalidArgument(
            "TOO_MANY_ACTIONS",
            f"a notification has at most {MAX_ACTIONS} actions, got {len(notification.actions)}",
            field="notification.actions",
        )
    for index, action in enumerate(notification.actions):
        prefix = f"notification.actions[{index}]"
        if not action.title.strip():
            raise InvalidArgument(
                "MISSING_ACTION_TITLE", "an action needs a title", field=f"{prefix}.title"
            )
        _check_length(
            f"{prefix}.title", action.title, MAX_ACTION_TITLE_LENGTH, "INVALID_ACTION_TITLE"
        )
        _check_template(f"{prefix}.title", action.title, namespaces)
        if not action.url:
            raise InvalidArgument(
                "INVALID_URL",
                "an action needs a url: where a click on it leads",
                field=f"{prefix}.url",
            )
        _check_click_url(f"{prefix}.url", action.url, namespaces)
        _check_static_url(f"{prefix}.icon_url", action.icon_url)


def _check_tag(notification: Notification) -> None:
    tag = notification.tag
    _check_length("notification.tag", tag, MAX_TAG_LENGTH, "INVALID_TAG")
    if templates.is_template(tag) or any(c in tag for c in "\r\n"):
        raise InvalidArgument(
            "INVALID_TAG",
            "notification.tag is one line of plain text (not a template)",
            field="notification.tag",
        )
    if notification.renotify and not tag:
        # Browsers throw on showing such a notification (Notifications API).
        raise InvalidArgument(
            "RENOTIFY_WITHOUT_TAG",
            "renotify alerts again when a notification replaces one with the same tag; "
            "set notification.tag too",
            field="notification.renotify",
        )


def _check_length(field: str, value: str, limit: int, reason: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            reason, f"{field} is {len(value)} characters; at most {limit} are allowed", field=field
        )


def _check_click_url(field: str, url: str, namespaces: Collection[str]) -> None:
    """A URL a click leads to: a template (its rendering is checked per recipient by
    delivery), else an absolute http(s) URL."""
    if templates.is_template(url):
        _check_length(field, url, MAX_URL_LENGTH, "INVALID_URL")
        _check_template(field, url, namespaces)
    else:
        _check_static_url(field, url)


def _check_static_url(field: str, url: str) -> None:
    if not url:
        return
    _check_length(field, url, MAX_URL_LENGTH, "INVALID_URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    shown = url if len(url) <= 80 else url[:77] + "..."
    if templates.is_template(url):
        raise InvalidArgument(
            "INVALID_URL",
            f"{field} is used as it is, it cannot be a template; got {shown!r}",
            field=field,
        )
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not host
        or any(c.isspace() or ord(c) < 0x20 for c in url)
    ):
        raise InvalidArgument(
            "INVALID_URL",
            f"{field} must be an absolute https:// (or http://) URL, got {shown!r}",
            field=field,
        )
