from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import webpush

from clarion.simulator import Behaviour, Problem, PushServiceSimulator
from tests.simulator.crafting import (
    MovableClock,
    encrypt,
    error_message,
    good_claims,
    post_push,
    public_bytes,
    push_headers,
    vapid_header,
)


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def send_with_pywebpush(
    subscription_info: dict, data: str, key: ec.EllipticCurvePrivateKey, **kwargs
):
    """pywebpush is synchronous (requests); it runs in a thread and returns the Response."""
    return await asyncio.to_thread(
        webpush,
        subscription_info,
        data,
        vapid_private_key=Vapid(private_key=key),
        vapid_claims={"sub": "mailto:ops@example.com"},
        content_encoding="aes128gcm",
        timeout=5,
        **kwargs,
    )


class TestAcceptedPush:
    async def test_pywebpush_message_is_received_and_decrypted(
        self, simulator: PushServiceSimulator, vapid_key: ec.EllipticCurvePrivateKey
    ) -> None:
        subscription = simulator.mint_subscription()
        data = '{"title":"Sale","body":"ünïcode ✓"}'

        response = await send_with_pywebpush(
            subscription.to_json(),
            data,
            vapid_key,
            ttl=120,
            headers={"Urgency": "high", "Topic": "campaign-42"},
        )

        assert response.status_code == 201
        assert response.headers["Location"].startswith(f"{simulator.base_url}/message/")
        [message] = simulator.messages(subscription.endpoint)
        assert message.plaintext == data.encode()
        assert (message.ttl, message.urgency, message.topic) == (120, "high", "campaign-42")
        assert message.vapid_claims["sub"] == "mailto:ops@example.com"
        assert message.vapid_claims["aud"] == simulator.base_url
        assert message.vapid_public_key == public_bytes(vapid_key)
        assert (simulator.stats.received, simulator.stats.decrypted) == (1, 1)
        assert simulator.stats.per_endpoint[subscription.endpoint] == 1

    async def test_subscription_has_browser_shape(self, simulator: PushServiceSimulator) -> None:
        subscription = simulator.mint_subscription()
        shape = subscription.to_json()

        assert shape["endpoint"] == subscription.endpoint
        assert shape["endpoint"].startswith(f"{simulator.base_url}/push/")
        assert shape["expirationTime"] is None
        assert b64url(shape["keys"]["p256dh"]) == subscription.p256dh
        assert len(subscription.p256dh) == 65 and len(b64url(shape["keys"]["auth"])) == 16

    async def test_push_without_payload_is_accepted(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **{"Content-Encoding": None})

        status, _, _ = await post_push(http, subscription, vapid_key, body=b"", headers=headers)

        assert status == 201
        assert [m.plaintext for m in simulator.messages(subscription.token)] == [b""]

    async def test_same_topic_replaces_the_pending_message(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        for text, topic in [(b"first", "run-1"), (b"other", "run-2"), (b"second", "run-1")]:
            headers = push_headers(subscription, vapid_key, Topic=topic)
            body = encrypt(subscription, text)
            status, _, _ = await post_push(
                http, subscription, vapid_key, body=body, headers=headers
            )
            assert status == 201

        held = simulator.messages(subscription.token)
        assert [m.plaintext for m in held] == [b"other", b"second"]
        assert simulator.stats.replaced == 1
        assert simulator.stats.received == 3

    async def test_without_decryption_the_body_shape_is_still_checked(
        self, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        simulator = PushServiceSimulator(decrypt=False)
        await simulator.start()
        try:
            subscription = simulator.mint_subscription()
            ok, _, _ = await post_push(http, subscription, vapid_key)
            bad, _, _ = await post_push(http, subscription, vapid_key, body=b"x" * 200)
        finally:
            await simulator.stop()

        # A push service accepts any body; the simulator records what a browser drops.
        assert (ok, bad) == (201, 201)
        held = simulator.messages(subscription.token)
        assert [m.plaintext for m in held] == [None, None]
        assert [m.problems for m in held] == [(), (Problem.UNDECRYPTABLE,)]
        assert simulator.stats.decrypted == 0


class TestVapid:
    @pytest.mark.parametrize(
        ("claims", "reason"),
        [
            ({"exp": int(time.time()) - 10}, "exp claim is in the past"),
            ({"exp": int(time.time()) + 25 * 3600}, "exp claim is more than 24 hours"),
            ({"aud": "https://push.example.net"}, "Invalid VAPID audience"),
            ({"sub": None}, "sub claim is missing"),
            ({"sub": "ops@example.com"}, "sub claim must be a mailto: or https: URI"),
        ],
        ids=["expired", "exp-over-24h", "wrong-aud", "missing-sub", "sub-not-uri"],
    )
    async def test_bad_claim_is_401_naming_the_claim(
        self,
        simulator: PushServiceSimulator,
        http: aiohttp.ClientSession,
        vapid_key,
        claims,
        reason,
    ) -> None:
        subscription = simulator.mint_subscription()
        authorization = vapid_header(vapid_key, good_claims(subscription.endpoint, **claims))
        headers = push_headers(subscription, vapid_key, Authorization=authorization)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 401
        assert reason in error_message(text)
        assert simulator.messages(subscription.token) == []

    @pytest.mark.parametrize(
        "authorization",
        [None, "Basic abc", "vapid t=a.b.c", "vapid k=AAAA", "vapid"],
        ids=["missing", "other-scheme", "no-k", "no-t", "no-token"],
    )
    async def test_missing_or_malformed_authorization_is_401(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, authorization
    ) -> None:
        subscription = simulator.mint_subscription(application_server_key=public_bytes(vapid_key))
        headers = push_headers(subscription, vapid_key, Authorization=authorization)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 401
        assert json.loads(text)["errno"] == 109

    async def test_signature_from_another_key_is_401(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        impostor = ec.generate_private_key(ec.SECP256R1())
        authorization = vapid_header(
            impostor, good_claims(subscription.endpoint), advertised_key=vapid_key
        )
        headers = push_headers(subscription, vapid_key, Authorization=authorization)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert (status, error_message(text)) == (401, "JWT signature does not verify against k")

    async def test_key_other_than_the_subscriptions_application_server_key_is_403(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription(application_server_key=public_bytes(vapid_key))
        other_site_key = ec.generate_private_key(ec.SECP256R1())

        matching, _, _ = await post_push(http, subscription, vapid_key)
        mismatching, _, _ = await post_push(http, subscription, other_site_key)

        assert (matching, mismatching) == (201, 403)

    async def test_token_expires_when_the_clock_moves_past_exp(
        self,
        simulator: PushServiceSimulator,
        http: aiohttp.ClientSession,
        vapid_key,
        clock: MovableClock,
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key)  # exp = now + 1 h, reused below

        before, _, _ = await post_push(http, subscription, vapid_key, headers=headers)
        clock.advance(2 * 3600)
        after, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert (before, after) == (201, 401)
        assert "exp claim is in the past" in error_message(text)


class TestHeadersAndBody:
    @pytest.mark.parametrize(
        ("overrides", "status"),
        [
            ({"TTL": None}, 400),
            ({"TTL": "-1"}, 400),
            ({"TTL": "soon"}, 400),
            ({"Topic": "t" * 33}, 400),
            ({"Topic": "not/base64+url"}, 400),
            ({"Content-Encoding": None}, 400),
            ({"Content-Encoding": "aesgcm"}, 400),  # without its Encryption header
        ],
        ids=[
            "missing-ttl",
            "negative-ttl",
            "text-ttl",
            "long-topic",
            "topic-alphabet",
            "no-encoding",
            "legacy-aesgcm",
        ],
    )
    async def test_bad_header_is_rejected(
        self,
        simulator: PushServiceSimulator,
        http: aiohttp.ClientSession,
        vapid_key,
        overrides,
        status,
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **overrides)

        got, _, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert got == status
        assert simulator.stats.rejected[status] == 1

    async def test_body_over_4096_bytes_is_413(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        body = encrypt(subscription, b"x" * (4097 - 103))  # 86-byte header + delimiter + tag
        assert len(body) == 4097

        status, _, _ = await post_push(http, subscription, vapid_key, body=body)

        assert status == 413

    async def test_body_of_exactly_4096_bytes_is_accepted(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        body = encrypt(subscription, b"x" * (4096 - 103))

        status, _, _ = await post_push(http, subscription, vapid_key, body=body)

        assert status == 201

    @pytest.mark.parametrize(
        "body_for",
        [lambda sub, other: b"\x00" * 300, lambda sub, other: encrypt(other, b"not for you")],
        ids=["garbage", "encrypted-for-another-subscription"],
    )
    async def test_undecryptable_body_is_accepted_as_a_problem(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, body_for
    ) -> None:
        subscription, other = simulator.mint_subscription(), simulator.mint_subscription()

        status, _, _ = await post_push(
            http, subscription, vapid_key, body=body_for(subscription, other)
        )

        assert status == 201  # a push service cannot tell; the browser drops it
        [problem] = simulator.conformance_problems(subscription.endpoint)
        assert problem.code == Problem.UNDECRYPTABLE
        assert (simulator.stats.received, simulator.stats.decrypted) == (1, 0)

    async def test_unknown_subscription_is_404(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        real = simulator.mint_subscription()
        headers = push_headers(real, vapid_key)
        async with http.post(
            f"{simulator.base_url}/push/never-minted", data=encrypt(real, b"x"), headers=headers
        ) as response:
            assert response.status == 404
            assert (await response.json())["errno"] == 102


class TestBehaviours:
    @pytest.mark.parametrize("status", [404, 410, 413, 500, 503])
    async def test_configured_status_is_answered(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, status
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.endpoint, Behaviour(status=status))

        first, _, _ = await post_push(http, subscription, vapid_key)
        second, _, _ = await post_push(http, subscription, vapid_key)

        assert (first, second) == (status, status)
        assert simulator.stats.rejected[status] == 2
        assert simulator.messages(subscription.token) == []

    async def test_429_sends_retry_after(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.token, Behaviour(status=429, retry_after=30))

        status, _, headers = await post_push(http, subscription, vapid_key)

        assert (status, headers["Retry-After"]) == (429, "30")

    async def test_times_limits_the_behaviour_then_service_recovers(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.token, Behaviour(status=503, retry_after=1, times=1))

        first, _, _ = await post_push(http, subscription, vapid_key)
        second, _, _ = await post_push(http, subscription, vapid_key)

        assert (first, second) == (503, 201)
        assert len(simulator.messages(subscription.token)) == 1

    async def test_error_behaviour_comes_before_validation(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.token, Behaviour(status=410))
        headers = push_headers(subscription, vapid_key, Authorization=None, TTL=None)

        status, _, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 410

    async def test_hang_times_the_client_out_then_recovers(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.token, Behaviour(hang=True, times=1))
        started = time.monotonic()

        with pytest.raises(TimeoutError):
            async with http.post(
                subscription.endpoint,
                data=encrypt(subscription, b"x"),
                headers=push_headers(subscription, vapid_key),
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as response:
                await response.read()
        after, _, _ = await post_push(http, subscription, vapid_key)

        assert time.monotonic() - started < 3
        assert after == 201

    async def test_clearing_the_behaviour_restores_normal_answers(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        simulator.set_behaviour(subscription.token, Behaviour(status=500))
        simulator.set_behaviour(subscription.token, None)

        status, _, _ = await post_push(http, subscription, vapid_key)

        assert status == 201

    def test_behaviour_for_unknown_subscription_is_refused(
        self, simulator: PushServiceSimulator
    ) -> None:
        with pytest.raises(LookupError):
            simulator.set_behaviour("never-minted", Behaviour(status=410))

    @pytest.mark.parametrize(
        "fields", [{"status": 42}, {"times": 0}, {"retry_after": -1}, {"colour": "red"}]
    )
    def test_invalid_behaviour_is_refused(self, fields) -> None:
        with pytest.raises(ValueError):
            Behaviour.from_json(fields)


class TestControlApi:
    async def test_minted_subscriptions_receive_pushes(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        async with http.post(f"{simulator.base_url}/control/subscriptions?count=3") as response:
            assert response.status == 201
            minted = await response.json()

        assert len({s["endpoint"] for s in minted}) == 3
        assert all(len(b64url(s["keys"]["p256dh"])) == 65 for s in minted)
        assert all(len(b64url(s["keys"]["auth"])) == 16 for s in minted)
        response = await send_with_pywebpush(minted[0], "over the wire", vapid_key)
        assert response.status_code == 201
        token = minted[0]["endpoint"].rsplit("/", 1)[-1]
        async with http.get(f"{simulator.base_url}/control/messages/{token}") as response:
            [message] = await response.json()
        assert b64url(message["plaintext"]) == b"over the wire"

    async def test_behaviour_set_over_http_applies(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        url = f"{simulator.base_url}/control/behaviours/{subscription.token}"

        async with http.put(url, json={"status": 429, "retry_after": 7, "times": 1}) as response:
            assert response.status == 204
        first, _, headers = await post_push(http, subscription, vapid_key)
        second, _, _ = await post_push(http, subscription, vapid_key)

        assert (first, headers["Retry-After"], second) == (429, "7", 201)

    @pytest.mark.parametrize(
        ("path", "payload", "status"),
        [
            ("never-minted", {"status": 410}, 404),
            (None, {"status": "gone"}, 400),
            (None, [], 400),
        ],
        ids=["unknown-token", "bad-field", "not-an-object"],
    )
    async def test_bad_behaviour_request_is_refused(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, path, payload, status
    ) -> None:
        token = path or simulator.mint_subscription().token
        url = f"{simulator.base_url}/control/behaviours/{token}"

        async with http.put(url, json=payload) as response:
            assert response.status == status

    async def test_stats_report_and_reset(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        await post_push(http, subscription, vapid_key)
        no_ttl = push_headers(subscription, vapid_key, TTL=None)
        await post_push(http, subscription, vapid_key, headers=no_ttl)

        async with http.get(f"{simulator.base_url}/control/stats") as response:
            stats = await response.json()
        async with http.delete(f"{simulator.base_url}/control/stats") as response:
            assert response.status == 204

        assert stats["requests"] == 2
        assert (stats["received"], stats["decrypted"]) == (1, 1)
        assert stats["rejected"] == {"400": 1}
        assert stats["per_endpoint"] == {subscription.endpoint: 1}
        assert simulator.stats.requests == 0 and not simulator.stats.rejected

    @pytest.mark.parametrize("count", ["0", "many", "100001"])
    async def test_bad_count_is_400(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, count
    ) -> None:
        url = f"{simulator.base_url}/control/subscriptions?count={count}"
        async with http.post(url) as response:
            assert response.status == 400

    async def test_health(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(f"{simulator.base_url}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok")
