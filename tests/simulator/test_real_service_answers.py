"""The simulator answers as a real push service does (Mozilla autopush-rs's checks,
autoendpoint/src/extractors/), and records on its own side what a real service accepts
but a browser drops: each case over real HTTP."""

from __future__ import annotations

import gzip
import json
import os
import time
import zlib

import aiohttp
import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid.jwt import sign as sign_jwt
from py_vapid.utils import b64urlencode

from clarion.simulator import Problem, PushServiceSimulator
from tests.simulator.crafting import (
    encrypt,
    error_message,
    good_claims,
    post_push,
    public_bytes,
    push_headers,
    vapid_header,
)


def autopush_error(text: str) -> dict:
    body = json.loads(text)
    assert body["more_info"].startswith("http://autopush.readthedocs.io/")
    assert list(body) == ["code", "errno", "error", "message", "more_info"]
    return body


class TestAudience:
    @pytest.mark.parametrize(
        "spoil",
        [lambda origin: origin + "/", str.upper, lambda origin: origin.replace("http", "HTTP")],
        ids=["trailing-slash", "upper-case", "scheme-case"],
    )
    async def test_an_aud_not_exactly_the_origin_is_401_errno_109(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, spoil
    ) -> None:
        subscription = simulator.mint_subscription()
        aud = spoil(simulator.base_url)
        authorization = vapid_header(vapid_key, good_claims(subscription.endpoint, aud=aud))
        headers = push_headers(subscription, vapid_key, Authorization=authorization)

        status, text, response_headers = await post_push(
            http, subscription, vapid_key, headers=headers
        )

        assert status == 401
        assert response_headers["Content-Type"].startswith("application/json")
        body = autopush_error(text)
        assert (body["code"], body["errno"], body["error"]) == (401, 109, "Unauthorized")
        assert body["message"].startswith("Invalid VAPID audience")
        assert simulator.messages(subscription.token) == []

    @pytest.mark.parametrize("exp", [time.time() + 3600, str(int(time.time()) + 3600)])
    async def test_an_exp_that_is_not_an_integer_is_401(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, exp
    ) -> None:
        subscription = simulator.mint_subscription()
        authorization = vapid_header(vapid_key, good_claims(subscription.endpoint, exp=exp))
        headers = push_headers(subscription, vapid_key, Authorization=authorization)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert (status, autopush_error(text)["errno"]) == (401, 109)
        assert "exp claim" in error_message(text)

    async def test_the_exact_origin_is_accepted(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()

        status, _, _ = await post_push(http, subscription, vapid_key)

        assert status == 201
        assert simulator.messages(subscription.token)[0].vapid_claims["aud"] == (simulator.base_url)


class TestContentEncoding:
    @pytest.mark.parametrize(
        ("encoding", "body_for"),
        [
            ("gzip", lambda sub: gzip.compress(encrypt(sub, b"hello"))),  # aiohttp decoded it
            ("gzip", lambda sub: encrypt(sub, b"hello")),  # not gzip: was a 500
            ("deflate", lambda sub: zlib.compress(encrypt(sub, b"hello"))),
            ("deflate", lambda sub: b"\x00" * 100),
            ("br", lambda sub: encrypt(sub, b"hello")),
            ("AES128GCM", lambda sub: encrypt(sub, b"hello")),  # autopush matches exactly
        ],
        ids=["gzip", "gzip-not-compressed", "deflate", "deflate-garbage", "br", "upper-case"],
    )
    async def test_a_compressed_or_unknown_encoding_is_400_errno_110(
        self,
        simulator: PushServiceSimulator,
        http: aiohttp.ClientSession,
        vapid_key,
        encoding,
        body_for,
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **{"Content-Encoding": encoding})

        status, text, _ = await post_push(
            http, subscription, vapid_key, body=body_for(subscription), headers=headers
        )

        assert status == 400
        body = autopush_error(text)
        assert (body["errno"], body["error"]) == (110, "Bad Request")
        assert f"Unknown Content-Encoding header {encoding!r}" in body["message"]
        assert simulator.messages(subscription.token) == []
        assert simulator.stats.rejected == {400: 1}

    async def test_a_missing_encoding_is_400_but_not_without_a_body(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **{"Content-Encoding": None})

        with_body, text, _ = await post_push(http, subscription, vapid_key, headers=headers)
        empty, _, _ = await post_push(http, subscription, vapid_key, body=b"", headers=headers)

        assert (with_body, empty) == (400, 201)
        assert error_message(text).startswith("Missing Content-Encoding header")

    @pytest.mark.parametrize(
        "extra",
        [{"Encryption": "salt=AAAAAAAAAAAAAAAAAAAAAA"}, {"Crypto-Key": "dh=BAAA"}],
        ids=["salt", "dh"],
    )
    async def test_aes128gcm_with_aesgcm_headers_is_400(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, extra
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **extra)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 400
        assert autopush_error(text)["errno"] == 110

    async def test_legacy_aesgcm_is_accepted_decrypted_and_recorded(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        sender = ec.generate_private_key(ec.SECP256R1())
        salt = os.urandom(16)
        body = http_ece.encrypt(
            b"old style",
            salt=salt,
            private_key=sender,
            dh=subscription.p256dh,
            auth_secret=subscription.auth,
            version="aesgcm",
        )
        headers = push_headers(
            subscription,
            vapid_key,
            **{
                "Content-Encoding": "aesgcm",
                "Encryption": f"salt={b64urlencode(salt)}",
                "Crypto-Key": f"dh={b64urlencode(public_bytes(sender))}",
            },
        )

        status, _, _ = await post_push(http, subscription, vapid_key, body=body, headers=headers)

        assert status == 201
        [message] = simulator.messages(subscription.token)
        assert message.plaintext == b"old style"
        assert message.problems == (Problem.LEGACY_AESGCM,)


class TestConformanceProblems:
    """Accepted as a real service accepts them (201), recorded as the browser drops them."""

    async def test_a_tampered_ciphertext_is_accepted_and_undecryptable(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        body = bytearray(encrypt(subscription, b"genuine"))
        body[-3] ^= 0x01

        status, _, _ = await post_push(http, subscription, vapid_key, body=bytes(body))

        assert status == 201
        [message] = simulator.messages(subscription.token)
        assert (message.plaintext, message.problems) == (None, (Problem.UNDECRYPTABLE,))
        [problem] = simulator.conformance_problems(subscription.endpoint)
        assert (problem.code, problem.message_id) == (Problem.UNDECRYPTABLE, message.id)
        assert (simulator.stats.received, simulator.stats.decrypted) == (1, 0)
        assert simulator.stats.conformance_problems == {"undecryptable": 1}

    async def test_a_multi_record_body_is_accepted_and_recorded(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        body = http_ece.encrypt(
            b"x" * 100,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=subscription.p256dh,
            auth_secret=subscription.auth,
            rs=40,
            version="aes128gcm",
        )

        status, _, _ = await post_push(http, subscription, vapid_key, body=body)

        assert status == 201
        [problem] = simulator.conformance_problems(subscription.token)
        assert problem.code == Problem.MULTI_RECORD
        assert simulator.messages(subscription.token)[0].plaintext is None
        assert simulator.stats.decrypted == 0

    async def test_no_vapid_to_an_unrestricted_subscription_is_accepted_and_recorded(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()  # no applicationServerKey
        headers = push_headers(subscription, vapid_key, Authorization=None)

        status, _, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 201
        [message] = simulator.messages(subscription.token)
        assert message.plaintext == b"hello"
        assert (message.vapid_claims, message.vapid_public_key) == ({}, b"")
        assert message.problems == (Problem.NO_VAPID_UNRESTRICTED,)

    async def test_no_vapid_to_a_restricted_subscription_is_401(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription(application_server_key=public_bytes(vapid_key))
        headers = push_headers(subscription, vapid_key, Authorization=None)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert (status, autopush_error(text)["errno"]) == (401, 109)
        assert simulator.conformance_problems(subscription.token) == []

    async def test_an_unknown_urgency_goes_as_normal_and_is_recorded(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, Urgency="urgent")

        status, _, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 201
        [message] = simulator.messages(subscription.token)
        assert (message.urgency, message.problems) == ("normal", (Problem.INVALID_URGENCY,))

    async def test_the_draft_webpush_scheme_is_accepted_and_recorded(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription(application_server_key=public_bytes(vapid_key))
        token = sign_jwt(good_claims(subscription.endpoint), vapid_key)
        key = b64urlencode(public_bytes(vapid_key))
        headers = push_headers(
            subscription,
            vapid_key,
            Authorization=f"WebPush {token}",
            **{"Crypto-Key": f"p256ecdsa={key}"},
        )
        without_key = push_headers(subscription, vapid_key, Authorization=f"WebPush {token}")

        status, _, _ = await post_push(http, subscription, vapid_key, headers=headers)
        refused, text, _ = await post_push(http, subscription, vapid_key, headers=without_key)

        assert status == 201
        assert simulator.messages(subscription.token)[0].problems == (Problem.LEGACY_VAPID,)
        assert (refused, error_message(text)) == (400, "Missing Crypto-Key header")

    async def test_a_conformant_push_has_no_problem(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription(application_server_key=public_bytes(vapid_key))

        status, _, _ = await post_push(http, subscription, vapid_key)

        assert status == 201
        assert simulator.messages(subscription.token)[0].problems == ()
        assert simulator.conformance_problems() == []
        assert simulator.stats.to_json()["conformance_problems"] == {}

    async def test_problems_are_queryable_over_http_and_counted_in_stats(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        first, second = simulator.mint_subscription(), simulator.mint_subscription()
        await post_push(http, first, vapid_key, body=b"\x00" * 300)
        await post_push(
            http, second, vapid_key, headers=push_headers(second, vapid_key, Authorization=None)
        )

        async with http.get(f"{simulator.base_url}/control/problems/{first.token}") as response:
            [problem] = await response.json()
        async with http.get(f"{simulator.base_url}/control/problems") as response:
            every = await response.json()
        async with http.get(f"{simulator.base_url}/control/stats") as response:
            stats = await response.json()
        async with http.get(f"{simulator.base_url}/control/messages/{first.token}") as response:
            [message] = await response.json()

        assert problem["code"] == "undecryptable" and problem["endpoint"] == first.endpoint
        assert [p["code"] for p in every] == ["undecryptable", "no_vapid_unrestricted"]
        assert stats["conformance_problems"] == {"no_vapid_unrestricted": 1, "undecryptable": 1}
        assert stats["received"] == 2 and stats["rejected"] == {}
        assert message["problems"] == ["undecryptable"]

    def test_the_codes_are_a_closed_set(self) -> None:
        assert {p.value for p in Problem} == {
            "undecryptable",
            "multi_record",
            "no_vapid_unrestricted",
            "legacy_vapid",
            "legacy_aesgcm",
            "invalid_urgency",
        }


class TestHeadersAsAutopush:
    @pytest.mark.parametrize(
        ("overrides", "errno"),
        [
            ({"TTL": None}, 111),
            ({"TTL": "soon"}, 111),
            ({"TTL": "99999999999999999999"}, 111),  # over i64
            ({"TTL": "-1"}, 114),
            ({"Topic": "t" * 33}, 113),
            ({"Topic": "a.b"}, 113),
        ],
        ids=["no-ttl", "text-ttl", "huge-ttl", "negative-ttl", "long-topic", "topic-dot"],
    )
    async def test_refused_headers_carry_autopush_errno(
        self,
        simulator: PushServiceSimulator,
        http: aiohttp.ClientSession,
        vapid_key,
        overrides,
        errno,
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **overrides)

        status, text, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert (status, autopush_error(text)["errno"]) == (400, errno)

    @pytest.mark.parametrize(
        "overrides", [{"TTL": "+60"}, {"Topic": "abc="}, {"Topic": "a" * 31 + "="}]
    )
    async def test_what_autopush_accepts_is_accepted(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key, overrides
    ) -> None:
        subscription = simulator.mint_subscription()
        headers = push_headers(subscription, vapid_key, **overrides)

        status, _, _ = await post_push(http, subscription, vapid_key, headers=headers)

        assert status == 201
        assert simulator.conformance_problems(subscription.token) == []

    async def test_an_oversized_body_is_413_errno_104(
        self, simulator: PushServiceSimulator, http: aiohttp.ClientSession, vapid_key
    ) -> None:
        subscription = simulator.mint_subscription()

        status, text, _ = await post_push(http, subscription, vapid_key, body=b"x" * 5000)

        assert (status, autopush_error(text)["errno"]) == (413, 104)
