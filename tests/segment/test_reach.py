"""EstimateReach, MatchProfile, ValidateAudience and a run's kept audience, through the
real segment server: what a marketer sees before sending, and what a run sends to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from tests.segment.helpers import Site, error_field, expect_error, internal, register
from tests.segment.test_audience import timestamp
from tests.segment.test_events import event, track
from tests.segment.test_profiles import set_, update, upsert

Stub = pb_grpc.SegmentServiceStub
Internal = internal_pb_grpc.SegmentInternalServiceStub


def city_in(*cities: str) -> segment_pb2.Condition:
    return segment_pb2.Condition(
        property=segment_pb2.PropertyCondition(
            name="city",
            operator=segment_pb2.PROPERTY_OPERATOR_IN,
            values=[profile_pb2.PropertyValue(string_value=c) for c in cities],
        )
    )


def did(name: str, **fields: Any) -> segment_pb2.Condition:
    return segment_pb2.Condition(
        behaviour=segment_pb2.BehaviourCondition(event_name=name, **fields)
    )


def adhoc(condition: segment_pb2.Condition) -> segment_pb2.AudienceSelector:
    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(condition=condition)
    )


async def shop(stub: Stub, site: Site, clock: FrozenClock) -> dict[str, Any]:
    """ann (Paris, chrome + firefox, carted), bob (Rome, chrome, carted), cat (Paris, no
    browser), and one anonymous edge browser that carted."""
    ann_chrome = await register(stub, site, profile_id="ann")
    ann_firefox = await register(
        stub, site, profile_id="ann", browser=common_pb2.BROWSER_FIREFOX
    )
    bob = await register(stub, site, profile_id="bob")
    anonymous = await register(stub, site, browser=common_pb2.BROWSER_EDGE)
    assert all(
        r.ok
        for r in await upsert(
            stub,
            site,
            update("ann", set_("city", "Paris")),
            update("bob", set_("city", "Rome")),
            update("cat", set_("city", "Paris")),
        )
    )
    results = await track(
        stub,
        site,
        event(clock, name="Cart", profile_id="ann", occur_time=timestamp(clock.now() - timedelta(days=1))),
        event(clock, name="Cart", profile_id="bob", occur_time=timestamp(clock.now() - timedelta(days=2))),
        event(
            clock,
            name="Cart",
            profile_id="",
            subscriber_id=anonymous.subscriber_id,
            occur_time=timestamp(clock.now() - timedelta(hours=3)),
        ),
    )
    assert all(r.ok for r in results)
    return {
        "ann": [ann_chrome.subscriber_id, ann_firefox.subscriber_id],
        "bob": bob.subscriber_id,
        "anonymous": anonymous.subscriber_id,
    }


class TestEstimateReach:
    async def test_counts_people_and_their_active_subscriptions_by_browser(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        await shop(stub, site, clock)

        paris = await stub.EstimateReach(
            pb.EstimateReachRequest(audience=adhoc(city_in("Paris")), exact=True),
            metadata=site.metadata,
        )
        everyone = await stub.EstimateReach(pb.EstimateReachRequest(), metadata=site.metadata)

        # ann and cat qualify; only ann has browsers.
        assert (paris.profiles, paris.reachable_subscribers, paris.exact) == (2, 2, True)
        assert {(b.browser, b.subscribers) for b in paris.browsers} == {
            (common_pb2.BROWSER_CHROME, 1),
            (common_pb2.BROWSER_FIREFOX, 1),
        }
        # ann, bob, cat and the anonymous browser; four active subscriptions.
        assert (everyone.profiles, everyone.reachable_subscribers) == (4, 4)
        assert everyone.browsers[0].browser == common_pb2.BROWSER_CHROME  # largest first

    async def test_an_unsubscribed_browser_is_not_reachable(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        ids = await shop(stub, site, clock)
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(subscriber_id=ids["ann"][1], reason="user"),
            metadata=site.metadata,
        )

        paris = await stub.EstimateReach(
            pb.EstimateReachRequest(audience=adhoc(city_in("Paris"))), metadata=site.metadata
        )

        assert (paris.profiles, paris.reachable_subscribers) == (2, 1)

    async def test_a_saved_segment_is_estimated_by_id(
        self, stub: Stub, site: Site, other_site: Site, clock: FrozenClock
    ) -> None:
        await shop(stub, site, clock)
        saved = await stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="carted",
                    definition=segment_pb2.SegmentDefinition(
                        condition=did("Cart", window=segment_pb2.TimeWindow(last_days=7))
                    ),
                )
            ),
            metadata=site.metadata,
        )
        selector = segment_pb2.AudienceSelector(segment_id=saved.segment.segment_id)

        reach = await stub.EstimateReach(
            pb.EstimateReachRequest(audience=selector), metadata=site.metadata
        )

        # ann (2 browsers), bob, the anonymous browser.
        assert (reach.profiles, reach.reachable_subscribers) == (3, 4)
        await expect_error(
            stub.EstimateReach(pb.EstimateReachRequest(audience=selector), metadata=other_site.metadata),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )

    async def test_a_type_contradicting_the_stored_one_is_refused_naming_the_field(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        await shop(stub, site, clock)
        wrong = segment_pb2.Condition(
            property=segment_pb2.PropertyCondition(
                name="city",
                operator=segment_pb2.PROPERTY_OPERATOR_GREATER_THAN,
                values=[profile_pb2.PropertyValue(number_value=3)],
            )
        )

        error = await expect_error(
            stub.EstimateReach(pb.EstimateReachRequest(audience=adhoc(wrong)), metadata=site.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PROPERTY_TYPE_MISMATCH",
        )
        assert error_field(error).startswith("audience.definition.condition.property")


class TestMatchProfile:
    async def test_one_person_and_the_subscribers_it_would_be_sent_at(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        ids = await shop(stub, site, clock)
        firefox_in_paris = adhoc(
            segment_pb2.Condition(
                all=segment_pb2.ConditionGroup(
                    conditions=[
                        city_in("Paris"),
                        segment_pb2.Condition(
                            subscriber=segment_pb2.SubscriberCondition(
                                browsers=[common_pb2.BROWSER_FIREFOX]
                            )
                        ),
                    ]
                )
            )
        )

        ann = await stub.MatchProfile(
            pb.MatchProfileRequest(audience=firefox_in_paris, profile_id="ann"),
            metadata=site.metadata,
        )
        bob = await stub.MatchProfile(
            pb.MatchProfileRequest(audience=firefox_in_paris, profile_id="bob"),
            metadata=site.metadata,
        )
        cat = await stub.MatchProfile(
            pb.MatchProfileRequest(audience=adhoc(city_in("Paris")), profile_id="cat"),
            metadata=site.metadata,
        )

        assert (ann.matches, list(ann.reachable_subscriber_ids)) == (True, [ids["ann"][1]])
        assert (bob.matches, list(bob.reachable_subscriber_ids)) == (False, [])
        assert (cat.matches, list(cat.reachable_subscriber_ids)) == (True, [])

    async def test_an_anonymous_browser_is_matched_by_its_subscriber_id(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        ids = await shop(stub, site, clock)
        not_carted = adhoc(
            segment_pb2.Condition(
                behaviour=segment_pb2.BehaviourCondition(
                    event_name="Cart", did_not=True, window=segment_pb2.TimeWindow(last_hours=1)
                )
            )
        )
        carted = adhoc(did("Cart", window=segment_pb2.TimeWindow(last_hours=4)))

        now = await stub.MatchProfile(
            pb.MatchProfileRequest(audience=carted, subscriber_id=ids["anonymous"]),
            metadata=site.metadata,
        )
        hour = await stub.MatchProfile(
            pb.MatchProfileRequest(audience=not_carted, subscriber_id=ids["anonymous"]),
            metadata=site.metadata,
        )

        assert (now.matches, list(now.reachable_subscriber_ids)) == (True, [ids["anonymous"]])
        assert hour.matches  # carted 3 hours ago, not within the last hour

    async def test_an_unknown_person_is_not_found(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        await expect_error(
            stub.MatchProfile(
                pb.MatchProfileRequest(audience=adhoc(city_in("Paris")), profile_id="nobody"),
                metadata=site.metadata,
            ),
            grpc.StatusCode.NOT_FOUND,
            "PROFILE_NOT_FOUND",
        )
        error = await expect_error(
            stub.MatchProfile(pb.MatchProfileRequest(audience=adhoc(city_in("Paris"))), metadata=site.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_PERSON",
        )
        assert error_field(error) == "person"


class TestKeptAudience:
    async def test_a_run_reads_the_segment_as_it_matched_at_the_first_page(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        ids = await shop(stub, site, clock)
        selector = adhoc(city_in("Paris"))
        request = internal_pb.ListAudienceMembersRequest(
            snapshot_time=timestamp(clock.now()),
            audience=selector,
            audience_key="run_kept_1",
            page_size=1,
        )

        first = await internal_stub.ListAudienceMembers(request, metadata=internal(settings, site))
        # Meanwhile bob moves to Paris: the run's audience does not change.
        await upsert(stub, site, update("bob", set_("city", "Paris")))
        members = [m.subscriber_id for m in first.members]
        token = first.next_page_token
        while token:
            request.page_token = token
            page = await internal_stub.ListAudienceMembers(request, metadata=internal(settings, site))
            members += [m.subscriber_id for m in page.members]
            token = page.next_page_token
        request.page_token = ""
        again = await internal_stub.ListAudienceMembers(request, metadata=internal(settings, site))

        assert members == sorted(ids["ann"])
        assert [m.subscriber_id for m in again.members] == [sorted(ids["ann"])[0]]

    async def test_an_audience_without_its_key_is_refused(
        self, internal_stub: Internal, settings: Settings, site: Site, clock: FrozenClock
    ) -> None:
        error = await expect_error(
            internal_stub.ListAudienceMembers(
                internal_pb.ListAudienceMembersRequest(
                    snapshot_time=timestamp(clock.now()), audience=adhoc(city_in("Paris"))
                ),
                metadata=internal(settings, site),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MISSING_AUDIENCE_KEY",
        )
        assert error_field(error) == "audience_key"


class TestValidateAudience:
    async def test_a_missing_segment_and_a_bad_definition_are_refused(
        self, internal_stub: Internal, settings: Settings, site: Site
    ) -> None:
        await expect_error(
            internal_stub.ValidateAudience(
                internal_pb.ValidateAudienceRequest(
                    audience=segment_pb2.AudienceSelector(segment_id="seg_" + "0" * 32)
                ),
                metadata=internal(settings, site),
            ),
            grpc.StatusCode.NOT_FOUND,
            "SEGMENT_NOT_FOUND",
        )
        error = await expect_error(
            internal_stub.ValidateAudience(
                internal_pb.ValidateAudienceRequest(audience=adhoc(segment_pb2.Condition())),
                metadata=internal(settings, site),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert error_field(error).startswith("audience.definition.condition")
        await internal_stub.ValidateAudience(
            internal_pb.ValidateAudienceRequest(audience=adhoc(city_in("Paris"))),
            metadata=internal(settings, site),
        )

    async def test_answers_the_browsers_the_definition_does_not_rule_out(
        self, stub: Stub, internal_stub: Internal, settings: Settings, site: Site
    ) -> None:
        chrome_or_firefox_in_paris = segment_pb2.Condition(
            all=segment_pb2.ConditionGroup(
                conditions=[
                    segment_pb2.Condition(
                        subscriber=segment_pb2.SubscriberCondition(
                            browsers=[common_pb2.BROWSER_FIREFOX, common_pb2.BROWSER_CHROME]
                        )
                    ),
                    city_in("Paris"),
                ]
            )
        )
        saved = await stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="safari or paris",
                    definition=segment_pb2.SegmentDefinition(
                        condition=segment_pb2.Condition(
                            any=segment_pb2.ConditionGroup(
                                conditions=[
                                    segment_pb2.Condition(
                                        subscriber=segment_pb2.SubscriberCondition(
                                            browsers=[common_pb2.BROWSER_SAFARI]
                                        )
                                    ),
                                    segment_pb2.Condition(
                                        subscriber=segment_pb2.SubscriberCondition(
                                            browsers=[common_pb2.BROWSER_EDGE]
                                        )
                                    ),
                                ]
                            )
                        )
                    ),
                )
            ),
            metadata=site.metadata,
        )

        async def possible(selector: segment_pb2.AudienceSelector | None) -> list[int]:
            response = await internal_stub.ValidateAudience(
                internal_pb.ValidateAudienceRequest(audience=selector),
                metadata=internal(settings, site),
            )
            return list(response.possible_browsers)

        every_browser = [
            common_pb2.BROWSER_CHROME,
            common_pb2.BROWSER_FIREFOX,
            common_pb2.BROWSER_EDGE,
            common_pb2.BROWSER_OPERA,
            common_pb2.BROWSER_SAFARI,
            common_pb2.BROWSER_OTHER,
            common_pb2.BROWSER_SAFARI_LEGACY,
        ]
        # In enum order, whatever order the definition names them in.
        assert await possible(adhoc(chrome_or_firefox_in_paris)) == [
            common_pb2.BROWSER_CHROME,
            common_pb2.BROWSER_FIREFOX,
        ]
        assert await possible(
            segment_pb2.AudienceSelector(segment_id=saved.segment.segment_id)
        ) == [common_pb2.BROWSER_EDGE, common_pb2.BROWSER_SAFARI]
        assert await possible(adhoc(city_in("Paris"))) == every_browser
        assert await possible(None) == every_browser
        not_safari = segment_pb2.Condition(
            negate=segment_pb2.Negation(
                condition=segment_pb2.Condition(
                    subscriber=segment_pb2.SubscriberCondition(browsers=[common_pb2.BROWSER_SAFARI])
                )
            )
        )
        assert await possible(adhoc(not_safari)) == every_browser  # not complemented
