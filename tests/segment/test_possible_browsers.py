"""Which browsers an audience's definition may include (definition.possible_browsers):
what campaign reads to decide whether a campaign may reach Safari."""

from __future__ import annotations

from services.segment.definition import (
    All,
    AnyOf,
    Behaviour,
    Negate,
    PropertyOperator,
    PropertyTest,
    SubscriberTest,
    TestProfile,
    possible_browsers,
)
from services.segment.models import Browser, PropertyType

EVERY_BROWSER = frozenset(Browser)


def browser_in(*browsers: Browser) -> SubscriberTest:
    return SubscriberTest(browsers=browsers)


def city(name: str) -> PropertyTest:
    return PropertyTest("city", PropertyOperator.EQUALS, PropertyType.STRING, (name,))


class TestPossibleBrowsers:
    def test_everyone_may_be_any_browser(self) -> None:
        assert possible_browsers(None) == EVERY_BROWSER

    def test_a_browser_condition_allows_its_browsers(self) -> None:
        assert possible_browsers(browser_in(Browser.SAFARI)) == {Browser.SAFARI}

    def test_all_keeps_what_every_condition_allows(self) -> None:
        definition = All((browser_in(Browser.CHROME, Browser.FIREFOX), city("Paris")))

        browsers = possible_browsers(definition)

        assert browsers == {Browser.CHROME, Browser.FIREFOX}
        assert Browser.SAFARI not in browsers

    def test_all_of_two_browser_conditions_allows_only_their_overlap(self) -> None:
        definition = All(
            (
                browser_in(Browser.CHROME, Browser.SAFARI),
                browser_in(Browser.SAFARI, Browser.EDGE),
            )
        )

        assert possible_browsers(definition) == {Browser.SAFARI}
        assert (
            possible_browsers(All((browser_in(Browser.CHROME), browser_in(Browser.EDGE)))) == set()
        )

    def test_any_with_a_condition_on_the_person_allows_every_browser(self) -> None:
        definition = AnyOf((browser_in(Browser.CHROME), city("Paris")))

        assert possible_browsers(definition) == EVERY_BROWSER

    def test_any_of_browser_conditions_allows_each_ones_browsers(self) -> None:
        definition = AnyOf((browser_in(Browser.CHROME), browser_in(Browser.OPERA)))

        assert possible_browsers(definition) == {Browser.CHROME, Browser.OPERA}

    def test_a_negation_is_not_complemented(self) -> None:
        # not(browser = safari) excludes Safari, but the analysis stays conservative.
        assert possible_browsers(Negate(browser_in(Browser.SAFARI))) == EVERY_BROWSER
        assert possible_browsers(Negate(browser_in(Browser.CHROME))) == EVERY_BROWSER

    def test_a_subscriber_condition_without_browsers_allows_every_browser(self) -> None:
        assert possible_browsers(SubscriberTest(timezones=("Europe/Paris",))) == EVERY_BROWSER
        assert possible_browsers(SubscriberTest(reachable=True)) == EVERY_BROWSER

    def test_conditions_on_the_person_allow_every_browser(self) -> None:
        assert possible_browsers(city("Paris")) == EVERY_BROWSER
        assert possible_browsers(Behaviour(event_name="Purchase")) == EVERY_BROWSER
        assert possible_browsers(TestProfile()) == EVERY_BROWSER

    def test_nested_groups(self) -> None:
        definition = All(
            (
                AnyOf((browser_in(Browser.CHROME), browser_in(Browser.FIREFOX, Browser.SAFARI))),
                Negate(city("Rome")),
                AnyOf((All((city("Paris"), browser_in(Browser.SAFARI))), browser_in(Browser.EDGE))),
            )
        )

        assert possible_browsers(definition) == {Browser.SAFARI}
