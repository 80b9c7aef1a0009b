"""Checks a push request the way a push service does (RFC 8030, RFC 8291, RFC 8292).

Each check raises `PushRejected(status, reason)`; the reason is the plain-text body of
the answer. Status policy (kept the same everywhere):

- 401: VAPID credentials missing, malformed, badly signed, or with a wrong claim
  (autopush answers 401 for all of these);
- 403: valid credentials whose key is not the one the subscription was created with
  (FCM's answer for a key mismatch);
- 400: bad TTL / Urgency / Topic header, or a body that is not a decryptable
  single-record aes128gcm payload;
- 413: body over 4096 bytes (RFC 8030 §7.2); 415: Content-Encoding other than aes128gcm.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from clarion.simulator.model import b64url_decode

MAX_BODY_BYTES = 4096  # RFC 8030 §7.2: services must accept at least this much; FCM caps here
MAX_VAPID_LIFETIME_SECONDS = 24 * 60 * 60  # RFC 8292 §2
MAX_TTL_SECONDS = 28 * 24 * 60 * 60  # FCM's cap; RFC 8030 §5.2 lets a service reduce TTL
URGENCIES = frozenset({"very-low", "low", "normal", "high"})  # RFC 8030 §5.3

_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 §5.4: <= 32 base64url characters
_TTL = re.compile(r"[0-9]+")
_VAPID_SCHEME = re.compile(r"vapid\s+(.+)", re.IGNORECASE | re.DOTALL)
_ECE_HEADER_BYTES = 21  # salt(16) + rs(4) + idlen(1), RFC 8188 §2.1
_P256_POINT_BYTES = 65
_TAG_AND_DELIMITER_BYTES = 17


class PushRejected(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class VapidCredentials:
    """A VAPID token whose ES256 signature verified against its `k` key."""

    public_key: bytes
    claims: dict[str, Any]


def parse_vapid(authorization: str | None) -> VapidCredentials:
    """Parse `vapid t=<JWT>, k=<key>` (RFC 8292 §3) and verify the JWT's signature."""
    if not authorization:
        raise PushRejected(401, "missing Authorization header: expected 'vapid t=<JWT>, k=<key>'")
    match = _VAPID_SCHEME.fullmatch(authorization.strip())
    if match is None:
        raise PushRejected(401, "Authorization scheme must be 'vapid' (RFC 8292)")
    params: dict[str, str] = {}
    for part in match.group(1).split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    token, key_text = params.get("t"), params.get("k")
    if not token or not key_text:
        raise PushRejected(401, "Authorization must carry both t=<JWT> and k=<public key>")

    try:
        key = b64url_decode(key_text)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except (ValueError, binascii.Error):
        raise PushRejected(401, "k is not a base64url uncompressed P-256 public key") from None
    if len(key) != _P256_POINT_BYTES:
        raise PushRejected(401, "k must be the 65-byte uncompressed P-256 public key")

    segments = token.split(".")
    if len(segments) != 3:
        raise PushRejected(401, "t is not a JWT (header.claims.signature)")
    try:
        header = json.loads(b64url_decode(segments[0]))
        claims = json.loads(b64url_decode(segments[1]))
        signature = b64url_decode(segments[2])
    except (ValueError, binascii.Error):
        raise PushRejected(401, "t is not a JWT: a segment is not base64url JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise PushRejected(401, "JWT header alg must be ES256")
    if not isinstance(claims, dict):
        raise PushRejected(401, "JWT claims must be a JSON object")
    if len(signature) != 64:
        raise PushRejected(401, "JWT signature must be 64 bytes (raw r||s)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    signed = f"{segments[0]}.{segments[1]}".encode("ascii")
    try:
        public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PushRejected(401, "JWT signature does not verify against k") from None
    return VapidCredentials(public_key=key, claims=claims)


def check_claims(claims: dict[str, Any], *, origin: str, now: float) -> None:
    """RFC 8292 §2: aud is the push resource's origin, exp within 24 h, sub a contact URI."""
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud.rstrip("/").lower() != origin.lower():
        raise PushRejected(
            401, f"aud claim {aud!r} does not match the push service origin {origin!r}"
        )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise PushRejected(401, "exp claim is missing or not a number")
    if exp <= now:
        raise PushRejected(401, "exp claim is in the past: the JWT has expired")
    if exp > now + MAX_VAPID_LIFETIME_SECONDS:
        raise PushRejected(401, "exp claim is more than 24 hours in the future")
    sub = claims.get("sub")
    if sub is None:
        raise PushRejected(401, "sub claim is missing: give a mailto: or https: contact")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise PushRejected(401, "sub claim must be a mailto: or https: URI")


def parse_ttl(value: str | None) -> int:
    if value is None:
        raise PushRejected(400, "missing TTL header (RFC 8030 §5.2)")
    if not _TTL.fullmatch(value.strip()):
        raise PushRejected(400, f"TTL must be a non-negative integer of seconds, got {value!r}")
    return min(int(value), MAX_TTL_SECONDS)


def parse_urgency(value: str | None) -> str:
    if value is None:
        return "normal"
    if value not in URGENCIES:
        raise PushRejected(
            400, f"Urgency must be one of very-low, low, normal, high, got {value!r}"
        )
    return value


def parse_topic(value: str | None) -> str | None:
    if value is None:
        return None
    if not _TOPIC.fullmatch(value):
        raise PushRejected(400, "Topic must be 1-32 characters of the base64url alphabet")
    return value


def check_content_encoding(value: str | None) -> None:
    if value is None or value.strip().lower() != "aes128gcm":
        raise PushRejected(415, f"Content-Encoding must be aes128gcm (RFC 8291), got {value!r}")


def check_aes128gcm_shape(body: bytes) -> None:
    """RFC 8291 §4: keyid is the sender's public key and the payload is one record."""
    if len(body) < _ECE_HEADER_BYTES + _P256_POINT_BYTES + _TAG_AND_DELIMITER_BYTES:
        raise PushRejected(400, "payload could not be decrypted: too short for aes128gcm")
    record_size, key_id_length = struct.unpack_from("!LB", body, 16)
    if key_id_length != _P256_POINT_BYTES:
        raise PushRejected(
            400, "payload could not be decrypted: keyid must be the sender's 65-byte public key"
        )
    # Accepts rs equal to the record length: that record is still the only (last) one.
    if len(body) - _ECE_HEADER_BYTES - _P256_POINT_BYTES > record_size:
        raise PushRejected(400, "payload could not be decrypted: it must be a single record")
