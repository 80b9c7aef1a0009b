"""Personalized runs through DeliveryWorkers over the real store, with the in-memory fakes
of tests/delivery/conftest.py: each recipient's payload rendered from the run's
templates with its profile's properties and its event, per-browser payloads, the run's
Topic, and the recipients whose copy cannot be made (suppressed or failed, never sent);
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

import http_ece
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.segment.v1 import profile_pb2
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.delivery.domain.payload import MAX_PAYLOAD_BYTES, topic_for
from services.delivery.models import DeliveryRecipientRow, RecipientState, RunState
from services.delivery.store import Member
from services.kit.templates import wrap_click_url
from services.kit.tokens import verify_engagement_token
from tests.delivery.conftest import Harness, members, shared_payload, subscription_member

GREETING = shared_payload(title="Hi {{ profile.first_name | default('there') }}")


def person(
    sub: SimulatedSubscription,
    subscriber_id: str,
    *,
    profile_id: str = "",
    browser: int = common_pb2.BROWSER_CHROME,
    **properties: Any,
) -> Member:
    """A member whose push messages decrypt, with its profile's properties as segment
    would give them."""
    return replace(
        subscription_member(sub, subscriber_id),
        profile_id=profile_id,
        browser=browser,
        profile_properties=properties,
    )


def received(harness: Harness, sub: SimulatedSubscription) -> list[tuple[dict, dict[str, str]]]:
    """What the push service got for `sub`: each decrypted payload with its headers."""
    return [
        (
            json.loads(
                http_ece.decrypt(
                    body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                )
            ),
            headers,
        )
        for body, headers in harness.transport.sent.get(sub.endpoint, [])
    ]


def content(payload: bytes = GREETING, **fields: Any) -> delivery_pb2.RunContent:
    return delivery_pb2.RunContent(payload=payload, ttl_seconds=3600, **fields)


def event(product: str) -> list[profile_pb2.Property]:
    """A triggering event's properties: the product it was about."""
    value = profile_pb2.PropertyValue(string_value=product)
    return [profile_pb2.Property(name="product", value=value)]


async def outcome(harness: Harness, site_id: str, run_id: str, subscriber_id: str) -> tuple:
    view = await harness.store.recipient(site_id, run_id, subscriber_id)
    assert view is not None, subscriber_id
    return view.state, view.reason, view.attempts


