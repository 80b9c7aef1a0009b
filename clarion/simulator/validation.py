"""Checks a push request the way a push service does (RFC 8030, RFC 8291, RFC 8292),
answering as Mozilla's autopush-rs does (autoendpoint/src/extractors/) unless noted.

Each refusal raises `PushRejected(status, reason, errno=...)`, answered with a JSON body
shaped like autopush's: {"code", "errno", "error", "message", "more_info"}. Status policy:

- 401 (errno 109): VAPID missing on a subscription made with an applicationServerKey,
  malformed, of an unknown scheme, badly signed, or with a wrong claim: `aud` not exactly
  the push service's origin (no trailing slash, same case), `exp` missing, past or over
  24 h ahead, `sub` missing or not mailto:/https: (autopush only counts a bad `sub`;
  Apple refuses it, so the simulator does);
- 403 (errno 109): valid credentials whose key is not the subscription's
  applicationServerKey (FCM's answer; autopush says 401);
- 400: TTL missing or not an integer (errno 111) or negative (114); Topic over 32
  characters or outside base64url (113); with a body, Content-Encoding missing, unknown
  (gzip, deflate...) or mixed with the other encoding's headers, or a legacy VAPID scheme
  without Crypto-Key p256ecdsa (110);
- 413 (errno 104): body over 4096 bytes (FCM's limit; autopush takes up to 5630).

What a real service accepts is accepted, and the caller records a `Problem` (model.py):
a body that is not one decryptable aes128gcm record, a VAPID-less push to a subscription
made without a key, the legacy `WebPush`/`Bearer` scheme or `aesgcm` encoding, an
unknown Urgency.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from clarion.simulator.model import Problem, b64url_decode

MAX_BODY_BYTES = 4096  # RFC 8030 §7.2: services must accept at least this much; FCM caps here
MAX_VAPID_LIFETIME_SECONDS = 24 * 60 * 60  # RFC 8292 §2
MAX_TTL_SECONDS = 28 * 24 * 60 * 60  # FCM's cap; RFC 8030 §5.2 lets a service reduce TTL
URGENCIES = frozenset({"very-low", "low", "normal", "high"})  # RFC 8030 §5.3
MORE_INFO = "http://autopush.readthedocs.io/en/latest/http.html#error-codes"

# autopush's errno values (docs: "Error Codes")
ERRNO_INVALID_TOKEN = 102
ERRNO_TOO_LARGE = 104
ERRNO_NO_SUBSCRIPTION = 106
ERRNO_VAPID = 109
ERRNO_ENCRYPTION = 110
ERRNO_NO_TTL = 111
ERRNO_TOPIC = 113
ERRNO_NEGATIVE_TTL = 114
_ERRNO_BY_STATUS = {
    401: ERRNO_VAPID,
    403: ERRNO_VAPID,
    404: ERRNO_INVALID_TOKEN,
    410: ERRNO_NO_SUBSCRIPTION,
    413: ERRNO_TOO_LARGE,
}

_TOPIC = re.compile(r"[A-Za-z0-9_-]+=*")  # autopush: base64url, padding allowed, <= 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+=*")
_TTL = re.compile(r"[+-]?[0-9]+")  # what Rust's i64 parse takes
_MAX_I64 = 2**63 - 1
_SCHEMES = ("vapid", "webpush", "bearer")  # autopush's ALLOWED_SCHEMES
_ECE_HEADER_BYTES = 21  # salt(16) + rs(4) + idlen(1), RFC 8188 §2.1
_P256_POINT_BYTES = 65
_TAG_AND_DELIMITER_BYTES = 17


class PushRejected(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        *,
        errno: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.errno = errno if errno is not None else _ERRNO_BY_STATUS.get(status)

    def body(self) -> dict[str, Any]:
        """The answer's JSON body, as autopush shapes its errors (message before
        more_info, so a sender's bounded excerpt keeps the reason)."""
        return {
            "code": self.status,
            "errno": self.errno,
            "error": HTTPStatus(self.status).phrase,
            "message": self.reason,
            "more_info": MORE_INFO,
        }


@dataclass(frozen=True, slots=True)
class VapidCredentials:
    """A VAPID token whose ES256 signature verified against its key; `legacy` when it came
    as `WebPush <JWT>` / `Bearer <JWT>` with the key in Crypto-Key p256ecdsa."""

    public_key: bytes
    claims: dict[str, Any]
    legacy: bool = False


def header_params(value: str | None) -> dict[str, str]:
    """`a=1;b="2",c=3` (Crypto-Key, Encryption): the first value of each name."""
    params: dict[str, str] = {}
    for item in re.split(r"[,;]", value or ""):
        name, sep, text = item.partition("=")
        if sep:
            params.setdefault(name.strip(), text.strip().strip('"'))
    return params


def authorization_scheme(authorization: str) -> str:
    return authorization.strip().split(" ", 1)[0].lower()


