"""What an operator watching delivery's log sees: one line when a run finishes (with its
counts), one line per push service and window when it throttles us or refuses a VAPID
signature (not one per recipient), one line per chunk whose retries ran out; and a peer
that refuses the internal token named as such, not as "unreachable".

Workers run over the real store (SQLite, and PostgreSQL when configured) with the
in-memory ports of conftest; the token tests call real servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from services.campaign.domain.ports import PeerCallFailed
from services.campaign.peer_clients import GrpcDelivery
from services.delivery.adapters.grpc_peers import (
    GrpcAudience,
    GrpcOutcomeSink,
    GrpcSiteCredentials,
)
from services.delivery.domain.ports import CredentialsUnavailable, PeerUnavailable
from services.delivery.domain.rules import PushAnswer, Reason
from services.delivery.domain.worker import PUSH_SERVICE_LOG_SECONDS
from services.delivery.store import Member
from services.kit.config import Settings
from services.kit.errors import Unavailable
from services.kit.peers import Peers
from services.siteclient import remote_site_resolver
from tests.delivery.conftest import Harness, Stack, members

Log = list[dict[str, Any]]


def lines(logs: Log, event: str) -> Log:
    return [entry for entry in logs if entry["event"] == event]


def on_origin(audience: Sequence[Member], origin: str) -> list[Member]:
    return [replace(m, endpoint=m.endpoint.replace("https://push.test", origin)) for m in audience]


async def deliver_until_finished(harness: Harness, site_id: str, run_id: str) -> None:
    """Sends, moving the clock past each retry, until the run has its finish time."""
    await harness.prepare_all()
    for _ in range(20):
        await harness.send_all()
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None
        if run.finish_time is not None:
            return
        harness.clock.advance(seconds=harness.settings.push_retry_max_seconds * 2)
    pytest.fail("the run never finished")


class TestRunFinished:
    async def test_one_line_with_the_counts_when_the_last_recipient_ends(
        self, harness: Harness
    ) -> None:
        audience = members(25, unsubscribed=[3])  # three chunks of at most 10
        harness.transport.script(audience[5].endpoint, PushAnswer(status=410))
        harness.transport.script(audience[17].endpoint, PushAnswer(status=404))
        # Retried once: the run is not finished when its chunks are first released.
        harness.transport.script(audience[22].endpoint, PushAnswer(status=503))
        with capture_logs() as logs:
            site_id, run_id = await harness.start_run(audience)
            await harness.prepare_all()
            await harness.send_all()
            assert lines(logs, "run finished") == []
            await deliver_until_finished(harness, site_id, run_id)
            await harness.workers.drain_outbox()

        [line] = lines(logs, "run finished")
        counts = (await harness.store.run_counts(site_id, [run_id]))[run_id]
        assert (line["run_id"], line["site_id"], line["state"]) == (run_id, site_id, "done")
        assert (
            (line["sent"], line["failed"], line["suppressed"], line["expired"])
            == (
                counts.sent,
                counts.failed,
                counts.suppressed,
                counts.expired,
            )
            == (22, 2, 1, 0)
        )
        assert line["audience"] == 25

    async def test_expired_recipients_are_counted(self, harness: Harness) -> None:
        with capture_logs() as logs:
            await harness.start_run(members(12), ttl_seconds=60)
            await harness.prepare_all()
            harness.clock.advance(seconds=120)  # the TTL passed before any was sent
            await harness.send_all()
        [line] = lines(logs, "run finished")
        assert (line["sent"], line["expired"], line["state"]) == (0, 12, "done")

    async def test_a_run_whose_audience_is_refused_finishes_failed(self, harness: Harness) -> None:
        harness.audience.failure = PeerUnavailable("segment refused", permanent=True)
        with capture_logs() as logs:
            await harness.start_run(members(5))
            await harness.prepare_all()
        [line] = lines(logs, "run finished")
        assert (line["state"], line["failure"], line["sent"]) == ("failed", "audience_refused", 0)


class TestPushServiceLines:
    async def test_throttling_is_one_line_per_push_service_and_window(
        self, harness: Harness
    ) -> None:
        audience = members(30) + on_origin(members(5), "https://other.test")
        for member in audience:
            harness.transport.script(member.endpoint, PushAnswer(status=429, retry_after="30"))
        with capture_logs() as logs:
            await harness.start_run(audience)
            await harness.prepare_all()
            await harness.send_all()
        throttled = lines(logs, "push service is throttling us")
        assert sorted(line["push_service"] for line in throttled) == [
            "https://other.test",
            "https://push.test",
        ]

        # Still throttling in the next window: said once more, not per recipient.
        for member in audience:
            harness.transport.script(member.endpoint, PushAnswer(status=429))
        harness.clock.advance(seconds=PUSH_SERVICE_LOG_SECONDS + 1)
        with capture_logs() as logs:
            await harness.send_all()
        assert len(lines(logs, "push service is throttling us")) == 2

    async def test_a_refused_vapid_signature_is_one_line_per_push_service_and_site(
        self, harness: Harness
    ) -> None:
        first, second = members(30), members(10)
        for member in (*first, *second):
            harness.transport.script(member.endpoint, PushAnswer(status=403))
        with capture_logs() as logs:
            # Two sites: each one's refused key is its own line.
            await harness.start_run(first)
            await harness.start_run(second)
            await harness.deliver()
        refused = lines(logs, "push service refused our VAPID signature")
        assert len(refused) == 2
        assert {line["push_service"] for line in refused} == {"https://push.test"}
        assert {line["status"] for line in refused} == {403}

    async def test_retries_running_out_is_one_line_per_chunk_with_the_count(
        self, harness: Harness
    ) -> None:
        audience = members(10)  # one chunk
        attempts = harness.settings.push_max_attempts  # type: ignore[attr-defined]
        for member in audience[:3]:
            harness.transport.script(member.endpoint, *[PushAnswer(status=503)] * attempts)
        for member in audience[3:5]:
            harness.transport.script(
                member.endpoint, *[PushAnswer(error=Reason.TIMEOUT)] * attempts
            )
        with capture_logs() as logs:
            site_id, run_id = await harness.start_run(audience)
            await deliver_until_finished(harness, site_id, run_id)
        [line] = lines(logs, "push retries exhausted")
        assert line["run_id"] == run_id and line["recipients"] == 5
        assert line["reasons"] == {"push_service_5xx": 3, "timeout": 2}
        assert line["attempts"] == attempts
        [finished] = lines(logs, "run finished")
        assert (finished["sent"], finished["failed"]) == (5, 5)


def _with_token(settings: Settings, token: str) -> Settings:
    """The same deployment's settings with another internal token."""
    return Settings(**{**settings.model_dump(), "internal_token": SecretStr(token)})


