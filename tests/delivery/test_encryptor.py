"""Both encryptors produce what an independent implementation (http_ece) decrypts, and
VAPID headers the simulator's checks accept (covered end to end in test_delivery_service)."""

from __future__ import annotations

import base64
import json
import os

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.delivery.adapters.encryptors import create_encryptor
from tests.delivery.conftest import ENCRYPTORS


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(params=ENCRYPTORS)
def encryptor(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return create_encryptor(request.param)


class TestEncryptBatch:
    def test_each_recipient_decrypts_the_payload(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        secrets = [os.urandom(16) for _ in keys]
        points = [
            k.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) for k in keys
        ]

        bodies = encryptor.encrypt_batch(b'{"title":"hi"}', list(zip(points, secrets, strict=True)))

        for key, secret, body in zip(keys, secrets, bodies, strict=True):
            assert isinstance(body, bytes)
            plaintext = http_ece.decrypt(
                body, private_key=key, auth_secret=secret, version="aes128gcm"
            )
            assert plaintext == b'{"title":"hi"}'

    def test_a_bad_key_fails_only_its_slot(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        good = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
        bodies = encryptor.encrypt_batch(
            b"x", [(b"\x04" + b"\x00" * 64, os.urandom(16)), (good, os.urandom(16))]
        )
        assert isinstance(bodies[0], Exception)
        assert isinstance(bodies[1], bytes)


class TestVapidSigner:
    def test_signs_a_verifiable_es256_jwt(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signer = encryptor.signer(der)
        public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        assert signer.public_key == public

        header = signer.authorization(audience="https://push.test", subject="mailto:a@b.test")

        scheme, _, params = header.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        assert scheme == "vapid" and b64url_decode(fields["k"]) == public
        signed, _, signature = fields["t"].rpartition(".")
        raw = b64url_decode(signature)
        der_signature = utils.encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        private.public_key().verify(der_signature, signed.encode(), ec.ECDSA(SHA256()))
        claims = json.loads(b64url_decode(signed.split(".")[1]))
        assert (claims["aud"], claims["sub"]) == ("https://push.test", "mailto:a@b.test")
