"""ResolveClickTarget: where a click on a recipient's push leads, made again from what
delivery sent it (its variant, its personalization), on real servers."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2
from clarion.segment.v1 import profile_pb2
from services.kit.errors import error_info
from tests.delivery.conftest import Site, Stack

UTM = "utm_source=clarion&utm_medium=push"


def payload(run_id: str, url: str, *actions: str) -> bytes:
    document = {"title": "Sale", "url": url, "run_id": run_id}
    if actions:
        document["actions"] = [
            {"action": f"action_{n}", "title": f"B{n}", "url": action}
            for n, action in enumerate(actions, start=1)
        ]
    return json.dumps(document).encode()


async def resolve(
    stack: Stack, site: Site, run_id: str, subscriber_id: str, button: int = 0
) -> delivery_service_pb2.ResolveClickTargetResponse:
    return await stack.delivery.ResolveClickTarget(
        delivery_service_pb2.ResolveClickTargetRequest(
            run_id=run_id, subscriber_id=subscriber_id, button=button
        ),
        metadata=stack.internal(site),
    )


class TestResolveClickTarget:
    async def test_the_body_and_each_button_lead_to_their_urls(self, stack):
        site = await stack.new_site()
        subscriber_id, _ = await stack.subscriber(site)
        run_id = f"run_{uuid.uuid4().hex}"
        content = delivery_pb2.RunContent(
            payload=payload(
                run_id, f"https://shop.test/sale?{UTM}", f"https://shop.test/cart?{UTM}"
            ),
            ttl_seconds=3600,
        )
        run = await stack.start_run(
            site,
            run_id=run_id,
            content=content,
            audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id]),
        )
        await stack.wait_finished(site, run_id)

        body = await resolve(stack, site, run_id, subscriber_id)
        button = await resolve(stack, site, run_id, subscriber_id, 1)
        missing = await resolve(stack, site, run_id, subscriber_id, 2)

        assert (body.url, body.action) == (f"https://shop.test/sale?{UTM}", "")
        assert body.sent and body.HasField("sent_time")
        assert body.campaign_id == run.campaign_id
        assert (button.url, button.action) == (f"https://shop.test/cart?{UTM}", "action_1")
        assert (missing.url, missing.action) == ("", "")

    async def test_a_personalized_url_is_the_one_the_recipient_was_sent(self, stack):
        site = await stack.new_site()
        with_sku, _ = await stack.subscriber(site)
        without, _ = await stack.subscriber(site)
        run_id = f"run_{uuid.uuid4().hex}"
        sku = profile_pb2.Property(name="sku", value=profile_pb2.PropertyValue(string_value="x9"))
        await stack.start_run(
            site,
            run_id=run_id,
            content=delivery_pb2.RunContent(
                payload=payload(run_id, "https://shop.test/p/{{ event.sku }}?" + UTM),
                ttl_seconds=3600,
                suppress_missing_values=True,
            ),
            audience=delivery_pb2.RunAudience(
                subscriber_ids=[with_sku, without],
                contexts=[
                    delivery_pb2.RecipientContext(subscriber_id=with_sku, event_properties=[sku])
                ],
            ),
        )
        await stack.wait_finished(site, run_id)

        sent = await resolve(stack, site, run_id, with_sku)
        suppressed = await resolve(stack, site, run_id, without)

        assert (sent.url, sent.sent) == (f"https://shop.test/p/x9?{UTM}", True)
        assert (suppressed.url, suppressed.sent) == ("", False)
        assert not suppressed.HasField("sent_time")

    async def test_a_variant_recipient_gets_its_variants_url(self, stack):
        site = await stack.new_site()
        subscriber_id, _ = await stack.subscriber(site)
        run_id = f"run_{uuid.uuid4().hex}"
        await stack.start_run(
            site,
            run_id=run_id,
            audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id]),
            variants=[
                delivery_pb2.RunVariant(
                    variant_id="B",
                    weight_percent=100,
                    content=delivery_pb2.RunContent(
                        payload=payload(run_id, "https://shop.test/b"),
                        ttl_seconds=3600,
                        urgency=common_pb2.URGENCY_HIGH,
                    ),
                )
            ],
        )
        await stack.wait_finished(site, run_id)

        assert (await resolve(stack, site, run_id, subscriber_id)).url == "https://shop.test/b"

    async def test_no_such_recipient_is_not_found(self, stack):
        site = await stack.new_site()
        subscriber_id, _ = await stack.subscriber(site)
        run_id = f"run_{uuid.uuid4().hex}"
        await stack.start_run(
            site, run_id=run_id, audience=delivery_pb2.RunAudience(subscriber_ids=[subscriber_id])
        )
        await stack.wait_finished(site, run_id)
        other_site = await stack.new_site()

        for site_asked, run_asked, subscriber_asked in (
            (site, run_id, "sub_nobody"),
            (site, "run_nothing", subscriber_id),
            (other_site, run_id, subscriber_id),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await resolve(stack, site_asked, run_asked, subscriber_asked)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(raised.value).reason == "RECIPIENT_NOT_QUEUED"

    async def test_a_button_out_of_range_is_invalid(self, stack):
        site = await stack.new_site()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await resolve(stack, site, "run_1", "sub_1", 3)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(raised.value).reason == "INVALID_BUTTON"
