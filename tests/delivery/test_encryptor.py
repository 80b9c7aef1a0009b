"""Both encryptors (pywebpush and the native encrypt_rs) produce what an independent
implementation (http_ece) decrypts, and VAPID headers that verify. The simulator
decrypting real runs with both is covered in test_delivery_service."""

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

from services.delivery.adapters.encryptors import create_encryptor, load_private_key
from tests.delivery.conftest import ENCRYPTORS


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.fixture(params=ENCRYPTORS)
def encryptor(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return create_encryptor(request.param)


class TestEncryptBatch:
    def test_each_recipient_decrypts_its_own_payload(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        secrets = [os.urandom(16) for _ in keys]
        payloads = [f'{{"title":"hi","subscriber_id":"sub_{i}"}}'.encode() for i in range(3)]

        bodies = encryptor.encrypt_batch(
            payloads, [(point(k), s) for k, s in zip(keys, secrets, strict=True)]
        )

        for key, secret, body, payload in zip(keys, secrets, bodies, payloads, strict=True):
            assert isinstance(body, bytes)
            plaintext = http_ece.decrypt(
                body, private_key=key, auth_secret=secret, version="aes128gcm"
            )
            assert plaintext == payload

    def test_a_bad_key_fails_only_its_slot(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        good = point(ec.generate_private_key(ec.SECP256R1()))
        bodies = encryptor.encrypt_batch(
            [b"x", b"y"], [(b"\x04" + b"\x00" * 64, os.urandom(16)), (good, os.urandom(16))]
        )
        assert isinstance(bodies[0], Exception)
        assert isinstance(bodies[1], bytes)

    def test_an_empty_batch_is_empty(self, encryptor) -> None:  # type: ignore[no-untyped-def]
        assert encryptor.encrypt_batch([], []) == []


class TestVapidSigner:
    @pytest.mark.parametrize("encoding", ["der", "pem", "raw"])
    def test_signs_a_verifiable_es256_jwt(self, encryptor, encoding: str) -> None:  # type: ignore[no-untyped-def]
        private = ec.generate_private_key(ec.SECP256R1())
        if encoding == "raw":
            key = private.private_numbers().private_value.to_bytes(32, "big")
        else:
            key = private.private_bytes(
                serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        if encoding != "der" and encryptor.name == "native":
            # The native signer takes what campaign stores (DER); the others are the
            # Python loader's conveniences.
            key = load_private_key(key).private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        signer = encryptor.signer(key)
        public = point(private)
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
