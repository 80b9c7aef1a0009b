"""A run's content options and recipient contexts as delivery keeps them
(services/delivery/domain/content.py), and one recipient's rendered payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.segment.v1 import profile_pb2
from services.delivery.domain.content import (
    NO_OPTIONS,
    ContentOptions,
    compile_payload,
    content_options,
    plain_properties,
    plain_value,
    recipient_context,
    render_for_recipient,
    run_contexts,
    template_context,
)
from services.delivery.domain.payload import MAX_PAYLOAD_BYTES
from services.delivery.domain.rules import Reason
from services.delivery.server import run_policy_json
from services.kit.errors import InvalidArgument
from services.kit.templates import MAX_OUTPUT_CHARS, wrap_click_url
from tests.delivery.conftest import shared_payload

SAFARI = common_pb2.BROWSER_SAFARI
GREETING = shared_payload(title="Hi {{ profile.first_name | default('there') }}")


def prop(name: str, **value: object) -> profile_pb2.Property:
    return profile_pb2.Property(name=name, value=profile_pb2.PropertyValue(**value))  # type: ignore[arg-type]


def refusal(call) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as raised:
        call()
    return raised.value.reason, raised.value.metadata["field"]


class TestContentOptionsJson:
    def test_every_field_survives_the_round_trip(self) -> None:
        options = ContentOptions(
            profile_properties=("first_name", "city"),
            suppress_missing_values=True,
            missing_value_text="friend",
            browser_payloads={SAFARI: shared_payload(title="Safari é")},
            topic="spring-sale_1",
            templated=True,
        )

        stored = options.to_json()

        assert ContentOptions.from_json(stored) == options
        compact = json.dumps(json.loads(stored), ensure_ascii=False, separators=(",", ":"))
        assert stored == compact
        assert json.loads(stored)["browser_payloads"] == {
            str(SAFARI): shared_payload(title="Safari é").decode()
        }

    def test_no_options_cost_nothing(self) -> None:
        assert NO_OPTIONS.to_json() == ""
        assert ContentOptions.from_json("") is NO_OPTIONS

    def test_only_what_is_set_is_stored(self) -> None:
        assert ContentOptions(topic="t1").to_json() == '{"topic":"t1"}'


class TestContentOptionsFromTheRequest:
    def test_an_untemplated_payload_without_options_stores_nothing(self) -> None:
        options = content_options(
            delivery_pb2.RunContent(payload=shared_payload()), shared_payload()
        )

        assert options == NO_OPTIONS and options.to_json() == ""

    def test_a_template_in_the_payload_or_a_browser_payload_marks_the_run_templated(
        self,
    ) -> None:
        plain = shared_payload()
        in_payload = content_options(delivery_pb2.RunContent(payload=GREETING), GREETING)
        in_browser = content_options(
            delivery_pb2.RunContent(
                payload=plain,
                browser_payloads=[delivery_pb2.BrowserPayload(browser=SAFARI, payload=GREETING)],
            ),
            plain,
        )

        assert in_payload.templated and in_browser.templated
        assert in_browser.payload_for(SAFARI, plain) == GREETING
        assert in_browser.payload_for(common_pb2.BROWSER_CHROME, plain) == plain

    def test_profile_properties_are_kept_once_in_order(self) -> None:
        content = delivery_pb2.RunContent(
            payload=GREETING, profile_properties=["first_name", "city", "first_name"]
        )

        assert content_options(content, GREETING).profile_properties == ("first_name", "city")

    @pytest.mark.parametrize(
        ("content", "reason", "field"),
        [
            ({"topic": "has space"}, "INVALID_TOPIC", "content.topic"),
            ({"topic": "dots.are.not.base64"}, "INVALID_TOPIC", "content.topic"),
            ({"profile_properties": ["city", ""]}, "INVALID_PROPERTY_NAME",
             "content.profile_properties[1]"),
            ({"payload": shared_payload(title="{{ profile.x ")}, "INVALID_TEMPLATE",
             "content.payload"),
            ({"payload": shared_payload(title="{{ secret }}")}, "UNKNOWN_VARIABLE",
             "content.payload"),
            ({"browser_payloads": [delivery_pb2.BrowserPayload(payload=GREETING)]},
             "INVALID_BROWSER", "content.browser_payloads[0].browser"),
            ({"browser_payloads": [delivery_pb2.BrowserPayload(browser=SAFARI, payload=GREETING),
                                   delivery_pb2.BrowserPayload(browser=SAFARI, payload=GREETING)]},
             "INVALID_BROWSER", "content.browser_payloads[1].browser"),
            ({"browser_payloads": [delivery_pb2.BrowserPayload(browser=SAFARI, payload=b"[]")]},
             "INVALID_PAYLOAD", "content.browser_payloads[0].payload"),
            ({"browser_payloads": [delivery_pb2.BrowserPayload(
                browser=SAFARI, payload=b'{"title":"\xff"}')]},
             "INVALID_PAYLOAD", "content.browser_payloads[0].payload"),
            ({"browser_payloads": [delivery_pb2.BrowserPayload(
                browser=SAFARI, payload=shared_payload(body="{% for %}"))]},
             "INVALID_TEMPLATE", "content.browser_payloads[0].payload"),
        ],
    )  # fmt: skip
    def test_refuses_what_delivery_could_not_follow(
        self, content: dict, reason: str, field: str
    ) -> None:
        payload = content.pop("payload", shared_payload())

        assert refusal(
            lambda: content_options(delivery_pb2.RunContent(payload=payload, **content), payload)
        ) == (reason, field)


class TestPlainValues:
    def test_typed_values_become_plain_json(self) -> None:
        stamp = Timestamp()
        stamp.FromDatetime(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))

        converted = plain_properties(
            [
                prop("name", string_value="Ann"),
                prop("orders", number_value=3.0),
                prop("score", number_value=2.5),
                prop("vip", bool_value=True),
                prop("since", timestamp_value=stamp),
                prop("tags", string_list_value=profile_pb2.StringList(values=["a", "b"])),
                prop("nothing"),
            ]
        )

        assert converted == {
            "name": "Ann",
            "orders": 3,
            "score": 2.5,
            "vip": True,
            "since": "2026-03-01T09:30:00+00:00",
            "tags": ["a", "b"],
        }
        assert json.dumps(converted["orders"]) == "3"
        assert plain_value(profile_pb2.PropertyValue()) is None


class TestRunContexts:
    def test_each_person_gets_its_event_properties_as_compact_json(self) -> None:
        made = run_contexts(
            [
                delivery_pb2.RecipientContext(
                    profile_id="user-1", event_properties=[prop("product", string_value="Mug")]
                ),
                delivery_pb2.RecipientContext(
                    subscriber_id="sub_1", event_properties=[prop("qty", number_value=2)]
                ),
            ]
        )

        assert [(c.person_key, c.event_properties) for c in made] == [
            ("p:user-1", '{"product":"Mug"}'),
            ("s:sub_1", '{"qty":2}'),
        ]

    @pytest.mark.parametrize(
        ("contexts", "reason", "field"),
        [
            ([{}], "INVALID_CONTEXT", "audience.contexts[0]"),
            ([{"profile_id": "u"}, {"profile_id": "u2", "subscriber_id": "s"}],
             "INVALID_CONTEXT", "audience.contexts[1]"),
            ([{"profile_id": "u"}, {"subscriber_id": "u"}, {"profile_id": "u"}],
             "DUPLICATE_CONTEXT", "audience.contexts[2]"),
            ([{"subscriber_id": "s"}, {"subscriber_id": "s"}],
             "DUPLICATE_CONTEXT", "audience.contexts[1]"),
            ([{"subscriber_id": "s", "event_properties": [prop("", string_value="x")]}],
             "INVALID_PROPERTY_NAME", "audience.contexts[0].event_properties[0].name"),
        ],
    )  # fmt: skip
    def test_refuses_a_context_naming_nobody_or_somebody_twice(
        self, contexts: list[dict], reason: str, field: str
    ) -> None:
        given = [delivery_pb2.RecipientContext(**c) for c in contexts]

        assert refusal(lambda: run_contexts(given)) == (reason, field)


class TestRecipientContext:
    def test_profile_and_event_in_one_compact_object(self) -> None:
        stored = recipient_context({"first_name": "Zoë"}, '{"product":"Mug"}')

        assert stored == '{"profile":{"first_name":"Zoë"},"event":{"product":"Mug"}}'
        assert template_context(stored) == {
            "profile": {"first_name": "Zoë"},
            "event": {"product": "Mug"},
        }

    def test_what_is_empty_is_left_out(self) -> None:
        assert recipient_context({}, "") == recipient_context({}, "{}") == ""
        assert recipient_context({}, '{"a":1}') == '{"event":{"a":1}}'
        assert template_context("") == {"profile": {}, "event": {}}
        assert template_context('{"event":{"a":1}}') == {"profile": {}, "event": {"a": 1}}


class TestRenderForRecipient:
    def render(self, payload: bytes, context: str, **options: object) -> bytes | Reason:
        template = compile_payload(payload, ContentOptions(**options))  # type: ignore[arg-type]
        assert template is not None
        return render_for_recipient(template, context, "sub_1", "tok")

    def test_an_untemplated_payload_compiles_to_nothing(self) -> None:
        assert compile_payload(shared_payload(), NO_OPTIONS) is None

    def test_renders_and_appends_the_per_recipient_fields(self) -> None:
        made = self.render(GREETING, '{"profile":{"first_name":"Ann"}}')

        assert isinstance(made, bytes)
        assert json.loads(made) == {
            "title": "Hi Ann",
            "body": "50% off today",
            "subscriber_id": "sub_1",
            "engagement_token": "tok",
        }
        assert json.loads(self.render(GREETING, ""))["title"] == "Hi there"  # type: ignore[arg-type]

    def test_a_missing_value_is_the_runs_text_or_suppresses(self) -> None:
        payload = shared_payload(body="For {{ profile.city }}")

        text = self.render(payload, "", missing_value_text="you")
        assert json.loads(text)["body"] == "For you"  # type: ignore[arg-type]
        assert (
            self.render(payload, "", suppress_missing_values=True) is Reason.PERSONALIZATION_MISSING
        )

    def test_a_click_url_that_renders_to_javascript_is_invalid(self) -> None:
        payload = shared_payload(target_url=wrap_click_url("{{ profile.link }}", "utm_source=x"))

        good = self.render(payload, '{"profile":{"link":"https://shop.test/a"}}')
        bad = self.render(payload, '{"profile":{"link":"javascript:alert(1)"}}')

        assert json.loads(good)["target_url"] == "https://shop.test/a?utm_source=x"  # type: ignore[arg-type]
        assert bad is Reason.PERSONALIZATION_INVALID

    def test_a_copy_that_does_not_fit_is_too_large(self) -> None:
        payload = shared_payload(body="{{ profile.story }}")

        def story(length: int) -> str:
            return json.dumps({"profile": {"story": "x" * length}})

        empty = self.render(payload, story(0))
        assert isinstance(empty, bytes)
        room = MAX_PAYLOAD_BYTES - len(empty)

        fits = self.render(payload, story(room))
        assert isinstance(fits, bytes) and len(fits) == MAX_PAYLOAD_BYTES
        assert self.render(payload, story(room + 1)) is Reason.PAYLOAD_TOO_LARGE
        # Past the kit's output bound rendering stops early: too large all the same.
        assert self.render(payload, story(MAX_OUTPUT_CHARS + 1)) is Reason.PAYLOAD_TOO_LARGE


class TestRunPolicyJson:
    def test_unset_or_empty_is_nothing(self) -> None:
        assert run_policy_json(None) == ""
        assert run_policy_json(delivery_pb2.RunPolicy()) == ""

    def test_set_fields_by_their_proto_names_compact(self) -> None:
        policy = delivery_pb2.RunPolicy(
            cap_per_day=2, quiet_start="22:00", quiet_end="08:00", quiet_delay=True
        )

        stored = run_policy_json(policy)

        assert stored == (
            '{"cap_per_day":2,"quiet_delay":true,"quiet_end":"08:00","quiet_start":"22:00"}'
        )