class TestTemplatedPayloads:
    async def test_each_recipient_reads_its_own_profile(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        subs = [simulator.mint_subscription() for _ in range(3)]
        audience = [
            person(subs[0], "sub_ann", profile_id="user-ann", first_name="Ann", city="Lyon"),
            person(subs[1], "sub_bob", profile_id="user-bob", first_name="Bob"),
            person(subs[2], "sub_anon"),
        ]
        site_id, run_id = await harness.start_run(
            audience, payload=GREETING, content=content(profile_properties=["first_name"])
        )

        await harness.deliver()

        # Segment is asked for the properties on every page; only those are kept.
        assert set(harness.audience.properties_asked) == {("first_name",)}
        titles = {}
        for member, sub in zip(audience, subs, strict=True):
            [(payload, headers)] = received(harness, sub)
            titles[member.subscriber_id] = payload["title"]
            assert payload["subscriber_id"] == member.subscriber_id
            assert verify_engagement_token(
                harness.credentials.engagement_secret,
                payload["engagement_token"],
                site_id,
                run_id,
                member.subscriber_id,
            )
            assert headers["Topic"] == topic_for(run_id)
        assert titles == {"sub_ann": "Hi Ann", "sub_bob": "Hi Bob", "sub_anon": "Hi there"}
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE

    async def test_a_listed_person_reads_its_event_profile_first_then_subscriber(
        self, harness: Harness, simulator: PushServiceSimulator, engine: AsyncEngine
    ) -> None:
        subs = [simulator.mint_subscription() for _ in range(5)]
        audience = [
            # Two browsers of one profile: both read the profile's event, not the
            # context one of them has of its own.
            person(subs[0], "sub_p1", profile_id="user-1"),
            person(subs[1], "sub_p2", profile_id="user-1"),
            person(subs[2], "sub_anon"),
            person(subs[3], "sub_none"),
            # A profile without a context: its subscriber's.
            person(subs[4], "sub_q", profile_id="user-2"),
        ]
        payload = shared_payload(body="Your {{ event.product | default('order') }}")
        site_id, run_id = await harness.start_run(
            audience,
            payload=payload,
            content=content(payload),
            subscriber_ids=["sub_anon", "sub_none", "sub_p2", "sub_q"],
            profile_ids=["user-1"],
            contexts=[
                delivery_pb2.RecipientContext(profile_id="user-1", event_properties=event("mug")),
                delivery_pb2.RecipientContext(
                    subscriber_id="sub_p2", event_properties=event("hat")
                ),
                delivery_pb2.RecipientContext(
                    subscriber_id="sub_anon", event_properties=event("cap")
                ),
                delivery_pb2.RecipientContext(subscriber_id="sub_q", event_properties=event("pen")),
            ],
        )
        assert len(await harness.store.run_contexts(site_id, run_id)) == 4

        await harness.deliver()

        bodies = [received(harness, sub)[0][0]["body"] for sub in subs]
        assert bodies == ["Your mug", "Your mug", "Your cap", "Your order", "Your pen"]
        # Each queued recipient kept what it reads; the run's contexts are no longer needed.
        table = DeliveryRecipientRow.__table__
        async with engine.connect() as conn:
            stored = dict(
                (
                    await conn.execute(
                        select(table.c.subscriber_id, table.c.context).where(
                            table.c.run_id == run_id
                        )
                    )
                ).all()
            )
        assert stored == {
            "sub_p1": '{"event":{"product":"mug"}}',
            "sub_p2": '{"event":{"product":"mug"}}',
            "sub_anon": '{"event":{"product":"cap"}}',
            "sub_none": "",
            "sub_q": '{"event":{"product":"pen"}}',
        }
        assert await harness.store.run_contexts(site_id, run_id) == {}

    async def test_an_untemplated_run_queues_no_context(
        self, harness: Harness, engine: AsyncEngine
    ) -> None:
        audience = [replace(m, profile_properties={"first_name": "Ann"}) for m in members(2)]
        site_id, run_id = await harness.start_run(audience)

        await harness.deliver()

        assert set(harness.audience.properties_asked) == {()}
        table = DeliveryRecipientRow.__table__
        async with engine.connect() as conn:
            contexts = (
                await conn.execute(select(table.c.context).where(table.c.run_id == run_id))
            ).scalars()
            assert set(contexts) == {""}
        assert (await harness.store.get_run(site_id, run_id)).content_options == ""  # type: ignore[union-attr]


class TestMissingValues:
    PAYLOAD = shared_payload(body="Weather in {{ profile.city }}")

    async def test_the_run_suppresses_a_recipient_missing_a_value(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        has, lacks = simulator.mint_subscription(), simulator.mint_subscription()
        audience = [
            person(has, "sub_has", profile_id="u1", city="Oslo"),
            person(lacks, "sub_lacks", profile_id="u2"),
        ]
        site_id, run_id = await harness.start_run(
            audience,
            payload=self.PAYLOAD,
            content=content(
                self.PAYLOAD, profile_properties=["city"], suppress_missing_values=True
            ),
        )

        await harness.deliver()

        assert [p["body"] for p, _ in received(harness, has)] == ["Weather in Oslo"]
        assert harness.transport.posts[lacks.endpoint] == 0
        assert await outcome(harness, site_id, run_id, "sub_lacks") == (
            RecipientState.SUPPRESSED,
            "personalization_missing",
            0,
        )
        reported = {(o.subscriber_id, o.state, o.reason) for o in harness.sink.outcomes}
        assert reported == {
            ("sub_has", "sent", ""),
            ("sub_lacks", "suppressed", "personalization_missing"),
        }
        counts = (await harness.store.run_counts(site_id, [run_id]))[run_id]
        assert (counts.sent, counts.suppressed, counts.pending) == (1, 1, 0)

    async def test_or_prints_its_text_instead(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        lacks = simulator.mint_subscription()
        site_id, run_id = await harness.start_run(
            [person(lacks, "sub_lacks", profile_id="u2")],
            payload=self.PAYLOAD,
            content=content(
                self.PAYLOAD, profile_properties=["city"], missing_value_text="your town"
            ),
        )

        await harness.deliver()

        assert [p["body"] for p, _ in received(harness, lacks)] == ["Weather in your town"]
        assert (await outcome(harness, site_id, run_id, "sub_lacks"))[0] is RecipientState.SENT


class TestRefusedCopies:
    async def test_a_click_url_rendered_to_javascript_fails_only_that_recipient(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        good, evil = simulator.mint_subscription(), simulator.mint_subscription()
        payload = shared_payload(target_url=wrap_click_url("{{ profile.link }}", "utm_source=push"))
        site_id, run_id = await harness.start_run(
            [
                person(good, "sub_good", profile_id="u1", link="https://shop.test/p?id=1"),
                person(evil, "sub_evil", profile_id="u2", link="javascript:alert(1)"),
            ],
            payload=payload,
            content=content(payload, profile_properties=["link"]),
        )

        await harness.deliver()

        [(sent, _)] = received(harness, good)
        assert sent["target_url"] == "https://shop.test/p?id=1&utm_source=push"
        assert harness.transport.posts[evil.endpoint] == 0
        assert await outcome(harness, site_id, run_id, "sub_evil") == (
            RecipientState.FAILED,
            "personalization_invalid",
            0,
        )
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE

    async def test_a_rendered_copy_too_long_for_a_push_message_fails(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        short, long = simulator.mint_subscription(), simulator.mint_subscription()
        payload = shared_payload(body="{{ profile.bio }}")
        site_id, run_id = await harness.start_run(
            [
                person(short, "sub_short", profile_id="u1", bio="Likes tea"),
                person(long, "sub_long", profile_id="u2", bio="é" * (MAX_PAYLOAD_BYTES // 2)),
            ],
            payload=payload,
            content=content(payload, profile_properties=["bio"]),
        )

        await harness.deliver()

        assert [p["body"] for p, _ in received(harness, short)] == ["Likes tea"]
        assert harness.transport.posts[long.endpoint] == 0
        assert await outcome(harness, site_id, run_id, "sub_long") == (
            RecipientState.FAILED,
            "payload_too_large",
            0,
        )
        reported = Counter((o.state, o.reason) for o in harness.sink.outcomes)
        assert reported == Counter({("sent", ""): 1, ("failed", "payload_too_large"): 1})


class TestPerBrowser:
    async def test_a_safari_recipient_gets_the_safari_payload(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        chrome, safari = simulator.mint_subscription(), simulator.mint_subscription()
        everyone = shared_payload(
            title="Hi {{ profile.first_name }}", icon="https://cdn.test/i.png"
        )
        for_safari = shared_payload(title="Hi {{ profile.first_name }}")
        site_id, run_id = await harness.start_run(
            [
                person(chrome, "sub_chrome", profile_id="u1", first_name="Ann"),
                person(
                    safari,
                    "sub_safari",
                    profile_id="u2",
                    browser=common_pb2.BROWSER_SAFARI,
                    first_name="Bea",
                ),
            ],
            payload=everyone,
            content=content(
                everyone,
                profile_properties=["first_name"],
                browser_payloads=[
                    delivery_pb2.BrowserPayload(
                        browser=common_pb2.BROWSER_SAFARI, payload=for_safari
                    )
                ],
            ),
        )

        await harness.deliver()

        [(to_chrome, _)] = received(harness, chrome)
        [(to_safari, _)] = received(harness, safari)
        assert (to_chrome["title"], to_chrome.get("icon")) == ("Hi Ann", "https://cdn.test/i.png")
        assert (to_safari["title"], "icon" in to_safari) == ("Hi Bea", False)
        assert to_safari["subscriber_id"] == "sub_safari"

    async def test_an_untemplated_browser_payload_goes_as_it_is(
        self, harness: Harness, simulator: PushServiceSimulator
    ) -> None:
        chrome, safari = simulator.mint_subscription(), simulator.mint_subscription()
        for_safari = shared_payload(title="Sale", body="no icon here")
        site_id, run_id = await harness.start_run(
            [
                person(chrome, "sub_chrome"),
                person(safari, "sub_safari", browser=common_pb2.BROWSER_SAFARI),
            ],
            content=content(
                shared_payload(),
                browser_payloads=[
                    delivery_pb2.BrowserPayload(
                        browser=common_pb2.BROWSER_SAFARI, payload=for_safari
                    )
                ],
            ),
            payload=shared_payload(),
        )

        await harness.deliver()

        assert received(harness, safari)[0][0]["body"] == "no icon here"
        assert received(harness, chrome)[0][0]["body"] == "50% off today"


class TestTopic:
    @pytest.mark.parametrize("payload", [shared_payload(), GREETING], ids=["plain", "templated"])
    async def test_the_runs_topic_replaces_the_derived_one(
        self, harness: Harness, simulator: PushServiceSimulator, payload: bytes
    ) -> None:
        sub = simulator.mint_subscription()
        site_id, run_id = await harness.start_run(
            [person(sub, "sub_1")], payload=payload, content=content(payload, topic="spring-sale")
        )

        await harness.deliver()

        [(sent, headers)] = received(harness, sub)
        assert headers["Topic"] == "spring-sale" != topic_for(run_id)
        assert sent["title"] in ("Sale", "Hi there")
