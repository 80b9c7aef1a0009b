"""StartDeliveryRun's content options, policy and recipient contexts: kept with the run
in its transaction (once, however often the start is retried), refused with
INVALID_ARGUMENT naming the field (nothing stored), and used to personalize each push
through real segment, campaign and reporting servers and the simulator, which decrypts
every message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.segment.v1 import profile_pb2, segment_service_pb2
from services.delivery.domain.runs import DeliveryRuns, RunRequest
from services.delivery.models import DeliveryRunContextRow, DeliveryRunRow
from services.delivery.store import DeliveryStore
from services.kit.clock import FrozenClock
from services.kit.db import create_engine_for
from services.kit.errors import InvalidArgument, error_info
from services.kit.templates import wrap_click_url
from tests.delivery.conftest import Stack, shared_payload

RUNS = DeliveryRunRow.__table__
CONTEXTS = DeliveryRunContextRow.__table__
GREETING = shared_payload(title="Hi {{ profile.first_name | default('there') }}")


def text(name: str, value: str) -> profile_pb2.Property:
    return profile_pb2.Property(name=name, value=profile_pb2.PropertyValue(string_value=value))


def request(**overrides: object) -> RunRequest:
    values: dict = {
        "run_id": f"run_{uuid.uuid4().hex}",
        "campaign_id": "cmp_1",
        "payload": GREETING,
        "ttl_seconds": 3600,
        "urgency": "normal",
        "subscriber_ids": ["sub_1", "sub_2"],
        "profile_ids": ["user-1"],
        "content": delivery_pb2.RunContent(
            payload=GREETING, profile_properties=["first_name"], topic="sale"
        ),
        "contexts": [
            delivery_pb2.RecipientContext(profile_id="user-1", event_properties=[text("p", "mug")]),
            delivery_pb2.RecipientContext(
                subscriber_id="sub_2", event_properties=[text("p", "hat")]
            ),
        ],
        "policy": '{"cap_per_day":1}',
    }
    values.update(overrides)
    return RunRequest(**values)


async def stored(engine: AsyncEngine, run_id: str) -> tuple[object, dict[str, str]]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(RUNS.c.content_options, RUNS.c.policy).where(RUNS.c.run_id == run_id)
            )
        ).first()
        contexts = dict(
            (
                await conn.execute(
                    select(CONTEXTS.c.person_key, CONTEXTS.c.event_properties).where(
                        CONTEXTS.c.run_id == run_id
                    )
                )
            ).all()
        )
    return row, contexts


class TestKeptWithTheRun:
    async def test_options_policy_and_contexts_are_stored_once(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        runs = DeliveryRuns(store, FrozenClock())
        first = request()

        started, created = await runs.start("site_1", first)
        # A retry (campaign's hand-off loop) with other contexts changes nothing.
        again, created_again = await runs.start(
            "site_1", request(run_id=first.run_id, contexts=[], policy="")
        )

        assert (created, created_again) == (True, False)
        assert again.run.create_time == started.run.create_time
        row, contexts = await stored(engine, first.run_id)
        assert row is not None
        assert json.loads(row.content_options) == {  # type: ignore[attr-defined]
            "profile_properties": ["first_name"],
            "topic": "sale",
            "templated": True,
        }
        assert row.policy == '{"cap_per_day":1}'  # type: ignore[attr-defined]
        assert contexts == {"p:user-1": '{"p":"mug"}', "s:sub_2": '{"p":"hat"}'}

    async def test_a_run_without_any_stores_empty_text(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        plain = request(
            payload=shared_payload(),
            content=delivery_pb2.RunContent(payload=shared_payload()),
            contexts=[],
            policy="",
        )

        await DeliveryRuns(store, FrozenClock()).start("site_1", plain)

        row, contexts = await stored(engine, plain.run_id)
        assert (row.content_options, row.policy, contexts) == ("", "", {})  # type: ignore[attr-defined]

    async def test_a_refused_context_stores_nothing(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        bad = request(
            contexts=[
                delivery_pb2.RecipientContext(subscriber_id="sub_1"),
                delivery_pb2.RecipientContext(subscriber_id="sub_1"),
            ]
        )

        with pytest.raises(InvalidArgument) as raised:
            await DeliveryRuns(store, FrozenClock()).start("site_1", bad)

        assert raised.value.reason == "DUPLICATE_CONTEXT"
        assert await store.get_run("site_1", bad.run_id) is None
        async with engine.connect() as conn:
            count = await conn.execute(
                select(func.count()).select_from(CONTEXTS).where(CONTEXTS.c.run_id == bad.run_id)
            )
            assert count.scalar_one() == 0


class TestOverGrpc:
    @pytest.mark.parametrize(
        ("overrides", "reason", "field"),
        [
            ({"content": {"topic": "a.b"}}, "INVALID_TOPIC", "content.topic"),
            ({"content": {"payload": shared_payload(title="{{ nope }}")}}, "UNKNOWN_VARIABLE",
             "content.payload"),
            ({"content": {"browser_payloads": [delivery_pb2.BrowserPayload(
                browser=common_pb2.BROWSER_SAFARI,
                payload=b'{"title":"t","engagement_token":"x"}')]}},
             "INVALID_PAYLOAD", "content.browser_payloads[0].payload"),
            ({"audience": delivery_pb2.RunAudience(
                subscriber_ids=["sub_1"], contexts=[delivery_pb2.RecipientContext()])},
             "INVALID_CONTEXT", "audience.contexts[0]"),
            ({"audience": delivery_pb2.RunAudience(subscriber_ids=["sub_1"], contexts=[
                delivery_pb2.RecipientContext(profile_id="u", subscriber_id="sub_1")])},
             "INVALID_CONTEXT", "audience.contexts[0]"),
            ({"audience": delivery_pb2.RunAudience(profile_ids=["u"], contexts=[
                delivery_pb2.RecipientContext(profile_id="u"),
                delivery_pb2.RecipientContext(profile_id="u")])},
             "DUPLICATE_CONTEXT", "audience.contexts[1]"),
        ],
    )  # fmt: skip
    async def test_refuses_what_it_could_not_follow_and_stores_nothing(
        self, stack: Stack, overrides: dict, reason: str, field: str
    ) -> None:
        site = await stack.new_site()
        content = {"payload": shared_payload(), **overrides.get("content", {})}
        start = stack.start_request(
            **{
                **overrides,
                "content": delivery_pb2.RunContent(
                    ttl_seconds=60, urgency=common_pb2.URGENCY_LOW, **content
                ),
            }
        )

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stack.delivery.StartDeliveryRun(start, metadata=stack.internal(site))

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info(raised.value)
        assert (info.reason, info.metadata["field"]) == (reason, field)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stack.get_run(site, start.run_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_the_policy_is_kept_as_its_json(self, stack: Stack) -> None:
        site = await stack.new_site()
        policy = delivery_pb2.RunPolicy(
            cap_per_week=3, quiet_start="21:30", quiet_end="07:00", control_group_percent=10
        )

        run = await stack.start_run(site, policy=policy)

        engine = create_engine_for(stack.settings.database_url)
        try:
            async with engine.connect() as conn:
                kept = (
                    await conn.execute(
                        select(RUNS.c.policy).where(
                            RUNS.c.site_id == site.site_id, RUNS.c.run_id == run.run_id
                        )
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        assert json.loads(kept) == {
            "cap_per_week": 3,
            "quiet_start": "21:30",
            "quiet_end": "07:00",
            "control_group_percent": 10,
        }
        assert " " not in kept

    async def test_each_subscriber_gets_its_profile_and_event_rendered(self, stack: Stack) -> None:
        site = await stack.new_site()
        ann_id, ann = await stack.subscriber(site, profile_id="user-ann")
        bob_id, bob = await stack.subscriber(site, profile_id="user-bob")
        anon_id, anon = await stack.subscriber(site)
        upserted = await stack.segment.UpsertProfiles(
            segment_service_pb2.UpsertProfilesRequest(
                updates=[
                    profile_pb2.ProfileUpdate(
                        profile_id="user-ann",
                        operations=[
                            profile_pb2.PropertyOperation(
                                name="first_name",
                                set=profile_pb2.PropertyValue(string_value="Ann"),
                            ),
                            profile_pb2.PropertyOperation(
                                name="orders", set=profile_pb2.PropertyValue(number_value=3)
                            ),
                        ],
                    )
                ]
            ),
            metadata=site.metadata,
        )
        assert all(result.ok for result in upserted.results), upserted
        shipped = Timestamp()
        shipped.FromDatetime(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
        payload = shared_payload(
            title="Hi {{ profile.first_name | default('there') }}",
            body="Order {{ profile.orders | default(0) }}: {{ event.item }} "
            "shipped {{ event.shipped }}",
            target_url=wrap_click_url("https://shop.test/{{ event.item }}", "utm_source=push"),
        )
        run = await stack.start_run(
            site,
            content=delivery_pb2.RunContent(
                payload=payload,
                ttl_seconds=600,
                urgency=common_pb2.URGENCY_NORMAL,
                profile_properties=["first_name", "orders"],
                missing_value_text="?",
            ),
            audience=delivery_pb2.RunAudience(
                subscriber_ids=[anon_id],
                profile_ids=["user-ann", "user-bob"],
                contexts=[
                    delivery_pb2.RecipientContext(
                        profile_id="user-ann",
                        event_properties=[
                            text("item", "mug"),
                            profile_pb2.Property(
                                name="shipped",
                                value=profile_pb2.PropertyValue(timestamp_value=shipped),
                            ),
                        ],
                    ),
                    delivery_pb2.RecipientContext(
                        subscriber_id=anon_id, event_properties=[text("item", "cap")]
                    ),
                ],
            ),
        )

        finished = await stack.wait_finished(site, run.run_id)

        assert finished.progress.sent == 3
        got = {}
        for subscriber_id, sub in ((ann_id, ann), (bob_id, bob), (anon_id, anon)):
            [message] = stack.simulator.messages(sub.endpoint)
            got[subscriber_id] = message.payload()
        assert {k: (v["title"], v["body"], v.get("target_url")) for k, v in got.items()} == {
            ann_id: ("Hi Ann", "Order 3: mug shipped 2026-05-04T12:00:00+00:00",
                     "https://shop.test/mug?utm_source=push"),
            bob_id: ("Hi there", "Order 0: ? shipped ?", "https://shop.test/?utm_source=push"),
            anon_id: ("Hi there", "Order 0: cap shipped ?", "https://shop.test/cap?utm_source=push"),
        }  # fmt: skip
        assert all(got[k]["subscriber_id"] == k for k in got)
