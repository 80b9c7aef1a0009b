"""What a site sets up for legacy Safari, made up for tests: a .p8 APNs key, a
self-signed Website Push ID certificate with its key, and six real PNG icons."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from clarion.campaign.v1 import site_pb2, site_service_pb2

UID = x509.ObjectIdentifier("0.9.2342.19200300.100.1.1")
ICON_SIZES = {
    "icon_16x16": 16,
    "icon_16x16_2x": 32,
    "icon_32x32": 32,
    "icon_32x32_2x": 64,
    "icon_128x128": 128,
    "icon_128x128_2x": 256,
}


def png(width: int, height: int | None = None, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid PNG of one colour (8-bit RGB), `width` x `height` pixels."""
    height = width if height is None else height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def icons() -> dict[str, bytes]:
    return {name: png(size) for name, size in ICON_SIZES.items()}


def pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@cache
def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    # RSA key generation takes tens of milliseconds: a few keys serve the whole session.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    website_push_id: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate shaped like Apple's Website Push ID ones (UID = the
    push id, CN "Website Push ID: ...")."""
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(UID, website_push_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Website Push ID: {website_push_id}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ABC123DEFG"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Shop"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class SafariSetup:
    website_push_id: str
    apns_key: ec.EllipticCurvePrivateKey = field(repr=False)
    signing_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    icons: dict[str, bytes] = field(repr=False)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def request(self, **overrides: object) -> site_service_pb2.SetLegacySafariRequest:
        """A valid SetLegacySafariRequest; `overrides` replace fields (icons: a dict)."""
        icon_values = dict(self.icons)
        icon_values.update(overrides.pop("icons", {}))  # type: ignore[arg-type]
        values: dict[str, object] = {
            "apns_private_key": pem_private(self.apns_key),
            "apns_key_id": "KEY1234567",
            "apns_team_id": "TEAM123456",
            "website_push_id": self.website_push_id,
            "website_name": "Example Shop",
            "allowed_domains": ["https://shop.example.com", "https://www.example.com"],
            "url_format_string": "https://shop.example.com/%@?from=safari",
            "certificate": self.certificate_pem,
            "certificate_private_key": pem_private(self.signing_key),
            "icons": site_pb2.LegacySafariIcons(**icon_values),
        }
        values.update(overrides)
        return site_service_pb2.SetLegacySafariRequest(**values)  # type: ignore[arg-type]


def setup(website_push_id: str, key_index: int = 0) -> SafariSetup:
    signing_key = _rsa_key(key_index)
    return SafariSetup(
        website_push_id=website_push_id,
        apns_key=ec.generate_private_key(ec.SECP256R1()),
        signing_key=signing_key,
        certificate=certificate(signing_key, website_push_id),
        icons=icons(),
    )
