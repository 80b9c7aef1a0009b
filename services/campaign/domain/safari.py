"""Legacy Safari (macOS Safari 15 and earlier, website push over APNs): what a site's
configuration must be, checked whole before anything is stored.

Apple's rules ("Configuring Safari Push Notifications"): the Website Push ID is "web."
and a reverse domain; website.json's allowedDomains are the origins that may ask for
permission; its urlFormatString is an http(s) URL in which each "%@" takes one of a
push's url-args; the push package's icon.iconset holds six PNGs of exact sizes; the
package is signed with the Website Push ID certificate. APNs token authentication takes
a P-256 key (.p8), its 10-character key id and the 10-character team id.

Key material never reaches a message, a log line or an exception's text.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from services.campaign.store import (
    LegacySafariIconSet,
    LegacySafariRecord,
    LegacySafariSecrets,
)
from services.kit.errors import InvalidArgument

MAX_WEBSITE_PUSH_ID = 128
MAX_WEBSITE_NAME = 100
MAX_ALLOWED_DOMAINS = 20
MAX_URL_FORMAT_STRING = 2048
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# icon.iconset's files, by the field (and file name) part, and their size in pixels.
ICON_SIZES: dict[str, int] = {
    "icon_16x16": 16,
    "icon_16x16_2x": 32,
    "icon_32x32": 32,
    "icon_32x32_2x": 64,
    "icon_128x128": 128,
    "icon_128x128_2x": 256,
}

_WEBSITE_PUSH_ID = re.compile(r"web(\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?){2,}")
_APPLE_ID = re.compile(r"[A-Z0-9]{10}")
# A "%" Safari does not read as a placeholder: "%@" is the only one there is.
_OTHER_PERCENT = re.compile(r"%(?!@)")
# The UID attribute Apple puts the Website Push ID in (a certificate's subject).
_UID = x509.ObjectIdentifier("0.9.2342.19200300.100.1.1")


@dataclass(frozen=True)
class LegacySafariInput:
    """SetLegacySafari's request as the adapter hands it over, not yet checked."""

    apns_private_key: bytes = field(repr=False)
    apns_key_id: str
    apns_team_id: str
    website_push_id: str
    website_name: str
    allowed_domains: tuple[str, ...]
    url_format_string: str
    certificate: bytes = field(repr=False)
    certificate_private_key: bytes = field(repr=False)
    # By ICON_SIZES' names; a missing one is b"".
    icons: dict[str, bytes] = field(repr=False)


def check(
    given: LegacySafariInput, now: datetime
) -> tuple[LegacySafariRecord, LegacySafariSecrets]:
    """The configuration as it is stored, every field checked (InvalidArgument naming
    the first bad one, in the request's field order)."""
    apns_key = apns_private_key(given.apns_private_key)
    key_id = _apple_id(given.apns_key_id, "apns_key_id", "INVALID_APNS_KEY_ID", "key id")
    team_id = _apple_id(given.apns_team_id, "apns_team_id", "INVALID_APNS_TEAM_ID", "team id")
    push_id = website_push_id(given.website_push_id)
    name = website_name(given.website_name)
    domains = allowed_domains(given.allowed_domains)
    url_format = url_format_string(given.url_format_string)
    signing = signing_pair(given.certificate, given.certificate_private_key, push_id, now)
    icons = icon_set(given.icons)
    record = LegacySafariRecord(
        website_push_id=push_id,
        website_name=name,
        allowed_domains=domains,
        url_format_string=url_format,
        apns_key_id=key_id,
        apns_team_id=team_id,
        certificate_subject=signing.subject,
        certificate_expire_time=signing.expire_time,
        update_time=now,
    )
    secrets = LegacySafariSecrets(
        apns_private_key=apns_key,
        certificate=signing.certificate_der,
        certificate_private_key=signing.private_key_der,
        icons=icons,
        certificate_chain=signing.chain_der,
    )
    return record, secrets


def apns_private_key(data: bytes) -> bytes:
    """The .p8 key (PKCS#8 PEM, or DER) as PKCS#8 DER: a P-256 key, unencrypted."""
    accepted = (
        "apns_private_key must be the APNs authentication key Apple lets you download "
        "(a .p8 file: PKCS#8 PEM of a P-256 key), unencrypted"
    )
    if not data:
        raise _invalid("INVALID_APNS_KEY", accepted, "apns_private_key")
    key = _load_private_key(data, "INVALID_APNS_KEY", "apns_private_key", accepted)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _invalid(
            "INVALID_APNS_KEY", f"{accepted}; this is another kind of key", "apns_private_key"
        )
    return _pkcs8(key)


