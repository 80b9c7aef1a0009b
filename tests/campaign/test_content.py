"""Notification content: what validation refuses and warns about, and the payloads a run
sends (as delivery then renders them for each recipient)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain import content
from services.campaign.domain.content import (
    MAX_SHARED_PAYLOAD_BYTES,
    PAYLOAD_VERSION,
    PLACEHOLDER_RUN_ID,
    ContentWarning,
    template_variables,
    utm_query,
)
from services.kit.errors import InvalidArgument
from services.kit.templates import MissingValues, PayloadTemplate, Variables

CAMPAIGN_ID = "cmp_" + "0" * 32
SITE_ID = "shop-eu"
# The site's every payload names it; these tests are about the rest of the content.
validate = functools.partial(content.validate, site_id=SITE_ID)
run_content = functools.partial(content.run_content, site_id=SITE_ID)
SHOP = "https://shop.example/sale"
SAFARI = common_pb2.BROWSER_SAFARI
SAFARI_LEGACY = common_pb2.BROWSER_SAFARI_LEGACY
CHROME = common_pb2.BROWSER_CHROME
UTM = campaign_pb2.UtmParameters(source="clarion", medium="push", campaign="spring sale")
UTM_QUERY = "utm_source=clarion&utm_medium=push&utm_campaign=spring+sale"


def notification(**fields: Any) -> common_pb2.Notification:
    fields.setdefault("title", "Spring sale")
    fields.setdefault("target_url", SHOP)
    actions = [common_pb2.NotificationAction(**action) for action in fields.pop("actions", [])]
    return common_pb2.Notification(actions=actions, **fields)


def refused(note: common_pb2.Notification, **options: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        validate(note, CAMPAIGN_ID, **options)
    return raised.value


def decoded(payload: bytes) -> dict[str, Any]:
    return json.loads(payload)


def action(title: str = "See it", url: str = SHOP, **fields: str) -> dict[str, str]:
    return {"title": title, "url": url, **fields}


class TestTemplates:
    def test_a_syntax_error_names_the_field_and_line(self):
        error = refused(notification(body="Hello\n{{ profile.first_name }"))

        assert error.reason == "INVALID_TEMPLATE"
        assert error.metadata == {"field": "notification.body", "line": "2", "column": "1"}
        assert error.message.startswith("notification.body, line 2, column 1: ")

    def test_an_unknown_variable_names_its_column(self):
        error = refused(notification(title="Hi {{ first_name }}"))

        assert error.reason == "UNKNOWN_VARIABLE"
        assert error.metadata["field"] == "notification.title"
        assert (error.metadata["line"], error.metadata["column"]) == ("1", "7")
        assert "unknown variable 'first_name'" in error.message
        assert "profile.<property>" in error.message

    def test_event_properties_are_only_for_live_campaigns(self):
        note = notification(title="Still thinking about {{ event.product }}?")

        error = refused(note)

        assert error.reason == "UNKNOWN_VARIABLE"
        assert error.metadata["field"] == "notification.title"
        assert (error.metadata["line"], error.metadata["column"]) == ("1", "25")
        assert "only for live campaigns" in error.message
        assert validate(note, CAMPAIGN_ID, live=True, possible_browsers=[CHROME]) == []

    def test_another_problem_beside_event_is_reported_as_itself(self):
        error = refused(notification(title="{{ event.product }} {{ price }}"))

        assert error.reason == "UNKNOWN_VARIABLE"
        assert "unknown variable 'price'" in error.message

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"title": "{{ ''.__class__ }}"}, "notification.title"),
            ({"body": "{{ profile.name.upper() }}"}, "notification.body"),
            ({"target_url": "https://x.example/{{ 'a' * 10**9 }}"}, "notification.target_url"),
            (
                {"actions": [action(title="{{ lipsum.__globals__ }}")]},
                "notification.actions[0].title",
            ),
            (
                {"actions": [action(), action(url="{{ range(10**9) | list }}")]},
                "notification.actions[1].url",
            ),
        ],
    )
    def test_an_unsafe_template_is_refused(self, fields, field):
        error = refused(notification(**fields))

        assert error.reason == "UNSAFE_TEMPLATE"
        assert error.metadata["field"] == field

    def test_templated_click_urls_are_checked_as_templates(self):
        note = notification(
            target_url="{{ profile.home | default('https://shop.example/') }}",
            actions=[action(url="https://shop.example/p/{{ profile.sku | urlencode }}")],
        )

        assert validate(note, CAMPAIGN_ID, possible_browsers=[CHROME]) == []
        assert template_variables(note) == Variables(profile=frozenset({"home", "sku"}))


class TestUrls:
    @pytest.mark.parametrize("name", ["icon_url", "image_url", "badge_url"])
    @pytest.mark.parametrize(
        "url", ["https://cdn.example/{{ profile.avatar }}", "/img/a.png", "javascript:x()"]
    )
    def test_an_image_url_is_a_static_absolute_url(self, name, url):
        error = refused(notification(**{name: url}))

        assert error.reason == "INVALID_URL"
        assert error.metadata["field"] == f"notification.{name}"

    def test_an_action_icon_is_a_static_absolute_url(self):
        error = refused(notification(actions=[action(icon_url="{{ profile.icon }}")]))

        assert error.reason == "INVALID_URL"
        assert error.metadata["field"] == "notification.actions[0].icon_url"

    @pytest.mark.parametrize("url", ["/sale", "javascript:alert(1)", "data:text/html,hi"])
    def test_a_static_click_url_is_absolute_http(self, url):
        assert refused(notification(target_url=url)).metadata["field"] == (
            "notification.target_url"
        )
        error = refused(notification(actions=[action(url=url)]))

        assert error.reason == "INVALID_URL"
        assert error.metadata["field"] == "notification.actions[0].url"

    def test_each_image_url_may_be_set(self):
        note = notification(
            icon_url="https://cdn.example/i.png",
            image_url="https://cdn.example/hero.jpg",
            badge_url="https://cdn.example/badge.png",
        )

        validate(note, CAMPAIGN_ID, possible_browsers=[CHROME])


class TestActions:
    def test_at_most_two(self):
        error = refused(notification(actions=[action(), action(), action()]))

        assert error.reason == "TOO_MANY_ACTIONS"
        assert error.metadata["field"] == "notification.actions"
        validate(notification(actions=[action(), action()]), CAMPAIGN_ID, possible_browsers=[])

    @pytest.mark.parametrize("title", ["", "   "])
    def test_each_needs_a_title(self, title):
        error = refused(notification(actions=[action(), action(title=title)]))

        assert error.reason == "MISSING_ACTION_TITLE"
        assert error.metadata["field"] == "notification.actions[1].title"

    def test_a_title_has_at_most_64_characters(self):
        validate(notification(actions=[action(title="x" * 64)]), CAMPAIGN_ID, possible_browsers=[])
        error = refused(notification(actions=[action(title="x" * 65)]))

        assert error.reason == "INVALID_ACTION_TITLE"
        assert error.metadata["field"] == "notification.actions[0].title"

    def test_each_needs_a_url(self):
        error = refused(notification(actions=[action(url="")]))

        assert error.reason == "INVALID_URL"
        assert error.metadata["field"] == "notification.actions[0].url"


class TestTag:
    def test_at_most_64_characters_of_plain_text(self):
        validate(notification(tag="t" * 64), CAMPAIGN_ID, possible_browsers=[])
        for tag in ("t" * 65, "{{ profile.id }}", "two\nlines"):
            error = refused(notification(tag=tag))

            assert error.reason == "INVALID_TAG"
            assert error.metadata["field"] == "notification.tag"

    def test_renotify_needs_a_tag(self):
        error = refused(notification(renotify=True))

        assert error.reason == "RENOTIFY_WITHOUT_TAG"
        assert error.metadata["field"] == "notification.renotify"
        validate(notification(renotify=True, tag="order-7"), CAMPAIGN_ID, possible_browsers=[])


RICH = {
    "icon_url": "https://cdn.example/i.png",
    "image_url": "https://cdn.example/hero.jpg",
    "badge_url": "https://cdn.example/badge.png",
    "actions": [action()],
}


class TestBrowsers:
    def test_safari_needs_a_deeplink(self):
        error = refused(notification(target_url=""))

        assert error.reason == "MISSING_DEEPLINK"
        assert error.metadata["field"] == "notification.target_url"
        assert "Safari requires a deeplink" in error.message
        assert "target_url" in error.message and "browser condition" in error.message

    def test_an_audience_without_safari_needs_no_deeplink(self):
        note = notification(target_url="")

        assert validate(note, CAMPAIGN_ID, possible_browsers=[CHROME]) == []

    def test_warns_of_each_field_safari_drops(self):
        warnings = validate(notification(**RICH), CAMPAIGN_ID, possible_browsers=[CHROME, SAFARI])

        assert [(w.reason, w.field) for w in warnings] == [
            ("SAFARI_FIELDS_DROPPED", "notification.icon_url"),
            ("SAFARI_FIELDS_DROPPED", "notification.image_url"),
            ("SAFARI_FIELDS_DROPPED", "notification.badge_url"),
            ("SAFARI_FIELDS_DROPPED", "notification.actions"),
        ]
        assert "without it" in warnings[0].message

    def test_no_warning_when_safari_is_not_in_the_audience_or_nothing_is_dropped(self):
        assert validate(notification(**RICH), CAMPAIGN_ID, possible_browsers=[CHROME]) == []
        note = notification(body="b", tag="t", silent=True)
        assert validate(note, CAMPAIGN_ID, possible_browsers=[CHROME, SAFARI]) == []

    def test_the_default_audience_may_hold_safari_and_legacy_safari(self):
        warnings = validate(notification(icon_url=RICH["icon_url"]), CAMPAIGN_ID)

        assert warnings == [
            ContentWarning(
                "SAFARI_FIELDS_DROPPED",
                "notification.icon_url",
                "Safari cannot show notification.icon_url: its recipients get the "
                "notification without it",
            ),
            ContentWarning(
                "SAFARI_LEGACY_FIELDS_DROPPED",
                "notification.icon_url",
                "Legacy Safari cannot show notification.icon_url: its recipients get the "
                "notification without it",
            ),
        ]

    def test_legacy_safari_shows_title_body_and_the_click_url_only(self):
        note = notification(body="b", tag="t", silent=True, **RICH)
        warnings = validate(note, CAMPAIGN_ID, possible_browsers=[SAFARI_LEGACY])

        assert [(w.reason, w.field) for w in warnings] == [
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.icon_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.image_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.badge_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.actions"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.silent"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.tag"),
        ]

    def test_legacy_safari_needs_a_deeplink(self):
        note = notification(target_url="")
        with pytest.raises(InvalidArgument) as raised:
            validate(note, CAMPAIGN_ID, possible_browsers=[SAFARI_LEGACY])

        assert raised.value.reason == "MISSING_DEEPLINK"
        assert "Legacy Safari requires a deeplink" in raised.value.message


def size_of(note: common_pb2.Notification, **options: Any) -> int:
    return len(run_content(note, CAMPAIGN_ID, PLACEHOLDER_RUN_ID, **options).payload)


def padding(size: int) -> str:
    """Text of `size` UTF-8 bytes in as few characters as it takes."""
    return "€" * (size // 3) + "T" * (size % 3)


class TestSize:
    def test_fits_at_the_limit_and_not_a_byte_past_it(self):
        body = "€" * 1024
        title = padding(MAX_SHARED_PAYLOAD_BYTES - size_of(notification(body=body, title="T")) + 1)
        assert size_of(notification(body=body, title=title)) == MAX_SHARED_PAYLOAD_BYTES

        validate(notification(body=body, title=title), CAMPAIGN_ID)
        error = refused(notification(body=body, title=title + "T"))

        assert error.reason == "PAYLOAD_TOO_LARGE"
        assert error.metadata == {
            "field": "notification",
            "payload_bytes": str(MAX_SHARED_PAYLOAD_BYTES + 1),
            "limit_bytes": str(MAX_SHARED_PAYLOAD_BYTES),
        }

    def test_counts_the_site_id_the_payload_carries(self):
        body = "€" * 1024
        title = padding(MAX_SHARED_PAYLOAD_BYTES - size_of(notification(body=body, title="T")) + 1)
        note = notification(body=body, title=title)

        content.validate(note, CAMPAIGN_ID, site_id=SITE_ID)
        with pytest.raises(InvalidArgument) as raised:
            content.validate(note, CAMPAIGN_ID, site_id=SITE_ID + "-x")

        assert raised.value.metadata["payload_bytes"] == str(MAX_SHARED_PAYLOAD_BYTES + 2)

    def test_counts_each_missing_value_as_the_missing_value_text(self):
        note = notification(
            title="{{ profile.a }} {{ profile.b }} {{ profile.c }}", body="€" * 1000
        )
        short = campaign_pb2.Personalization(missing_value_text="friend")
        long = campaign_pb2.Personalization(missing_value_text="x" * 256)

        validate(note, CAMPAIGN_ID, personalization=short)
        error = refused(note, personalization=long)

        assert error.reason == "PAYLOAD_TOO_LARGE"
        # The payload holds the short template source; what recipients get must fit.
        assert size_of(note) < MAX_SHARED_PAYLOAD_BYTES < int(error.metadata["payload_bytes"])

    def test_counts_a_fallback_as_it_renders(self):
        note = notification(title="{{ profile.a | default('-' * 3000) }}", body="€" * 300)

        error = refused(note)

        assert error.reason == "PAYLOAD_TOO_LARGE"
        assert size_of(note) < MAX_SHARED_PAYLOAD_BYTES < int(error.metadata["payload_bytes"])

    def test_counts_templates_as_written_too(self):
        # Delivery takes the run's payload with its templates: it must fit as it is, even
        # when every recipient's copy would be short.
        body = "{{ profile.a | default('') }}" + "{# a long comment #}" * 49
        note = notification(body=body, title=padding(700), target_url=SHOP + "?" + "x" * 2000)

        error = refused(note)

        assert error.reason == "PAYLOAD_TOO_LARGE"
        assert int(error.metadata["payload_bytes"]) == size_of(note) > MAX_SHARED_PAYLOAD_BYTES

    def test_counts_the_utm_parameters(self):
        body = "€" * 1024
        title = padding(MAX_SHARED_PAYLOAD_BYTES - size_of(notification(body=body, title="T")) + 1)
        note = notification(body=body, title=title)

        validate(note, CAMPAIGN_ID)
        assert refused(note, utm=UTM).reason == "PAYLOAD_TOO_LARGE"


class TestRunContent:
    def test_renders_every_notification_field(self):
        note = notification(
            body="20% off",
            tag="sale",
            renotify=True,
            require_interaction=True,
            silent=True,
            actions=[
                action("Shop now", icon_url="https://cdn.example/cart.png"),
                action("Later", "https://shop.example/later"),
            ],
            **{k: v for k, v in RICH.items() if k != "actions"},
        )

        parts = run_content(note, "cmp_1", "run_1")

        assert decoded(parts.payload) == {
            "title": "Spring sale",
            "body": "20% off",
            "icon": "https://cdn.example/i.png",
            "image": "https://cdn.example/hero.jpg",
            "url": SHOP,
            "campaign_id": "cmp_1",
            "run_id": "run_1",
            "badge": "https://cdn.example/badge.png",
            "actions": [
                {
                    "action": "action_1",
                    "title": "Shop now",
                    "url": SHOP,
                    "icon": "https://cdn.example/cart.png",
                },
                {"action": "action_2", "title": "Later", "url": "https://shop.example/later"},
            ],
            "require_interaction": True,
            "silent": True,
            "tag": "sale",
            "renotify": True,
            "site_id": SITE_ID,
            "version": PAYLOAD_VERSION,
        }

    def test_a_plain_notification_renders_as_before_with_its_site_and_version(self):
        parts = run_content(notification(), "cmp_1", "run_1")

        assert parts.payload == (
            b'{"title":"Spring sale","url":"https://shop.example/sale",'
            b'"campaign_id":"cmp_1","run_id":"run_1","site_id":"shop-eu","version":1}'
        )
        rendered = content.render_payload(notification(), "cmp_1", "run_1", site_id=SITE_ID)
        assert rendered == parts.payload
        assert parts.browser_payloads == {}
        assert (parts.profile_properties, parts.event_properties) == ((), ())
        assert (parts.suppress_missing_values, parts.missing_value_text, parts.topic) == (
            False,
            "",
            "",
        )

    def test_safari_gets_a_copy_without_what_it_cannot_show(self):
        parts = run_content(notification(body="b", **RICH), "cmp_1", "run_1")

        assert set(parts.browser_payloads) == {SAFARI, SAFARI_LEGACY}
        assert decoded(parts.browser_payloads[SAFARI_LEGACY]) == decoded(
            parts.browser_payloads[SAFARI]
        )
        assert decoded(parts.browser_payloads[SAFARI]) == {
            "title": "Spring sale",
            "body": "b",
            "url": SHOP,
            "campaign_id": "cmp_1",
            "run_id": "run_1",
            "site_id": SITE_ID,
            "version": PAYLOAD_VERSION,
        }
        assert {"icon", "image", "badge", "actions"} <= decoded(parts.payload).keys()

    def test_static_click_urls_get_the_utm_parameters_now(self):
        note = notification(
            target_url="https://shop.example/sale?tag=a&tag=b#top",
            actions=[action(url="https://shop.example/p?utm_source=newsletter")],
        )

        payload = decoded(run_content(note, "cmp_1", "run_1", utm=UTM).payload)

        assert payload["url"] == f"https://shop.example/sale?tag=a&tag=b&{UTM_QUERY}#top"
        assert payload["actions"][0]["url"] == (
            "https://shop.example/p?utm_source=newsletter&utm_medium=push&utm_campaign=spring+sale"
        )

    def test_options_pass_through(self):
        note = notification(
            title="Hi {{ profile.first_name }}",
            body="{{ event.product }} for {{ profile['last name'] }}",
            actions=[action("{{ event.cta }}", "https://s.example/{{ profile.slug }}")],
        )
        personalization = campaign_pb2.Personalization(
            on_missing=campaign_pb2.MISSING_VALUE_ACTION_SUPPRESS, missing_value_text="x"
        )

        parts = run_content(
            note, "cmp_1", "run_1", personalization=personalization, topic="spring-sale"
        )

        assert parts.profile_properties == ("first_name", "last name", "slug")
        assert parts.event_properties == ("cta", "product")
        assert parts.suppress_missing_values
        assert parts.missing_value_text == "x"
        assert parts.topic == "spring-sale"
        text = campaign_pb2.Personalization(
            on_missing=campaign_pb2.MISSING_VALUE_ACTION_USE_TEXT, missing_value_text="friend"
        )
        assert not run_content(note, "c", "r", personalization=text).suppress_missing_values

    def test_delivery_renders_the_templates_for_each_recipient(self):
        note = notification(
            title="Hi {{ profile.first_name }}",
            body="{{ event.product }} is back",
            target_url="https://shop.example/p/{{ event.sku }}?ref=push",
            actions=[action("Buy {{ event.product }}", "{{ event.buy_url }}")],
            icon_url=RICH["icon_url"],
        )
        validate(note, CAMPAIGN_ID, utm=UTM, live=True)
        parts = run_content(note, "cmp_1", "run_1", utm=UTM)
        context = {
            "profile": {"first_name": "Ada"},
            "event": {
                "product": "Green tea",
                "sku": "gt-1",
                "buy_url": "https://shop.example/cart?add=gt-1#pay",
            },
        }

        rendered = decoded(PayloadTemplate(parts.payload, MissingValues()).render(context))
        safari = decoded(
            PayloadTemplate(parts.browser_payloads[SAFARI], MissingValues()).render(context)
        )

        assert rendered["title"] == "Hi Ada"
        assert rendered["body"] == "Green tea is back"
        assert rendered["url"] == f"https://shop.example/p/gt-1?ref=push&{UTM_QUERY}"
        assert rendered["actions"] == [
            {
                "action": "action_1",
                "title": "Buy Green tea",
                "url": f"https://shop.example/cart?add=gt-1&{UTM_QUERY}#pay",
            }
        ]
        assert rendered["icon"] == RICH["icon_url"]
        assert safari == {k: v for k, v in rendered.items() if k not in ("icon", "actions")}

    def test_a_recipient_lacking_a_value_gets_the_missing_value_text(self):
        note = notification(title="Hi {{ profile.first_name }}!")
        text = campaign_pb2.Personalization(missing_value_text="friend")
        parts = run_content(note, "cmp_1", "run_1", personalization=text)
        missing = MissingValues(parts.suppress_missing_values, parts.missing_value_text)

        rendered = decoded(PayloadTemplate(parts.payload, missing).render({"profile": {}}))

        assert rendered["title"] == "Hi friend!"


class TestUtmQuery:
    def test_in_order_encoded_empty_ones_left_out(self):
        utm = campaign_pb2.UtmParameters(
            term="t&1", content="", campaign="spring sale", medium="push", source="clarion"
        )

        assert (
            utm_query(utm)
            == "utm_source=clarion&utm_medium=push&utm_campaign=spring+sale&utm_term=t%261"
        )

    def test_none(self):
        assert utm_query(None) == ""
        assert utm_query(campaign_pb2.UtmParameters()) == ""
