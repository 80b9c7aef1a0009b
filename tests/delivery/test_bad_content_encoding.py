"""A push service's 400 for a compressed body is permanent: delivery's transports carry
the simulator's answer (and its reason) back, and delivery's rule fails the recipient
at once instead of retrying. The worker itself always sends aes128gcm, so the request
goes through each transport with the bad header, as a misconfigured proxy would send it."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.simulator import PushServiceSimulator
from services.delivery.adapters.http_sender import PushSender
from services.delivery.adapters.native_sender import NativePushSender
from services.delivery.domain.ports import PushRequest, PushTransport
from services.delivery.domain.rules import Failed, PushAnswer, Reason, RetryPolicy, decide
from services.kit.config import DEFAULT_PUSH_SERVICE_HOSTS
from services.kit.egress import EgressPolicy
from tests.simulator.crafting import encrypt, good_claims, vapid_header

TEST_MODE = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, test_endpoints=True)
POLICY = RetryPolicy(max_attempts=5, base_seconds=1.0, max_seconds=60.0)


@pytest.fixture
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    simulator = PushServiceSimulator()
    await simulator.start()
    yield simulator
    await simulator.stop()


def make_transport(kind: str) -> PushTransport:
    if kind == "native":
        return NativePushSender(5.0, TEST_MODE)
    return PushSender(4, 5.0, TEST_MODE)


@pytest.mark.parametrize("kind", ["aiohttp", "native"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_400_for_a_compressed_body_fails_the_recipient_without_retry(
    simulator: PushServiceSimulator, kind: str, encoding: str
) -> None:
    subscription = simulator.mint_subscription()
    key = ec.generate_private_key(ec.SECP256R1())
    authorization = vapid_header(key, good_claims(subscription.endpoint))
    body = gzip.compress(encrypt(subscription, b"hello"))
    transport = make_transport(kind)
    await transport.start()
    stream = transport.stream({"TTL": "60", "Content-Encoding": encoding})
    try:
        stream.submit([PushRequest(1, subscription.endpoint, body, authorization)])
        answers: dict[int, PushAnswer] = {}
        while stream.in_flight:
            answers.update(await stream.answers())
    finally:
        stream.close()
        await transport.close()

    answer = answers[1]
    assert answer.status == 400
    assert "Unknown Content-Encoding header" in answer.body_excerpt
    verdict = decide(answer, 1, POLICY, datetime.now(UTC))
    assert verdict == Failed(Reason.PUSH_SERVICE_4XX)  # not RetryLater: never sent again
    assert simulator.stats.requests_per_endpoint[subscription.endpoint] == 1
    assert simulator.messages(subscription.token) == []
