"""An independent way to craft pushes: py_vapid signs the JWT, http_ece encrypts, aiohttp sends."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid.jwt import sign as sign_jwt
from py_vapid.utils import b64urlencode

from clarion.simulator import SimulatedSubscription


class MovableClock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def origin_of(endpoint: str) -> str:
    return endpoint.split("/push/", 1)[0]


def vapid_header(
    key: ec.EllipticCurvePrivateKey,
    claims: dict[str, Any],
    *,
    advertised_key: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """RFC 8292 Authorization; `advertised_key` puts another key in k= than the signer's."""
    k = b64urlencode(public_bytes(advertised_key or key))
    return f"vapid t={sign_jwt(claims, key)}, k={k}"


def good_claims(endpoint: str, **overrides: Any) -> dict[str, Any]:
    claims = {
        "aud": origin_of(endpoint),
        "exp": int(time.time()) + 3600,
        "sub": "mailto:ops@example.com",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def encrypt(subscription: SimulatedSubscription, plaintext: bytes) -> bytes:
    return http_ece.encrypt(
        plaintext,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=subscription.p256dh,
        auth_secret=subscription.auth,
        version="aes128gcm",
    )


def push_headers(
    subscription: SimulatedSubscription, key: ec.EllipticCurvePrivateKey, **overrides: str | None
) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "Authorization": vapid_header(key, good_claims(subscription.endpoint)),
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
    }
    headers.update(overrides)
    return {name: value for name, value in headers.items() if value is not None}


async def post_push(
    http: aiohttp.ClientSession,
    subscription: SimulatedSubscription,
    key: ec.EllipticCurvePrivateKey,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, str]]:
    """POST a push (a valid one unless told otherwise); returns status, body text, headers."""
    body = encrypt(subscription, b"hello") if body is None else body
    async with http.post(
        subscription.endpoint, data=body, headers=headers or push_headers(subscription, key)
    ) as response:
        return response.status, await response.text(), dict(response.headers)


def error_message(text: str) -> str:
    """The `message` of a refusal's JSON body (autopush's error shape)."""
    body = json.loads(text)
    assert set(body) == {"code", "errno", "error", "message", "more_info"}, body
    return str(body["message"])