def _apple_id(value: str, field_name: str, reason: str, what: str) -> str:
    value = value.strip()
    if not _APPLE_ID.fullmatch(value):
        raise _invalid(
            reason,
            f"{field_name} must be the 10-character {what} Apple's developer account shows "
            "(A-Z and 0-9, e.g. ABC123DEFG)",
            field_name,
        )
    return value


def website_push_id(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_WEBSITE_PUSH_ID or not _WEBSITE_PUSH_ID.fullmatch(value):
        raise _invalid(
            "INVALID_WEBSITE_PUSH_ID",
            'website_push_id must be the Website Push ID registered with Apple: "web." and '
            "a reverse domain of letters, digits and hyphens, e.g. web.com.example.news "
            f"(at most {MAX_WEBSITE_PUSH_ID} characters)",
            "website_push_id",
        )
    return value


def website_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_WEBSITE_NAME or not value.isprintable():
        raise _invalid(
            "INVALID_WEBSITE_NAME",
            f"website_name must be 1 to {MAX_WEBSITE_NAME} printable characters on one line: "
            "the heading Notification Center shows",
            "website_name",
        )
    return value


def allowed_domains(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each an https origin (scheme, host, optional port; no path, query or user),
    lower-cased, each once, in the order given."""
    if not values:
        raise _invalid(
            "INVALID_ALLOWED_DOMAIN",
            "allowed_domains needs at least one https origin that may ask for permission, "
            "e.g. https://www.example.com",
            "allowed_domains",
        )
    if len(values) > MAX_ALLOWED_DOMAINS:
        raise _invalid(
            "INVALID_ALLOWED_DOMAIN",
            f"allowed_domains has {len(values)} origins; at most {MAX_ALLOWED_DOMAINS} are allowed",
            "allowed_domains",
        )
    origins: dict[str, None] = {}
    for index, value in enumerate(values):
        origins[_origin(value.strip(), f"allowed_domains[{index}]")] = None
    return tuple(origins)


def _origin(value: str, field_name: str) -> str:
    problem = (
        f"{field_name} must be an https origin: https://, a host and optionally a port, with "
        f"no path, query or user, e.g. https://www.example.com; got {value[:80]!r}"
    )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _invalid("INVALID_ALLOWED_DOMAIN", problem, field_name) from None
    if (
        parts.scheme.lower() != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "%" in value
        or any(c.isspace() for c in value)
    ):
        raise _invalid("INVALID_ALLOWED_DOMAIN", problem, field_name)
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" + (f":{port}" if port is not None and port != 443 else "")


def url_format_string(value: str) -> str:
    value = value.strip()
    example = "e.g. https://www.example.com/%@ (each %@ takes one of a push's url-args)"
    field_name = "url_format_string"
    if not value or len(value) > MAX_URL_FORMAT_STRING:
        raise _invalid(
            "INVALID_URL_FORMAT_STRING",
            f"url_format_string must be 1 to {MAX_URL_FORMAT_STRING} characters: {example}",
            field_name,
        )
    if any(c.isspace() or not c.isprintable() for c in value):
        raise _invalid(
            "INVALID_URL_FORMAT_STRING",
            f"url_format_string must not contain spaces or control characters: {example}",
            field_name,
        )
    if _OTHER_PERCENT.search(value):
        raise _invalid(
            "INVALID_URL_FORMAT_STRING",
            "url_format_string may contain % only as the placeholder %@ (Safari fills it in "
            "as a format string): put percent-encoded parts in the url-args instead",
            field_name,
        )
    # The placeholders filled with a plain value, the URL must be an absolute http(s) one.
    try:
        parts = urlsplit(value.replace("%@", "x"))
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _invalid(
            "INVALID_URL_FORMAT_STRING",
            f"url_format_string must be an absolute http or https URL with a host: {example}",
            field_name,
        )
    return value


@dataclass(frozen=True)
class SigningPair:
    certificate_der: bytes = field(repr=False)
    chain_der: tuple[bytes, ...] = field(repr=False)
    private_key_der: bytes = field(repr=False)
    subject: str
    expire_time: datetime


def signing_pair(
    certificate: bytes, private_key: bytes, push_id: str, now: datetime
) -> SigningPair:
    """The push-package certificate and its key, checked: an X.509 certificate (PEM or
    DER), not expired and already valid, of this Website Push ID when its subject says
    one; the key unencrypted, RSA or EC, and the certificate's."""
    cert, *chain = _load_certificates(certificate)
    expire_time = cert.not_valid_after_utc
    if expire_time <= now:
        raise _invalid(
            "CERTIFICATE_EXPIRED",
            f"the certificate expired at {_when(expire_time)}: renew the Website Push ID "
            "certificate in Apple's developer account and set it again",
            "certificate",
        )
    if cert.not_valid_before_utc > now:
        raise _invalid(
            "INVALID_CERTIFICATE",
            f"the certificate is not valid before {_when(cert.not_valid_before_utc)}",
            "certificate",
        )
    uids = cert.subject.get_attributes_for_oid(_UID)
    if uids and str(uids[0].value) != push_id:
        raise _invalid(
            "CERTIFICATE_PUSH_ID_MISMATCH",
            f"the certificate is for Website Push ID {str(uids[0].value)[:128]!r}, not "
            f"{push_id!r}: set the certificate of this Website Push ID",
            "certificate",
        )
    accepted = (
        "certificate_private_key must be the certificate's private key (PEM or DER: "
        "PKCS#8, PKCS#1 or SEC1), unencrypted"
    )
    if not private_key:
        raise _invalid("INVALID_CERTIFICATE_KEY", accepted, "certificate_private_key")
    key = _load_private_key(
        private_key, "INVALID_CERTIFICATE_KEY", "certificate_private_key", accepted
    )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _invalid(
            "INVALID_CERTIFICATE_KEY", f"{accepted}; RSA or EC keys only", "certificate_private_key"
        )
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise _invalid(
            "CERTIFICATE_KEY_MISMATCH",
            "certificate_private_key is not the private key of certificate: export both "
            "from the same Keychain identity (or .p12)",
            "certificate_private_key",
        )
    try:  # the gateway signs every package with this pair: make sure it can
        sign_detached(cert, key, b"{}", chain)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _invalid(
            "INVALID_CERTIFICATE",
            "the certificate and its key cannot make a CMS signature (an unsupported key or "
            "signature algorithm)",
            "certificate",
        ) from None
    return SigningPair(
        certificate_der=cert.public_bytes(serialization.Encoding.DER),
        chain_der=tuple(issuer.public_bytes(serialization.Encoding.DER) for issuer in chain),
        private_key_der=_pkcs8(key),
        subject=cert.subject.rfc4514_string()[:1024],
        expire_time=expire_time,
    )


def sign_detached(
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    data: bytes,
    chain: list[x509.Certificate] | tuple[x509.Certificate, ...] = (),
) -> bytes:
    """A detached CMS (PKCS#7) signature of `data`, DER, carrying `chain` too: what a
    push package's `signature` file is (the gateway makes them the same way)."""
    builder = (
        pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(certificate, key, hashes.SHA256())
    )
    for issuer in chain:
        builder = builder.add_certificate(issuer)
    return builder.sign(
        serialization.Encoding.DER,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )


def icon_set(icons: dict[str, bytes]) -> LegacySafariIconSet:
    """The six PNGs, each checked: the PNG signature, and the IHDR's width and height
    exactly the icon's size."""
    for name, size in ICON_SIZES.items():
        check_png(icons.get(name, b""), size, f"icons.{name}")
    return LegacySafariIconSet(**{name: icons[name] for name in ICON_SIZES})


def check_png(data: bytes, size: int, field_name: str) -> None:
    expected = f"{field_name} must be a {size} x {size} pixel PNG"
    if not data:
        raise _invalid("INVALID_ICON", f"{expected}; it is missing", field_name)
    # Signature (8 bytes), then the IHDR chunk: length 13, "IHDR", width, height (big-endian).
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise _invalid("INVALID_ICON", f"{expected}; this is not a PNG file", field_name)
    width, height = struct.unpack(">II", data[16:24])
    if (width, height) != (size, size):
        raise _invalid("INVALID_ICON", f"{expected}; this one is {width} x {height}", field_name)


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificate and the issuers given after it (PEM), or the certificate alone
    (DER)."""
    accepted = (
        "certificate must be the Website Push ID certificate, X.509 in PEM (optionally "
        "followed by its issuers) or DER"
    )
    if not data:
        raise _invalid("INVALID_CERTIFICATE", accepted, "certificate")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise _invalid(
            "INVALID_CERTIFICATE", f"{accepted}; it could not be read", "certificate"
        ) from None


def _load_private_key(data: bytes, reason: str, field_name: str, accepted: str) -> object:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError:  # a password-protected key
        raise _invalid(reason, f"{accepted}; this one is encrypted", field_name) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _invalid(reason, f"{accepted}; it could not be read", field_name) from None


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _invalid(reason: str, message: str, field_name: str) -> InvalidArgument:
    return InvalidArgument(reason, message, field=field_name)
