"""DeliveryService over real gRPC, with real campaign/segment/reporting servers and the
push-service simulator on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import grpc
import pytest

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2, delivery_service_pb2
from clarion.reporting.v1 import reporting_service_pb2
from clarion.segment.v1 import segment_service_pb2, subscriber_pb2
from clarion.simulator import Behaviour
from services.delivery.domain.payload import topic_for
from services.kit.errors import error_info
from tests.delivery.conftest import Site, Stack

SENT = common_pb2.DELIVERY_STATUS_SENT
FAILED = common_pb2.DELIVERY_STATUS_FAILED


async def rpc_error(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def enqueue(stack: Stack, site: Site, run_id: str, recipients: list[delivery_pb2.Recipient]):  # type: ignore[no-untyped-def]
    return stack.delivery.EnqueueRecipients(
        delivery_service_pb2.EnqueueRecipientsRequest(run_id=run_id, recipients=recipients),
        metadata=site.metadata,
    )


def get_run(stack: Stack, site: Site, run_id: str):  # type: ignore[no-untyped-def]
    return stack.delivery.GetDeliveryRun(
        delivery_service_pb2.GetDeliveryRunRequest(run_id=run_id), metadata=site.metadata
    )


def fake_recipient(**subscription: object) -> delivery_pb2.Recipient:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    values: dict[str, object] = {
        "endpoint": f"https://push.example.test/{uuid.uuid4().hex}",
        "p256dh": ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        "auth": os.urandom(16),
    }
    values.update(subscription)
    return delivery_pb2.Recipient(
        subscriber_id=f"sub_{uuid.uuid4().hex}",
        push_subscription=common_pb2.PushSubscription(**values),  # type: ignore[arg-type]
    )


class TestCreateDeliveryRun:
    async def test_is_idempotent_per_run_id(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site, campaign_id="cmp_1")
        again = await stack.delivery.CreateDeliveryRun(
            delivery_service_pb2.CreateDeliveryRunRequest(
                run_id=run_id, campaign_id="cmp_1", notification=common_pb2.Notification(title="x")
            ),
            metadata=site.metadata,
        )
        assert again.delivery_run.run_id == run_id
        assert again.delivery_run.state == delivery_pb2.DELIVERY_RUN_STATE_QUEUEING

    async def test_another_campaign_cannot_take_a_run_id(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site, campaign_id="cmp_1")
        error = await rpc_error(
            stack.delivery.CreateDeliveryRun(
                delivery_service_pb2.CreateDeliveryRunRequest(
                    run_id=run_id,
                    campaign_id="cmp_2",
                    notification=common_pb2.Notification(title="x"),
                ),
                metadata=site.metadata,
            )
        )
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_info(error).reason == "RUN_ID_TAKEN"

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"run_id": ""}, "MISSING_FIELD"),
            ({"notification": common_pb2.Notification(title="")}, "MISSING_FIELD"),
            (
                {"notification": common_pb2.Notification(title="t", target_url="javascript:x")},
                "INVALID_URL",
            ),
            ({"ttl_seconds": -1}, "INVALID_TTL"),
            (
                {"notification": common_pb2.Notification(title="t", body="x" * 5000)},
                "PAYLOAD_TOO_LARGE",
            ),
        ],
    )
    async def test_rejects_bad_input(self, stack: Stack, overrides: dict, reason: str) -> None:
        site = await stack.new_site()
        error = await rpc_error(stack.create_run(site, **overrides))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == reason


class TestEnqueueRecipients:
    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            ({"subscriber_id": ""}, "recipients[1].subscriber_id"),
            ({"endpoint": "ftp://push.example.test/x"}, "recipients[1].push_subscription.endpoint"),
            ({"p256dh": b"\x04" + b"\x01" * 64}, "recipients[1].push_subscription.p256dh"),
            ({"p256dh": b"short"}, "recipients[1].push_subscription.p256dh"),
            ({"auth": b"x" * 15}, "recipients[1].push_subscription.auth"),
        ],
    )
    async def test_one_bad_recipient_stores_nothing(
        self, stack: Stack, bad: dict, field: str
    ) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        broken = fake_recipient()
        if "subscriber_id" in bad:
            broken.subscriber_id = bad["subscriber_id"]
        else:
            for key, value in bad.items():
                setattr(broken.push_subscription, key, value)

        error = await rpc_error(
            enqueue(stack, site, run_id, [fake_recipient(), broken, fake_recipient()])
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == field
        assert (await get_run(stack, site, run_id)).delivery_run.total == 0

    async def test_plain_http_needs_allow_insecure_endpoints(self, stack: Stack) -> None:
        # The stack allows it (the simulator is plain HTTP); the default does not.
        assert stack.settings.allow_insecure_endpoints
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        queued = await enqueue(
            stack, site, run_id, [fake_recipient(endpoint="http://127.0.0.1:1/x")]
        )
        assert queued.queued == 1

    async def test_duplicates_are_ignored(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        first, second = fake_recipient(), fake_recipient()

        assert (await enqueue(stack, site, run_id, [first, first])).queued == 1
        assert (await enqueue(stack, site, run_id, [first, second])).queued == 1
        assert (await get_run(stack, site, run_id)).delivery_run.total == 2

    async def test_a_started_run_takes_no_more_recipients(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        await stack.delivery.StartDeliveryRun(
            delivery_service_pb2.StartDeliveryRunRequest(run_id=run_id), metadata=site.metadata
        )
        error = await rpc_error(enqueue(stack, site, run_id, [fake_recipient()]))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(error).reason == "RUN_ALREADY_STARTED"

    async def test_another_sites_run_is_not_found(self, stack: Stack) -> None:
        owner, other = await stack.new_site(), await stack.new_site()
        run_id = await stack.create_run(owner)
        for call in (
            enqueue(stack, other, run_id, [fake_recipient()]),
            get_run(stack, other, run_id),
            stack.delivery.StartDeliveryRun(
                delivery_service_pb2.StartDeliveryRunRequest(run_id=run_id), metadata=other.metadata
            ),
            stack.outcome(other, run_id, "sub_x"),
        ):
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error_info(error).reason == "RUN_NOT_FOUND"


class TestStartDeliveryRun:
    async def test_with_no_recipients_is_done_at_once(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        started = await stack.delivery.StartDeliveryRun(
            delivery_service_pb2.StartDeliveryRunRequest(run_id=run_id), metadata=site.metadata
        )
        assert started.delivery_run.state == delivery_pb2.DELIVERY_RUN_STATE_DONE
        assert started.delivery_run.HasField("finish_time")


class TestSending:
    async def test_every_recipient_gets_the_exact_payload(self, stack: Stack) -> None:
        site = await stack.new_site(subject="mailto:ops@shop.test")
        pairs = [await stack.subscriber(site) for _ in range(25)]  # two chunks
        run_id = await stack.create_run(
            site,
            campaign_id="cmp_sale",
            notification=common_pb2.Notification(
                title="Soldes – été",
                body="",
                icon_url="https://shop.test/i.png",
                target_url="https://shop.test/sale",
            ),
            ttl_seconds=600,
            urgency=common_pb2.URGENCY_HIGH,
        )

        run = await stack.send(site, run_id, [recipient for recipient, _ in pairs])

        assert (run.total, run.sent, run.failed, run.pending) == (25, 25, 0, 0)
        expected = (
            '{"title":"Soldes – été","icon":"https://shop.test/i.png",'
            f'"url":"https://shop.test/sale","campaign_id":"cmp_sale","run_id":"{run_id}"}}'
        ).encode()
        for recipient, sub in pairs:
            [message] = stack.simulator.messages(sub.endpoint)
            assert message.plaintext == expected
            assert json.loads(message.plaintext)["run_id"] == run_id
            assert (message.ttl, message.urgency, message.topic) == (600, "high", topic_for(run_id))
            assert message.vapid_public_key == site.vapid_public_key
            assert message.vapid_claims["sub"] == "mailto:ops@shop.test"
            outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
            assert (outcome.status, outcome.attempts) == (SENT, 1)

    async def test_gone_subscription_fails_and_is_unsubscribed(self, stack: Stack) -> None:
        site = await stack.new_site()
        (gone, gone_sub), (alive, _) = await stack.subscriber(site), await stack.subscriber(site)
        stack.simulator.set_behaviour(gone_sub.endpoint, Behaviour(status=410))
        run_id = await stack.create_run(site)

        run = await stack.send(site, run_id, [gone, alive])

        assert (run.sent, run.failed) == (1, 1)
        outcome = await stack.outcome(site, run_id, gone.subscriber_id)
        assert (outcome.status, outcome.reason, outcome.attempts) == (FAILED, "push_service_410", 1)
        subscriber = (
            await stack.segment.GetSubscriber(
                segment_service_pb2.GetSubscriberRequest(subscriber_id=gone.subscriber_id),
                metadata=site.metadata,
            )
        ).subscriber
        assert subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
        assert subscriber.unsubscribe_reason == "push_service_410"

    async def test_rate_limited_send_is_retried_after_retry_after(self, stack: Stack) -> None:
        site = await stack.new_site()
        recipient, sub = await stack.subscriber(site)
        stack.simulator.set_behaviour(sub.endpoint, Behaviour(status=429, retry_after=1, times=1))
        run_id = await stack.create_run(site)

        run = await stack.send(site, run_id, [recipient])

        assert run.sent == 1
        outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
        assert (outcome.status, outcome.attempts) == (SENT, 2)
        [message] = stack.simulator.messages(sub.endpoint)
        # The Topic depends on the run alone, so the 429'd first attempt carried it too.
        assert message.topic == topic_for(run_id)
        assert stack.simulator.stats.rejected[429] >= 1

    async def test_server_errors_fail_after_max_attempts(self, stack: Stack) -> None:
        site = await stack.new_site()
        recipient, sub = await stack.subscriber(site)
        stack.simulator.set_behaviour(sub.endpoint, Behaviour(status=500))
        run_id = await stack.create_run(site)

        run = await stack.send(site, run_id, [recipient])

        assert run.failed == 1
        outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
        assert (outcome.status, outcome.reason) == (FAILED, "push_service_5xx")
        assert outcome.attempts == stack.settings.push_max_attempts
        assert stack.simulator.messages(sub.endpoint) == []

    async def test_payload_too_large_fails_without_retry(self, stack: Stack) -> None:
        site = await stack.new_site()
        recipient, sub = await stack.subscriber(site)
        stack.simulator.set_behaviour(sub.endpoint, Behaviour(status=413))
        run_id = await stack.create_run(site)

        await stack.send(site, run_id, [recipient])

        outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
        assert (outcome.status, outcome.reason, outcome.attempts) == (
            FAILED,
            "payload_too_large",
            1,
        )

    async def test_unauthorized_vapid_fails_with_the_status(self, stack: Stack) -> None:
        site, other = await stack.new_site(), await stack.new_site()
        # Subscribed with another site's applicationServerKey: the simulator answers 403.
        sub = stack.simulator.mint_subscription(application_server_key=other.vapid_public_key)
        recipient = delivery_pb2.Recipient(
            subscriber_id="sub_wrong_key",
            push_subscription=common_pb2.PushSubscription(
                endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth
            ),
        )
        run_id = await stack.create_run(site)

        await stack.send(site, run_id, [recipient])

        outcome = await stack.outcome(site, run_id, "sub_wrong_key")
        assert (outcome.status, outcome.reason) == (FAILED, "push_service_403")

    async def test_a_hung_push_service_times_out_and_is_retried(self, stack: Stack) -> None:
        site = await stack.new_site()
        recipient, sub = await stack.subscriber(site)
        stack.simulator.set_behaviour(sub.endpoint, Behaviour(hang=True, times=1))
        run_id = await stack.create_run(site)

        await stack.send(site, run_id, [recipient])

        outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
        assert (outcome.status, outcome.attempts) == (SENT, 2)
        assert len(stack.simulator.messages(sub.endpoint)) == 1

    async def test_outcomes_reach_reporting(self, stack: Stack) -> None:
        site = await stack.new_site()
        (ok, _), (gone, gone_sub) = await stack.subscriber(site), await stack.subscriber(site)
        stack.simulator.set_behaviour(gone_sub.endpoint, Behaviour(status=404))
        campaign_id = f"cmp_{uuid.uuid4().hex}"
        run_id = await stack.create_run(site, campaign_id=campaign_id)

        run = await stack.send(site, run_id, [ok, gone])

        assert (run.total, run.sent, run.failed, run.suppressed, run.expired) == (2, 1, 1, 0, 0)
        # Outcomes are reported right after the chunk, just after the run turned DONE.
        async with asyncio.timeout(10):
            while True:
                report = (
                    await stack.reporting.GetCampaignReport(
                        reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                        metadata=site.metadata,
                    )
                ).report
                if report.sent + report.failed == 2:
                    break
                await asyncio.sleep(0.05)
        assert (report.sent, report.failed) == (1, 1)


class TestGetRecipientOutcome:
    async def test_a_subscriber_not_in_the_run_is_not_found(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        error = await rpc_error(stack.outcome(site, run_id, "sub_never_queued"))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error).reason == "RECIPIENT_NOT_QUEUED"

    async def test_a_queued_recipient_is_pending_before_start(self, stack: Stack) -> None:
        site = await stack.new_site()
        run_id = await stack.create_run(site)
        recipient = fake_recipient()
        await enqueue(stack, site, run_id, [recipient])
        outcome = await stack.outcome(site, run_id, recipient.subscriber_id)
        assert (outcome.status, outcome.reason, outcome.attempts) == (
            common_pb2.DELIVERY_STATUS_UNSPECIFIED,
            "pending",
            0,
        )