class TestInternalTokenRejected:
    async def test_delivery_names_the_peer_that_refused_its_token(self, stack: Stack) -> None:
        site = await stack.new_site()
        peers = Peers(_with_token(stack.settings, "not-the-deployment-token"))
        try:
            with pytest.raises(CredentialsUnavailable) as credentials:
                await GrpcSiteCredentials(peers).site_credentials(site.site_id)
            with pytest.raises(PeerUnavailable) as audience:
                await GrpcAudience(peers).inactive_subscribers(site.site_id, ["sub_1"])
            with pytest.raises(PeerUnavailable) as outcomes:
                await GrpcOutcomeSink(peers).record_audience(site.site_id, "run_1", "cmp_1", 1)
        finally:
            await peers.close()
        for raised, peer in (
            (credentials, "campaign"),
            (audience, "segment"),
            (outcomes, "reporting"),
        ):
            assert f"internal token rejected by {peer}" in str(raised.value)
            assert "unreachable" not in str(raised.value)
            # Configuration, not the site's fault: the work waits rather than failing.
            assert not raised.value.permanent

    async def test_campaign_names_delivery_as_refusing_its_token(self, stack: Stack) -> None:
        site = await stack.new_site()
        peers = Peers(_with_token(stack.settings, "not-the-deployment-token"))
        try:
            with pytest.raises(PeerCallFailed) as raised:
                await GrpcDelivery(peers).get_runs(site.site_id, ["run_1"])
        finally:
            await peers.close()
        assert "internal token rejected by delivery" in str(raised.value)
        assert not raised.value.permanent

    async def test_an_api_key_check_logs_that_campaign_refused_the_token(
        self, stack: Stack
    ) -> None:
        peers = Peers(_with_token(stack.settings, "not-the-deployment-token"))
        resolver = remote_site_resolver(peers)
        try:
            with capture_logs() as logs:
                for _ in range(3):
                    with pytest.raises(Unavailable) as raised:
                        await resolver.resolve("some-api-key")
        finally:
            await peers.close()
        assert "internal token" in raised.value.message
        said = [e for e in logs if "internal token rejected by campaign" in e["event"]]
        assert len(said) == 1  # once per minute, not per call
