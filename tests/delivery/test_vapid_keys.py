"""Each recipient is signed with the VAPID key its subscriber subscribed under: the key
id travels from the audience page into the recipient's row, the site's credentials
carry every key pair, and a key the site does not have fails only its recipients
(no_vapid_credentials). On SQLite and on PostgreSQL (COPY)."""

from __future__ import annotations

import base64
import uuid
from collections import Counter

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.delivery.domain.ports import CredentialsUnavailable
from services.delivery.models import RecipientState
from services.delivery.store import Member
from tests.delivery.conftest import Harness, members


def new_key() -> tuple[bytes, bytes]:
    """(PKCS#8 DER private key, 65-byte public point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    )


def key_id() -> str:
    return f"vk_{uuid.uuid4().hex}"


def with_key(member: Member, vapid_key_id: str) -> Member:
    return Member(**{**member.__dict__, "vapid_key_id": vapid_key_id})


def signed_with(harness: Harness, member: Member) -> bytes:
    """The public key (k=) of the Authorization header the member's request carried."""
    [(_, headers)] = harness.transport.sent[member.endpoint]
    k = headers["Authorization"].split("k=", 1)[1].strip()
    return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))


async def outcome(harness: Harness, site_id: str, run_id: str, member: Member):  # type: ignore[no-untyped-def]
    view = await harness.store.recipient(site_id, run_id, member.subscriber_id)
    assert view is not None
    return view.state, view.reason


class TestSigningPerKey:
    async def test_each_recipient_is_signed_with_its_subscribers_key(
        self, harness: Harness
    ) -> None:
        current_id, foreign_id = key_id(), key_id()
        foreign_private, foreign_public = new_key()
        harness.credentials.current_vapid_key_id = current_id
        harness.credentials.vapid_keys = {foreign_id: foreign_private}
        plain, named_current, moved_a, moved_b = members(4)
        audience = [
            plain,
            with_key(named_current, current_id),
            with_key(moved_a, foreign_id),
            with_key(moved_b, foreign_id),
        ]
        site_id, run_id = await harness.start_run(audience)

        await harness.deliver()

        own = harness.credentials.public_key
        assert [signed_with(harness, m) for m in audience] == [
            own,
            own,
            foreign_public,
            foreign_public,
        ]
        for member in audience:
            assert await outcome(harness, site_id, run_id, member) == (RecipientState.SENT, "")

    async def test_a_key_the_site_does_not_have_fails_only_its_recipients(
        self, harness: Harness
    ) -> None:
        harness.credentials.current_vapid_key_id = key_id()
        good, lost = members(2)
        lost = with_key(lost, key_id())  # deleted, or a wrong id at registration
        site_id, run_id = await harness.start_run([good, lost])

        await harness.deliver()

        assert await outcome(harness, site_id, run_id, good) == (RecipientState.SENT, "")
        assert await outcome(harness, site_id, run_id, lost) == (
            RecipientState.FAILED,
            "no_vapid_credentials",
        )
        assert harness.transport.posts == Counter({good.endpoint: 1})
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None and run.finish_time is not None
        assert sorted(
            (o.subscriber_id, o.state, o.reason) for o in harness.sink.outcomes
        ) == sorted(
            [
                (good.subscriber_id, "sent", ""),
                (lost.subscriber_id, "failed", "no_vapid_credentials"),
            ]
        )

    async def test_an_unusable_imported_key_fails_only_its_recipients(
        self, harness: Harness
    ) -> None:
        broken = key_id()
        harness.credentials.vapid_keys = {broken: b"not a key"}
        good, moved = members(2)
        moved = with_key(moved, broken)
        site_id, run_id = await harness.start_run([good, moved])

        await harness.deliver()

        assert await outcome(harness, site_id, run_id, good) == (RecipientState.SENT, "")
        assert await outcome(harness, site_id, run_id, moved) == (
            RecipientState.FAILED,
            "no_vapid_credentials",
        )

    async def test_a_key_imported_after_the_credentials_were_cached_is_fetched(
        self, harness: Harness
    ) -> None:
        [first] = members(1)
        site_id, _ = await harness.start_run([first])
        await harness.deliver()  # caches the site's credentials (no imported key yet)
        calls = harness.credentials.calls
        foreign_id = key_id()
        foreign_private, foreign_public = new_key()
        harness.credentials.vapid_keys = {foreign_id: foreign_private}
        harness.clock.advance(seconds=11)
        [moved] = members(1)
        moved = with_key(moved, foreign_id)

        _, run_id = await harness.start_run([moved], site_id=site_id)
        await harness.deliver()

        assert await outcome(harness, site_id, run_id, moved) == (RecipientState.SENT, "")
        assert signed_with(harness, moved) == foreign_public
        assert harness.credentials.calls == calls + 1

    async def test_an_unknown_key_does_not_refetch_more_than_every_few_seconds(
        self, harness: Harness
    ) -> None:
        site_id, _ = await harness.start_run(members(1))
        await harness.deliver()
        calls = harness.credentials.calls

        for _ in range(3):
            await harness.start_run([with_key(members(1)[0], key_id())], site_id=site_id)
            await harness.deliver()
            harness.clock.advance(seconds=1)

        assert harness.credentials.calls == calls

    async def test_campaign_out_of_reach_at_the_refetch_still_sends_the_others(
        self, harness: Harness
    ) -> None:
        site_id, _ = await harness.start_run(members(1))
        await harness.deliver()  # credentials cached
        harness.clock.advance(seconds=11)
        harness.credentials.failure = CredentialsUnavailable("campaign is down", permanent=False)
        good, lost = members(2)
        lost = with_key(lost, key_id())

        _, run_id = await harness.start_run([good, lost], site_id=site_id)
        await harness.deliver()

        assert await outcome(harness, site_id, run_id, good) == (RecipientState.SENT, "")
        assert await outcome(harness, site_id, run_id, lost) == (
            RecipientState.FAILED,
            "no_vapid_credentials",
        )
