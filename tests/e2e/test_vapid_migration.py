"""Moving from another provider: its VAPID key pair is imported (`clarion site
import-vapid-key`), browsers that subscribed under its applicationServerKey are
registered with that key's id, and a campaign reaches them signed with it, beside
browsers of the site's own key. The simulator refuses (403) a push whose VAPID key is
not the subscription's applicationServerKey, so a message received proves the key."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.demo import register_browsers
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import PushServiceSimulator, SimulatedSubscription
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel
from tests.e2e.test_cli_remote import clarion, one_line_error
from tests.support.sites import bearer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def foreign_key_pair() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """Another provider's VAPID key pair (and its applicationServerKey)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key, public


async def register_moved(
    stack: EmbeddedStack, api_key: str, subscription: SimulatedSubscription, vapid_key_id: str
) -> str:
    """A subscription moved from the other provider, as an import registers it."""
    async with client_channel(stack.address("segment")) as channel:
        response = await segment_service_pb2_grpc.SegmentServiceStub(channel).RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
                browser=common_pb2.BROWSER_CHROME,
                vapid_key_id=vapid_key_id,
            ),
            metadata=bearer(api_key),
            timeout=10,
        )
    assert response.subscriber.vapid_key_id == vapid_key_id
    return response.subscriber.subscriber_id


async def send_campaign(
    stack: EmbeddedStack,
    api_key: str,
    title: str,
    until: Callable[[campaign_pb2.Run], bool] | None = None,
) -> campaign_pb2.Run:
    """Creates and sends a campaign; returns its run once finished (or once `until`
    accepts it)."""
    async with client_channel(stack.address("campaign")) as channel:
        stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
        created = await stub.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title=title, body="We moved to Clarion", target_url="https://shop.example/"
                )
            ),
            metadata=bearer(api_key),
            timeout=10,
        )
        sent = await stub.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=created.campaign.campaign_id),
            metadata=bearer(api_key),
            timeout=30,
        )
        deadline = time.monotonic() + 60
        finished = (campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED)
        while True:
            run = (
                await stub.GetRun(
                    campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id),
                    metadata=bearer(api_key),
                    timeout=10,
                )
            ).run
            settled = run.progress.sent + run.progress.failed + run.progress.suppressed
            if until is not None and until(run):
                return run
            if until is None and run.state in finished and settled == run.audience:
                return run
            assert time.monotonic() < deadline, f"run still {run.state}: {run.progress}"
            await asyncio.sleep(0.05)


async def recipient(
    stack: EmbeddedStack, api_key: str, run_id: str, subscriber_id: str
) -> campaign_pb2.RunRecipient:
    async with client_channel(stack.address("campaign")) as channel:
        response = await campaign_service_pb2_grpc.CampaignServiceStub(channel).GetRunRecipient(
            campaign_service_pb2.GetRunRecipientRequest(run_id=run_id, subscriber_id=subscriber_id),
            metadata=bearer(api_key),
            timeout=10,
        )
    return response.recipient