def parse_vapid(authorization: str | None, crypto_key: str | None = None) -> VapidCredentials:
    """Parse `vapid t=<JWT>, k=<key>` (RFC 8292 §3), or the draft `WebPush <JWT>` with the
    key in Crypto-Key's p256ecdsa, and verify the JWT's signature."""
    if not authorization:
        raise PushRejected(401, "missing Authorization header: expected 'vapid t=<JWT>, k=<key>'")
    scheme, _, data = authorization.strip().partition(" ")
    scheme, data = scheme.lower(), data.replace(" ", "")
    if not data:
        raise PushRejected(401, "Missing VAPID token: expected 'vapid t=<JWT>, k=<key>'")
    if scheme not in _SCHEMES:
        raise PushRejected(401, "Unknown auth scheme: the scheme must be 'vapid' (RFC 8292)")
    if scheme == "vapid":
        params = header_params(data)
        token, key_text = params.get("t"), params.get("k")
        if not token or not key_text:
            raise PushRejected(401, "Authorization must carry both t=<JWT> and k=<public key>")
    else:
        token = data
        if crypto_key is None:
            raise PushRejected(400, "Missing Crypto-Key header", errno=ERRNO_ENCRYPTION)
        key_text = header_params(crypto_key).get("p256ecdsa")
        if not key_text:
            raise PushRejected(
                400, "Missing p256ecdsa in Crypto-Key header", errno=ERRNO_ENCRYPTION
            )

    try:
        key = b64url_decode(key_text.rstrip("="))
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
    return VapidCredentials(public_key=key, claims=claims, legacy=scheme != "vapid")


def check_claims(claims: dict[str, Any], *, origin: str, now: float) -> None:
    """RFC 8292 §2: aud is the push resource's origin, exp within 24 h, sub a contact URI.

    `aud` must equal the origin exactly, as autopush's JWT audience check does: a trailing
    slash or another case is refused (401, errno 109)."""
    aud = claims.get("aud")
    if aud is None:
        raise PushRejected(401, "Missing required aud claim: give the push service's origin")
    if aud != origin:
        raise PushRejected(
            401,
            f"Invalid VAPID audience: aud claim {aud!r} must be exactly the push service "
            f"origin {origin!r}",
        )
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp < 0:
        # autopush reads exp as an unsigned integer: 1.7e9 or "1700000000" is refused
        raise PushRejected(401, "exp claim is missing or not an integer of seconds")
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
    """Seconds, capped at MAX_TTL_SECONDS; what autopush refuses is refused the same way."""
    if value is None:
        raise PushRejected(400, "Missing TTL value (RFC 8030 §5.2)", errno=ERRNO_NO_TTL)
    text = value.strip()
    if not _TTL.fullmatch(text) or abs(int(text)) > _MAX_I64:
        raise PushRejected(
            400,
            f"Missing TTL value: TTL must be an integer of seconds, got {value!r}",
            errno=ERRNO_NO_TTL,
        )
    ttl = int(text)
    if ttl < 0:
        raise PushRejected(
            400, f"TTL must be 0 or more seconds, got {value!r}", errno=ERRNO_NEGATIVE_TTL
        )
    return min(ttl, MAX_TTL_SECONDS)


def parse_urgency(value: str | None) -> str:
    """The Urgency a message goes with. autopush ignores the header, so an unknown value
    is accepted and goes as normal (the caller records Problem.INVALID_URGENCY)."""
    return value if value in URGENCIES else "normal"


def urgency_is_valid(value: str | None) -> bool:
    return value is None or value in URGENCIES


def parse_topic(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > 32 or not _TOPIC.fullmatch(value):
        raise PushRejected(
            400,
            "Topic must be no greater than 32 characters of the URL and Filename safe "
            "Base64 alphabet",
            errno=ERRNO_TOPIC,
        )
    return value


def check_content_encoding(
    value: str | None, encryption: str | None = None, crypto_key: str | None = None
) -> str:
    """The body's encoding, aes128gcm or the legacy aesgcm, checked with its headers the
    way autopush does (400, errno 110). Only asked when there is a body."""
    if value is None:
        raise PushRejected(
            400,
            "Missing Content-Encoding header: expected aes128gcm (RFC 8291)",
            errno=ERRNO_ENCRYPTION,
        )
    if value == "aes128gcm":
        for name, header, key in (
            ("Encryption", encryption, "salt"),
            ("Crypto-Key", crypto_key, "dh"),
        ):
            if key in header_params(header):
                raise PushRejected(
                    400,
                    f"Do not include '{key}' in the {name} header with aes128gcm",
                    errno=ERRNO_ENCRYPTION,
                )
        return value
    if value == "aesgcm":
        salt = header_params(encryption).get("salt")
        if encryption is None or salt is None or not _BASE64URL.fullmatch(salt):
            raise PushRejected(
                400,
                "aesgcm needs an Encryption header with a base64url salt",
                errno=ERRNO_ENCRYPTION,
            )
        dh = header_params(crypto_key).get("dh")
        if crypto_key is not None and (dh is None or not _BASE64URL.fullmatch(dh)):
            raise PushRejected(
                400,
                "aesgcm needs a base64url dh in the Crypto-Key header",
                errno=ERRNO_ENCRYPTION,
            )
        return value
    raise PushRejected(
        400,
        f"Unknown Content-Encoding header {value!r}: a push message is aes128gcm (RFC 8291) "
        "or the legacy aesgcm, never compressed",
        errno=ERRNO_ENCRYPTION,
    )


def aes128gcm_problem(body: bytes) -> tuple[Problem, str] | None:
    """RFC 8291 §4: keyid is the sender's public key and the payload is one record. A push
    service does not look inside the body, so these are problems, not refusals."""
    if len(body) < _ECE_HEADER_BYTES + _P256_POINT_BYTES + _TAG_AND_DELIMITER_BYTES:
        return Problem.UNDECRYPTABLE, "too short for aes128gcm"
    record_size, key_id_length = struct.unpack_from("!LB", body, 16)
    if key_id_length != _P256_POINT_BYTES:
        return Problem.UNDECRYPTABLE, "keyid is not the sender's 65-byte public key"
    # Accepts rs equal to the record length: that record is still the only (last) one.
    if len(body) - _ECE_HEADER_BYTES - _P256_POINT_BYTES > record_size:
        return Problem.MULTI_RECORD, f"records of rs={record_size} bytes: more than one"
    return None
