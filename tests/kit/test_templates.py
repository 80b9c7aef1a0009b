"""Personalized text: what a template may read, what it is refused, and what each
recipient's copy becomes."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime

import pytest

from services.kit.templates import (
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    MissingValue,
    MissingValues,
    PayloadTemplate,
    RenderRefused,
    TemplateProblem,
    UnsafeTemplate,
    Variables,
    add_query,
    check,
    click_url,
    is_template,
    property_value,
    render,
    wrap_click_url,
)

NO_VALUES = {"profile": {}, "event": {}}
TEXT = MissingValues(text="friend")
SUPPRESS = MissingValues(suppress=True)


def problem(source: str, namespaces: tuple[str, ...] = ("profile", "event")) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as raised:
        check(source, namespaces)
    return raised.value


class TestCheck:
    def test_returns_the_properties_read_per_namespace(self):
        source = (
            "Hi {{ profile.first_name | default('there') }}, "
            "{{ profile['last name'] }} saw {{ event.product }}"
        )

        assert check(source) == Variables(
            profile=frozenset({"first_name", "last name"}), event=frozenset({"product"})
        )

    def test_plain_text_reads_nothing(self):
        assert check("Spring sale: 20% off") == Variables()
        assert not is_template("Spring sale: 20% off")
        assert is_template("{# a comment #}")

    @pytest.mark.parametrize(
        ("source", "line"),
        [
            ("Hi {{ profile.first_name }", 1),
            ("Hi\nthere\n{% if profile.vip %}VIP", 3),
            ("{{ profile.x }}\n{{ profile.y ) }}", 2),
        ],
    )
    def test_syntax_errors_name_their_line(self, source, line):
        found = problem(source)

        assert found.reason == "INVALID_TEMPLATE"
        assert found.line == line
        assert str(found).startswith(f"line {line}: ")

    def test_an_unknown_variable_names_its_line_and_column(self):
        found = problem("Hello there,\nfoo bar {{ foo }}!", ("profile",))

        assert found.reason == "UNKNOWN_VARIABLE"
        # The `foo` inside the tag, not the word in the text before it.
        assert (found.line, found.column) == (2, 12)
        assert "line 2, column 12: unknown variable 'foo'" in str(found)
        assert "profile.<property>" in str(found)

    def test_a_namespace_not_offered_is_an_unknown_variable(self):
        found = problem("Your event: {{ event.name }}", ("profile",))

        assert found.reason == "UNKNOWN_VARIABLE"
        assert (found.line, found.column) == (1, 16)

    def test_a_namespace_alone_is_not_a_value(self):
        found = problem("{{ profile }}")

        assert found.reason == "UNKNOWN_VARIABLE"
        assert (found.line, found.column) == (1, 4)

    def test_an_unknown_filter_is_an_invalid_template(self):
        found = problem("{{ profile.name | shout }}")

        assert found.reason == "INVALID_TEMPLATE"
        assert (found.line, found.column) == (1, 19)
        assert "no filter named 'shout'" in str(found)

    def test_nesting_too_deep_is_an_invalid_template(self):
        found = problem("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}")

        assert found.reason == "INVALID_TEMPLATE"


# Each is refused when checked, and when rendered (a payload reaching delivery is not
# trusted to have been checked).
ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ profile.__class__ }}",
    "{{ profile['__class__'] }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**9 }}",
    "{{ (1, 2) * 10**9 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ profile.name.ljust(10**9) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% set x = 'a' * 8000 %}{{ x }}",
    "{% include 'other' %}",
    "{% for i in 'x' * 8000 %}{{ i }}{% endfor %}",
    "{{ 'a' | center(10**9) }}",
    "{{ 'a' | indent(10**9) }}",
    "{{ [1] | batch(10**9, 'x') | list }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' | format(10**9, 1) }}",
    "{{ ('x' * 8000) | replace('x', 'x' * 8000) | replace('x', 'x' * 8000) }}",
]


class TestSandbox:
    @pytest.mark.parametrize("source", ESCAPES)
    def test_refused_when_checked(self, source):
        found = problem(source)

        assert found.reason in ("UNSAFE_TEMPLATE", "UNKNOWN_VARIABLE")

    @pytest.mark.parametrize("source", ESCAPES)
    @pytest.mark.parametrize("missing", [TEXT, SUPPRESS])
    def test_refused_when_rendered(self, source, missing):
        context = {"profile": {"name": "Ada"}, "event": {}}

        with pytest.raises(UnsafeTemplate):
            render(source, context, missing)

    @pytest.mark.parametrize(
        "source",
        [
            "{{ 'a' | center(10**8) }}",
            "{{ 'a' | indent(10**8) }}",
            "{{ '%100000000d' % 1 }}",
            "{{ ('x' * 8000) | replace('x', 'x' * 8000) }}",
        ],
    )
    def test_refused_before_allocating(self, source):
        tracemalloc.start()
        try:
            with pytest.raises(UnsafeTemplate):
                render(source, NO_VALUES, TEXT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 5_000_000

    def test_a_loop_producing_more_than_the_output_bound_is_refused(self):
        source = "{% for w in profile.words %}{{ w }}{% endfor %}"
        long_words = {"profile": {"words": ["x" * 100] * 100}, "event": {}}

        assert check(source) == Variables(profile=frozenset({"words"}))
        with pytest.raises(UnsafeTemplate, match=str(MAX_OUTPUT_CHARS)):
            render(source, long_words, TEXT)
        assert render(source, {"profile": {"words": ["a", "b"]}}, TEXT) == "ab"

    def test_loops_share_one_iteration_budget(self):
        source = "{% for c in profile.name %}{% endfor %}" * 2
        name = {"profile": {"name": "x" * (MAX_LOOP_ITERATIONS // 2 + 1)}}

        assert render(source, {"profile": {"name": "x" * 10}}, TEXT) == ""
        with pytest.raises(UnsafeTemplate, match="loop iterations"):
            render(source, name, TEXT)

    def test_a_property_named_like_a_dict_method_is_the_property(self):
        context = {"profile": {"items": "3 items", "values": "v"}, "event": {}}

        assert render("{{ profile.items }}, {{ profile['values'] }}", context) == "3 items, v"
        assert render("[{{ profile.keys }}]", {"profile": {}}, TEXT) == "[friend]"


class TestMissingValues:
    def test_a_default_fills_a_missing_value(self):
        source = 'Hi {{ profile.first_name | default("there") }}'

        assert render(source, NO_VALUES, SUPPRESS) == "Hi there"
        assert render(source, {"profile": {"first_name": "Ada"}}, SUPPRESS) == "Hi Ada"

    def test_text_prints_the_campaign_text(self):
        assert render("Hi {{ profile.first_name }}!", NO_VALUES, TEXT) == "Hi friend!"
        assert render("Hi {{ profile.first_name }}!", NO_VALUES) == "Hi !"

    def test_suppress_refuses_the_recipient(self):
        with pytest.raises(MissingValue) as raised:
            render("Hi {{ profile.first_name | upper }}", NO_VALUES, SUPPRESS)

        assert raised.value.name == "first_name"

    @pytest.mark.parametrize("missing", [TEXT, SUPPRESS])
    def test_a_missing_value_is_false_in_a_condition(self, missing):
        source = "{% if profile.vip %}VIP offer{% else %}Offer{% endif %}"

        assert render(source, NO_VALUES, missing) == "Offer"
        assert render(source, {"profile": {"vip": True}}, missing) == "VIP offer"

    def test_a_value_of_the_wrong_type_refuses_the_recipient(self):
        with pytest.raises(RenderRefused) as raised:
            render("{{ profile.points + 1 }}", {"profile": {"points": "many"}}, TEXT)

        assert not isinstance(raised.value, UnsafeTemplate)


class TestClickUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/relative/path",
            "shop.example/sale",
            "https:///no-host",
            "https://shop.example/a b",
            "",
        ],
    )
    def test_refuses_what_is_not_an_absolute_http_url(self, url):
        with pytest.raises(RenderRefused):
            click_url(url, "utm_source=clarion")

    def test_a_templated_click_url_is_checked_once_rendered(self):
        source = wrap_click_url("{{ profile.link }}", "utm_source=clarion&utm_medium=push")

        assert check(source) == Variables(profile=frozenset({"link"}))
        assert (
            render(source, {"profile": {"link": "https://shop.example/p/1"}}, TEXT)
            == "https://shop.example/p/1?utm_source=clarion&utm_medium=push"
        )
        with pytest.raises(RenderRefused):
            render(source, {"profile": {"link": "javascript:alert(1)"}}, TEXT)
        with pytest.raises(RenderRefused):
            render(source, NO_VALUES, TEXT)  # "friend" is no URL


UTM = [("utm_source", "clarion"), ("utm_medium", "push")]


class TestAddQuery:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("https://shop.example/", "https://shop.example/?utm_source=clarion&utm_medium=push"),
            (
                "https://shop.example/p?id=7",
                "https://shop.example/p?id=7&utm_source=clarion&utm_medium=push",
            ),
            (
                "https://shop.example/p?tag=a&tag=b",
                "https://shop.example/p?tag=a&tag=b&utm_source=clarion&utm_medium=push",
            ),
            (
                "https://shop.example/p?q=caf%C3%A9+au+lait&x=%26",
                "https://shop.example/p?q=caf%C3%A9+au+lait&x=%26"
                "&utm_source=clarion&utm_medium=push",
            ),
            (
                "https://shop.example/p#reviews",
                "https://shop.example/p?utm_source=clarion&utm_medium=push#reviews",
            ),
            (
                "https://shop.example/p?utm_source=newsletter#top",
                "https://shop.example/p?utm_source=newsletter&utm_medium=push#top",
            ),
        ],
    )
    def test_adds_what_the_url_does_not_have(self, url, expected):
        assert add_query(url, UTM) == expected

    def test_values_are_encoded(self):
        assert (
            add_query("https://shop.example/", [("utm_campaign", "spring sale & more")])
            == "https://shop.example/?utm_campaign=spring+sale+%26+more"
        )

    def test_nothing_to_add_leaves_the_url(self):
        url = "https://shop.example/p?utm_source=a&utm_medium=b"

        assert add_query(url, UTM) == url
        assert add_query(url, []) == url


class TestPropertyValue:
    @pytest.mark.parametrize(
        ("stored", "seen"),
        [
            (3.0, 3),
            (2.5, 2.5),
            (2.0**60, 2.0**60),
            (True, True),
            ("Ada", "Ada"),
            (["a", "b"], ["a", "b"]),
            (datetime(2026, 3, 1, 9, 30, tzinfo=UTC), "2026-03-01T09:30:00+00:00"),
        ],
    )
    def test_as_a_template_sees_it(self, stored, seen):
        assert property_value(stored) == seen
        assert type(property_value(stored)) is type(seen)

    def test_a_whole_number_prints_without_a_decimal_point(self):
        context = {"profile": {"points": property_value(120.0)}}

        assert render("{{ profile.points }} points", context) == "120 points"


class TestPayloadTemplate:
    def test_renders_each_string_for_the_recipient(self):
        payload = json.dumps(
            {
                "title": "Hi {{ profile.first_name | default('there') }}",
                "body": "{{ event.product }} is back",
                "url": wrap_click_url(
                    "https://shop.example/p/{{ event.sku | urlencode }}", "utm_source=clarion"
                ),
                "actions": [{"action": "action_1", "title": "See {{ event.product }}"}],
                "silent": True,
                "campaign_id": "cmp_1",
            }
        ).encode()
        template = PayloadTemplate(payload, TEXT)

        rendered = json.loads(
            template.render(
                {"profile": {"first_name": "Ada"}, "event": {"product": "Tea", "sku": "t 1"}}
            )
        )

        assert template.templated
        assert rendered == {
            "title": "Hi Ada",
            "body": "Tea is back",
            "url": "https://shop.example/p/t%201?utm_source=clarion",
            "actions": [{"action": "action_1", "title": "See Tea"}],
            "silent": True,
            "campaign_id": "cmp_1",
        }

    def test_a_payload_without_templates_is_sent_as_it_is(self):
        payload = b'{"title":"Sale","url":"https://shop.example/"}'
        template = PayloadTemplate(payload, SUPPRESS)

        assert not template.templated
        assert template.render(NO_VALUES) == payload
