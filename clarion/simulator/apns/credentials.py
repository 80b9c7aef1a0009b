"""Token-based provider authentication as APNs checks it: an ES256 JWT whose header names
the key (`kid`) and whose claims name the team (`iss`) and the time it was made (`iat`).

The check is done here with `cryptography` (not with the JWT library a client uses), on
the simulator's clock, so tests can age tokens without sleeping."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)

from clarion.simulator.apns.model import ApnsRejected

# Apple: a provider token is valid for one hour from its `iat`.
TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A test stand-in for a key downloaded from Apple's developer account (`AuthKey_<kid>.p8`):
    the PKCS#8 PEM a site would upload, and the public half the simulator trusts."""

    team_id: str
    key_id: str
    p8: str  # PKCS#8 PEM of the EC P-256 private key, as Apple hands it out
    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def generate(cls, team_id: str | None = None, key_id: str | None = None) -> ProviderKey:
        """A new key; team and key ids default to random 10-character ids as Apple's are."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        return cls(
            team_id=team_id or _apple_id(),
            key_id=key_id or _apple_id(),
            p8=private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode(
                "ascii"
            ),
            public_key=private_key.public_key(),
        )

    @property
    def public_pem(self) -> str:
        return self.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(
            "ascii"
        )


@dataclass(frozen=True, slots=True)
class ProviderToken:
    """A provider token whose signature verified (its age is checked on every use)."""

    team_id: str
    key_id: str
    issued_at: int


def load_public_key(pem: str | bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM; ValueError for anything else."""
    key = load_pem_public_key(pem.encode("ascii") if isinstance(pem, str) else pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("an APNs signing key is an EC P-256 key")
    return key


def verify_provider_token(
    authorization: str | None,
    trusted: dict[tuple[str, str], ec.EllipticCurvePublicKey],
) -> tuple[str, ProviderToken]:
    """The token text and what it proves, from an `authorization` header value.

    403 MissingProviderToken without a bearer token; 403 InvalidProviderToken when it is
    not an ES256 JWT with `kid`, `iss` and an integer `iat`, when (iss, kid) is not a key
    the simulator trusts, or when the signature does not verify with that key."""
    if not authorization:
        raise ApnsRejected(403, "MissingProviderToken")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApnsRejected(403, "MissingProviderToken")
    parts = token.split(".")
    if len(parts) != 3:
        raise ApnsRejected(403, "InvalidProviderToken")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError included
        raise ApnsRejected(403, "InvalidProviderToken") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ApnsRejected(403, "InvalidProviderToken")
    key_id, team_id, issued_at = header.get("kid"), claims.get("iss"), claims.get("iat")
    if (
        header.get("alg") != "ES256"
        or not isinstance(key_id, str)
        or not isinstance(team_id, str)
        or not isinstance(issued_at, int)
        or isinstance(issued_at, bool)
        or len(signature) != 64
    ):
        raise ApnsRejected(403, "InvalidProviderToken")
    public_key = trusted.get((team_id, key_id))
    if public_key is None:
        raise ApnsRejected(403, "InvalidProviderToken")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public_key.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ApnsRejected(403, "InvalidProviderToken") from None
    return token, ProviderToken(team_id=team_id, key_id=key_id, issued_at=issued_at)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _apple_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))
