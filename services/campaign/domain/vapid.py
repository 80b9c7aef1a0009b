"""VAPID key pairs a site imports from another provider: the forms accepted, one P-256
check, and the pair as Clarion stores it (PKCS#8 DER, 65-byte uncompressed point).

Key material never reaches a message, a log line or an exception's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.kit.errors import InvalidArgument

PUBLIC_KEY_LENGTH = 65
RAW_SCALAR_LENGTH = 32
ACCEPTED_FORMS = (
    "a P-256 private key as PKCS#8 DER, PKCS#8 PEM (BEGIN PRIVATE KEY), SEC1 PEM "
    "(BEGIN EC PRIVATE KEY), or the raw 32-byte scalar (what web-push libraries print "
    "base64url-encoded, decoded), unencrypted"
)


@dataclass(frozen=True)
class ParsedKeyPair:
    private_der: bytes = field(repr=False)
    public_point: bytes


def parse_private_key(data: bytes) -> ParsedKeyPair:
    """The key pair of `data` in any accepted form; INVALID_VAPID_KEY naming
    `private_key` for anything else (another curve or algorithm, a password-protected
    key, junk)."""
    key = _load(data)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _invalid("private_key is not a P-256 (secp256r1) key: VAPID needs " + ACCEPTED_FORMS)
    return ParsedKeyPair(
        private_der=key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_point=key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    )


def check_public_key(given: bytes, pair: ParsedKeyPair) -> None:
    """`given` (optional: b"" checks nothing) must be the pair's public key."""
    if not given:
        return
    if len(given) != PUBLIC_KEY_LENGTH or given[0] != 0x04:
        raise _invalid(
            f"public_key must be the {PUBLIC_KEY_LENGTH}-byte uncompressed P-256 point "
            f"(0x04, x, y), got {len(given)} bytes",
            field="public_key",
        )
    if given != pair.public_point:
        raise InvalidArgument(
            "VAPID_KEY_MISMATCH",
            "public_key is not the public key of private_key: check that both halves "
            "come from the same key pair",
            field="public_key",
        )


def _load(data: bytes) -> object:
    if not data:
        raise _invalid(f"private_key is required: {ACCEPTED_FORMS}")
    try:
        if len(data) == RAW_SCALAR_LENGTH:
            return ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1())
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError:  # a password-protected key
        raise _invalid(
            f"private_key is encrypted; export it without a password: {ACCEPTED_FORMS}"
        ) from None
    except (ValueError, UnsupportedAlgorithm, OverflowError):
        raise _invalid(f"private_key could not be read: expected {ACCEPTED_FORMS}") from None


def _invalid(message: str, *, field: str = "private_key") -> InvalidArgument:
    return InvalidArgument("INVALID_VAPID_KEY", message, field=field)