class TestMigrationKeepsOldBrowsersReceiving:
    async def test_old_and_new_browsers_both_receive_and_decrypt(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "Moved shop", "mailto:ops@example.com")
        key, foreign_public = foreign_key_pair()
        # The other provider's export: a SEC1 PEM, with its public key shown beside it.
        pem = tmp_path / "old-provider-vapid.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

        imported = await clarion(
            stack, site.api_key, "site", "import-vapid-key", str(pem),
            "--public-key", b64url(foreign_public), "--json",
        )  # fmt: skip
        assert imported.code == 0, imported.err
        vapid_key = json.loads(imported.out)
        key_id = vapid_key["vapid_key_id"]
        assert vapid_key["created"] is True and vapid_key["origin"] == "imported"
        assert "PRIVATE" not in imported.out + imported.err

        # Browsers subscribed at the other provider (its applicationServerKey), moved
        # with the key's id; and one browser subscribing with the site's own key.
        old_browsers = [
            simulator.mint_subscription(application_server_key=foreign_public) for _ in range(2)
        ]
        old_ids = [await register_moved(stack, site.api_key, s, key_id) for s in old_browsers]
        new_browser = simulator.mint_subscription(application_server_key=site.vapid_public_key)
        async with aiohttp.ClientSession() as session:
            [new_id] = await register_browsers(
                session, stack.gateway_url, site.site_id, [new_browser]
            )

        run = await send_campaign(stack, site.api_key, f"Hello {uuid.uuid4().hex[:6]}")

        assert run.state == campaign_pb2.RUN_STATE_DONE
        assert (run.audience, run.progress.sent, run.progress.failed) == (3, 3, 0)
        for browser, subscriber_id, signer in [
            (old_browsers[0], old_ids[0], foreign_public),
            (old_browsers[1], old_ids[1], foreign_public),
            (new_browser, new_id, site.vapid_public_key),
        ]:
            [message] = [
                m for m in simulator.messages(browser.endpoint)
                if (m.payload() or {}).get("run_id") == run.run_id
            ]  # fmt: skip
            assert message.vapid_public_key == signer
            payload = message.payload()
            assert payload is not None  # decrypted with the browser's own keys
            assert payload["subscriber_id"] == subscriber_id
            assert payload["body"] == "We moved to Clarion"

    async def test_a_moved_browser_registered_without_its_key_is_refused_by_its_push_service(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        # The control: without the key id it is signed with the site's own key, and the
        # push service refuses that (as FCM does), so the check above is real. With no
        # other answer from that push service to tell the two apart, delivery takes the
        # refusal as the site's VAPID being refused: it holds the push service for the
        # site and keeps the browser pending (docs/services/delivery.md, holds).
        site = await create_site(stack.settings, "Forgot the key", "mailto:ops@example.com")
        _, foreign_public = foreign_key_pair()
        browser = simulator.mint_subscription(application_server_key=foreign_public)
        subscriber_id = await register_moved(stack, site.api_key, browser, "")

        run = await send_campaign(
            stack, site.api_key, "Signed with the wrong key", until=lambda r: r.held_push_services
        )

        assert (run.audience, run.progress.sent, run.progress.failed) == (1, 0, 0)
        [held] = run.held_push_services
        assert held.reason == common_pb2.DELIVERY_REASON_PUSH_SERVICE_AUTH
        assert held.http_status == 403
        outcome = await recipient(stack, site.api_key, run.run_id, subscriber_id)
        assert outcome.status == campaign_pb2.RECIPIENT_STATUS_PENDING
        assert outcome.reason == common_pb2.DELIVERY_REASON_PUSH_SERVICE_AUTH
        assert len(simulator.messages(browser.endpoint)) == 0

    async def test_a_key_the_site_does_not_have_fails_that_browser_and_the_run_finishes(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        site = await create_site(stack.settings, "Typo in the key id", "mailto:ops@example.com")
        _, foreign_public = foreign_key_pair()
        lost = simulator.mint_subscription(application_server_key=foreign_public)
        lost_id = await register_moved(stack, site.api_key, lost, f"vk_{uuid.uuid4().hex}")
        fine = simulator.mint_subscription(application_server_key=site.vapid_public_key)
        async with aiohttp.ClientSession() as session:
            [fine_id] = await register_browsers(session, stack.gateway_url, site.site_id, [fine])

        run = await send_campaign(stack, site.api_key, "One of two")

        assert run.state == campaign_pb2.RUN_STATE_DONE
        assert (run.audience, run.progress.sent, run.progress.failed) == (2, 1, 1)
        failed = await recipient(stack, site.api_key, run.run_id, lost_id)
        assert failed.status == campaign_pb2.RECIPIENT_STATUS_FAILED
        assert failed.reason == common_pb2.DELIVERY_REASON_NO_VAPID_CREDENTIALS
        assert failed.attempts == 0
        assert "vapid_key_id" in failed.explanation
        assert simulator.messages(lost.endpoint) == []
        sent = await recipient(stack, site.api_key, run.run_id, fine_id)
        assert sent.status == campaign_pb2.RECIPIENT_STATUS_SENT


class TestImportCommand:
    async def test_every_form_the_cli_reads_and_show_lists_the_keys(
        self, stack: EmbeddedStack, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI keys", "mailto:ops@example.com")
        key, public = foreign_key_pair()
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        # As web-push libraries print a private key: the scalar in base64url.
        (tmp_path / "web-push.txt").write_text(b64url(scalar) + "\n")
        (tmp_path / "key.der").write_bytes(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

        first = await clarion(
            stack, site.api_key, "site", "import-vapid-key", str(tmp_path / "web-push.txt")
        )
        again = await clarion(
            stack, site.api_key, "site", "import-vapid-key", str(tmp_path / "key.der")
        )

        assert first.code == 0 and again.code == 0, first.err + again.err
        assert first.out.strip() == again.out.strip()  # the same pair: the same key id
        key_id = first.out.strip()
        assert key_id.startswith("vk_") and "already had" in again.err
        shown = await clarion(stack, site.api_key, "site", "show")
        rows = [line.split() for line in shown.out.splitlines() if line.startswith("vapid_key ")]
        assert [row[1:] for row in rows] == [
            [rows[0][1], "current", "generated", b64url(site.vapid_public_key)],
            [key_id, "imported", b64url(public)],
        ]

    async def test_a_mismatched_public_key_or_a_bad_file_is_one_line(
        self, stack: EmbeddedStack, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI refusals", "mailto:ops@example.com")
        key, _ = foreign_key_pair()
        _, other_public = foreign_key_pair()
        pem = tmp_path / "key.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp_path / "junk.txt").write_text("hello")

        mismatch = await clarion(
            stack,
            site.api_key,
            "site",
            "import-vapid-key",
            str(pem),
            "--public-key",
            b64url(other_public),
        )
        junk = await clarion(
            stack, site.api_key, "site", "import-vapid-key", str(tmp_path / "junk.txt")
        )
        missing = await clarion(
            stack, site.api_key, "site", "import-vapid-key", str(tmp_path / "nope")
        )

        assert "VAPID_KEY_MISMATCH" in one_line_error(mismatch)
        line = one_line_error(junk)
        assert "INVALID_VAPID_KEY" in line and "PKCS#8" in line
        assert "cannot read the key file" in one_line_error(missing)
