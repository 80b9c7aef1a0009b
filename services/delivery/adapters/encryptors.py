"""RFC 8291 encryption and RFC 8292 VAPID signing, behind one small interface.

`native` is the Rust core (encrypt_rs: one batch call that releases the GIL); `python`
is the pywebpush/py_vapid reference, chosen with CLARION_ENCRYPTOR=python.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.delivery.domain.ports import Encryptor, VapidSigning


class NativeEncryptor:
    name = "native"

    def __init__(self) -> None:
        import encrypt_rs  # the extension built from native/encrypt_rs

        self._native = encrypt_rs

    def encrypt_batch(
        self, payloads: Sequence[bytes], recipients: Sequence[tuple[bytes, bytes]]
    ) -> list[bytes | Exception]:
        return list(self._native.encrypt_batch(list(payloads), list(recipients)))

    def signer(self, private_key: bytes) -> VapidSigning:
        return self._native.VapidSigner(private_key)  # type: ignore[no-any-return]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def load_private_key(private_key: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 key from a raw 32-byte scalar, PKCS#8/SEC1 DER or PEM."""
    if len(private_key) == 32:
        return ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP256R1())
    if private_key.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(private_key, password=None)
    else:
        key = serialization.load_der_private_key(private_key, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID private key must be a P-256 (secp256r1) key")
    return key


class PythonVapidSigner:
    def __init__(self, private_key: bytes) -> None:
        from py_vapid import Vapid02

        self._vapid = Vapid02(load_private_key(private_key))
        self._public_key = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def authorization(self, audience: str, subject: str, expires_in: int = 43200) -> str:
        # VAPID expiry is checked by the push service against real time, not our clock.
        claims = {"aud": audience, "sub": subject, "exp": int(time.time()) + expires_in}
        token = self._vapid.sign(claims)["Authorization"].split("t=", 1)[1].split(",", 1)[0]
        return f"vapid t={token}, k={_b64url(self._public_key)}"


class PythonEncryptor:
    name = "python"

    def encrypt_batch(
        self, payloads: Sequence[bytes], recipients: Sequence[tuple[bytes, bytes]]
    ) -> list[bytes | Exception]:
        from pywebpush import WebPusher

        bodies: list[bytes | Exception] = []
        for payload, (p256dh, auth) in zip(payloads, recipients, strict=True):
            try:
                pusher = WebPusher(
                    {
                        "endpoint": "https://push.invalid/",
                        "keys": {"p256dh": _b64url(p256dh), "auth": _b64url(auth)},
                    }
                )
                bodies.append(bytes(pusher.encode(payload, content_encoding="aes128gcm")["body"]))
            except Exception as error:  # one bad key fails one recipient, not the batch
                bodies.append(error)
        return bodies

    def signer(self, private_key: bytes) -> VapidSigning:
        return PythonVapidSigner(private_key)


def create_encryptor(kind: Literal["native", "python"]) -> Encryptor:
    if kind == "python":
        return PythonEncryptor()
    try:
        return NativeEncryptor()
    except ImportError as error:
        raise RuntimeError(
            "the native encryptor (encrypt_rs) is not installed: build it with "
            "`maturin develop --release` in native/encrypt_rs, or set CLARION_ENCRYPTOR=python"
        ) from error
