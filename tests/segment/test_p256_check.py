"""validate_p256dh's curve check (plain integers) agrees with OpenSSL's point decoding."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.kit.errors import InvalidArgument
from services.segment.domain import on_p256, validate_p256dh

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF


def openssl_accepts(point: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


def public_point() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


class TestOnP256:
    def test_real_keys_and_one_bit_off_agree_with_openssl(self) -> None:
        rng = random.Random(7)
        for _ in range(200):
            point = public_point()
            assert on_p256(point) and openssl_accepts(point)
            flipped = bytearray(point)
            flipped[rng.randrange(1, 65)] ^= 1 << rng.randrange(8)
            assert on_p256(bytes(flipped)) == openssl_accepts(bytes(flipped))

    @pytest.mark.parametrize(
        "point",
        [
            b"\x04" + b"\x00" * 64,
            b"\x04" + b"\xff" * 64,
            # x = p: out of the field, though x = 0 would be its residue.
            b"\x04" + P.to_bytes(32) + b"\x00" * 32,
        ],
    )
    def test_out_of_field_or_off_curve_refused(self, point: bytes) -> None:
        assert not on_p256(point) and not openssl_accepts(point)
        with pytest.raises(InvalidArgument) as raised:
            validate_p256dh(point)
        assert raised.value.reason == "INVALID_P256DH"
        assert "not on the curve" in raised.value.message
