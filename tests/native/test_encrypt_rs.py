"""The native core (encrypt_rs): byte-exact RFC 8291, interoperable with http_ece (an
independent implementation), VAPID tokens that `cryptography` verifies, and errors
that name the argument at fault."""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256

import encrypt_rs

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "native" / "encrypt_rs"

# RFC 8291, Appendix A.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AS_PUBLIC = (
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS"
    "6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Q"
    "ulcy4a-fN"
)

MAX_PAYLOAD = 4096 - 103


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


class Subscriber:
    """A browser's side: its key pair and auth secret, and what it reads."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.p256dh = point(self.key)
        self.auth = os.urandom(16)

    @property
    def pair(self) -> tuple[bytes, bytes]:
        return (self.p256dh, self.auth)

    def read(self, body: bytes) -> bytes:
        return bytes(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


def off_curve_point() -> bytes:
    good = bytearray(Subscriber().p256dh)
    good[-1] ^= 1
    return bytes(good)


class TestEncrypt:
    def test_reproduces_rfc8291_appendix_a_byte_for_byte(self) -> None:
        body = encrypt_rs.encrypt(
            RFC_PLAINTEXT,
            b64d(RFC_UA_PUBLIC),
            b64d(RFC_AUTH),
            salt=b64d(RFC_SALT),
            sender_private_key=b64d(RFC_AS_PRIVATE),
        )

        assert type(body) is bytes
        assert len(body) == 144
        assert body == b64d(RFC_BODY)
        assert body[21:86] == b64d(RFC_AS_PUBLIC)

    def test_the_rfc_body_reads_back_with_the_user_agent_key(self) -> None:
        ua = ec.derive_private_key(int.from_bytes(b64d(RFC_UA_PRIVATE), "big"), ec.SECP256R1())
        plaintext = http_ece.decrypt(
            b64d(RFC_BODY), private_key=ua, auth_secret=b64d(RFC_AUTH), version="aes128gcm"
        )
        assert plaintext == RFC_PLAINTEXT

    def test_random_payloads_decrypt_and_equal_http_ece_given_the_same_salt_and_key(
        self,
    ) -> None:
        rng = random.Random(8291)
        lengths = [0, 1, 15, 16, 17, 2048, MAX_PAYLOAD - 1, MAX_PAYLOAD]
        lengths += [rng.randrange(0, MAX_PAYLOAD + 1) for _ in range(24)]
        for length in lengths:
            subscriber = Subscriber()
            payload = rng.randbytes(length)
            sender = ec.generate_private_key(ec.SECP256R1())
            scalar = sender.private_numbers().private_value.to_bytes(32, "big")
            salt = os.urandom(16)

            ours = encrypt_rs.encrypt(
                payload, subscriber.p256dh, subscriber.auth, salt=salt, sender_private_key=scalar
            )
            theirs = http_ece.encrypt(
                payload,
                salt=salt,
                private_key=sender,
                dh=subscriber.p256dh,
                auth_secret=subscriber.auth,
                version="aes128gcm",
            )

            assert subscriber.read(ours) == payload
            if length == 0:
                # http_ece writes no record at all for an empty payload (a bare
                # header); RFC 8188 wants a final record holding the 0x02 delimiter.
                assert theirs == ours[:86] and len(ours) == 103
            else:
                assert ours == theirs, f"payload of {length} bytes"
            fresh = encrypt_rs.encrypt(payload, subscriber.p256dh, subscriber.auth)
            assert len(fresh) == length + 103
            assert subscriber.read(fresh) == payload

    def test_salt_and_sender_key_are_fresh_for_every_message(self) -> None:
        subscriber = Subscriber()
        bodies = [encrypt_rs.encrypt(b"same", *subscriber.pair) for _ in range(20)]

        assert len({body[:16] for body in bodies}) == 20
        assert len({body[21:86] for body in bodies}) == 20
        assert all(subscriber.read(body) == b"same" for body in bodies)

    def test_header_carries_record_size_and_sender_key(self) -> None:
        subscriber = Subscriber()
        body = encrypt_rs.encrypt(b"x" * 50, *subscriber.pair, record_size=300)

        assert int.from_bytes(body[16:20], "big") == 300
        assert body[20] == 65 and body[21] == 0x04
        assert subscriber.read(body) == b"x" * 50

    def test_3993_bytes_fill_exactly_4096_and_3994_are_refused(self) -> None:
        subscriber = Subscriber()
        body = encrypt_rs.encrypt(b"a" * MAX_PAYLOAD, *subscriber.pair)
        assert len(body) == 4096
        assert subscriber.read(body) == b"a" * MAX_PAYLOAD

        with pytest.raises(
            ValueError, match=r"^payload is 3994 bytes, larger than record_size - 103 = 3993"
        ):
            encrypt_rs.encrypt(b"a" * (MAX_PAYLOAD + 1), *subscriber.pair)

    def test_a_smaller_record_size_lowers_the_limit(self) -> None:
        subscriber = Subscriber()
        assert len(encrypt_rs.encrypt(b"a" * 97, *subscriber.pair, record_size=200)) == 200
        with pytest.raises(ValueError, match="^payload is 98 bytes"):
            encrypt_rs.encrypt(b"a" * 98, *subscriber.pair, record_size=200)
        assert len(encrypt_rs.encrypt(b"", *subscriber.pair, record_size=103)) == 103

    @pytest.mark.parametrize("record_size", [102, 0, -1, 2**32])
    def test_record_size_out_of_range_is_refused(self, record_size: int) -> None:
        with pytest.raises(ValueError, match="^record_size must be between 103 and 4294967295"):
            encrypt_rs.encrypt(b"x", *Subscriber().pair, record_size=record_size)

    def test_accepts_any_bytes_like_argument(self) -> None:
        subscriber = Subscriber()
        body = encrypt_rs.encrypt(
            bytearray(b"hello"), memoryview(subscriber.p256dh), bytearray(subscriber.auth)
        )
        assert subscriber.read(body) == b"hello"

    @pytest.mark.parametrize(
        ("p256dh", "message"),
        [
            (
                b"\x04" + b"\x01" * 63,
                "^p256dh must be a 65-byte uncompressed P-256 point, got 64 bytes",
            ),
            (b"", "^p256dh must be a 65-byte uncompressed P-256 point, got 0 bytes"),
            (b"\x02" + b"\x01" * 64, "^p256dh must be an uncompressed P-256 point"),
            (b"\x04" + b"\x00" * 64, "^p256dh is not a point on P-256$"),
            (b"\x04" + b"\xff" * 64, "^p256dh is not a point on P-256$"),
        ],
    )
    def test_a_bad_p256dh_is_named(self, p256dh: bytes, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            encrypt_rs.encrypt(b"x", p256dh, os.urandom(16))

    def test_a_point_off_the_curve_is_refused(self) -> None:
        with pytest.raises(ValueError, match="^p256dh is not a point on P-256$"):
            encrypt_rs.encrypt(b"x", off_curve_point(), os.urandom(16))

    @pytest.mark.parametrize("length", [0, 15, 17, 32])
    def test_a_bad_auth_length_is_named(self, length: int) -> None:
        with pytest.raises(ValueError, match=f"^auth must be 16 bytes, got {length} bytes$"):
            encrypt_rs.encrypt(b"x", Subscriber().p256dh, os.urandom(length))

    def test_bad_salt_and_sender_key_are_named(self) -> None:
        subscriber = Subscriber()
        with pytest.raises(ValueError, match="^salt must be 16 bytes, got 12 bytes$"):
            encrypt_rs.encrypt(b"x", *subscriber.pair, salt=os.urandom(12))
        with pytest.raises(ValueError, match="^sender_private_key must be a 32-byte P-256 scalar"):
            encrypt_rs.encrypt(b"x", *subscriber.pair, sender_private_key=os.urandom(31))
        for scalar in (bytes(32), b"\xff" * 32):
            with pytest.raises(
                ValueError, match="^sender_private_key is not a valid P-256 private key"
            ):
                encrypt_rs.encrypt(b"x", *subscriber.pair, sender_private_key=scalar)

    def test_wrong_types_raise_type_error_naming_the_argument(self) -> None:
        subscriber = Subscriber()
        with pytest.raises(TypeError, match="^payload must be bytes-like, not str$"):
            encrypt_rs.encrypt("text", *subscriber.pair)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^p256dh must be bytes-like, not int$"):
            encrypt_rs.encrypt(b"x", 4, subscriber.auth)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^auth must be bytes-like, not NoneType$"):
            encrypt_rs.encrypt(b"x", subscriber.p256dh, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^salt must be bytes-like, not str$"):
            encrypt_rs.encrypt(b"x", *subscriber.pair, salt="0" * 16)  # type: ignore[arg-type]


class TestEncryptBatch:
    def test_one_payload_for_everyone(self) -> None:
        subscribers = [Subscriber() for _ in range(10)]
        bodies = encrypt_rs.encrypt_batch(b'{"title":"hi"}', [s.pair for s in subscribers])

        assert len(bodies) == 10
        for subscriber, body in zip(subscribers, bodies, strict=True):
            assert type(body) is bytes
            assert subscriber.read(body) == b'{"title":"hi"}'
        assert len({body[21:86] for body in bodies if isinstance(body, bytes)}) == 10

    def test_one_payload_per_recipient(self) -> None:
        subscribers = [Subscriber() for _ in range(8)]
        payloads = [os.urandom(n * 100) for n in range(8)]
        bodies = encrypt_rs.encrypt_batch(payloads, [s.pair for s in subscribers])

        for subscriber, payload, body in zip(subscribers, payloads, bodies, strict=True):
            assert isinstance(body, bytes)
            assert subscriber.read(body) == payload

    def test_a_bad_recipient_fails_only_its_own_slot(self) -> None:
        subscribers = [Subscriber() for _ in range(5)]
        recipients: list[object] = [s.pair for s in subscribers]
        recipients[1] = (off_curve_point(), os.urandom(16))
        recipients[2] = (subscribers[2].p256dh, os.urandom(15))
        recipients[3] = b"not a pair"

        bodies = encrypt_rs.encrypt_batch(b"hello", recipients)  # type: ignore[arg-type]

        assert isinstance(bodies[0], bytes) and subscribers[0].read(bodies[0]) == b"hello"
        assert isinstance(bodies[4], bytes) and subscribers[4].read(bodies[4]) == b"hello"
        assert isinstance(bodies[1], ValueError)
        assert str(bodies[1]) == "recipient 1: p256dh is not a point on P-256"
        assert isinstance(bodies[2], ValueError)
        assert str(bodies[2]) == "recipient 2: auth must be 16 bytes, got 15 bytes"
        assert isinstance(bodies[3], TypeError)
        assert str(bodies[3]) == "recipient 3: must be a (p256dh, auth) pair"

    def test_a_too_large_payload_fails_its_slot_or_the_call(self) -> None:
        subscribers = [Subscriber() for _ in range(3)]
        payloads = [b"ok", b"x" * (MAX_PAYLOAD + 1), b"ok"]
        bodies = encrypt_rs.encrypt_batch(payloads, [s.pair for s in subscribers])
        assert isinstance(bodies[1], ValueError)
        assert str(bodies[1]).startswith("recipient 1: payload is 3994 bytes")
        assert isinstance(bodies[0], bytes) and isinstance(bodies[2], bytes)

        with pytest.raises(
            ValueError, match="^payloads is 3994 bytes, larger than record_size - 103"
        ):
            encrypt_rs.encrypt_batch(b"x" * (MAX_PAYLOAD + 1), [s.pair for s in subscribers])

    def test_payload_count_must_match_recipients(self) -> None:
        with pytest.raises(ValueError, match="^payloads has 2 items but recipients has 3"):
            encrypt_rs.encrypt_batch([b"a", b"b"], [Subscriber().pair for _ in range(3)])

    def test_arguments_of_the_wrong_type_are_refused(self) -> None:
        with pytest.raises(TypeError, match="^recipients must be a sequence"):
            encrypt_rs.encrypt_batch(b"x", 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^payloads must be bytes-like or a sequence"):
            encrypt_rs.encrypt_batch("x", [Subscriber().pair])  # type: ignore[arg-type]

    def test_no_recipients_give_an_empty_list(self) -> None:
        assert encrypt_rs.encrypt_batch(b"x", []) == []

    def test_record_size_applies_to_every_message(self) -> None:
        subscriber = Subscriber()
        (body,) = encrypt_rs.encrypt_batch(b"y" * 97, [subscriber.pair], record_size=200)
        assert isinstance(body, bytes) and len(body) == 200
        assert subscriber.read(body) == b"y" * 97

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
    def test_still_works_in_a_forked_child(self) -> None:
        subscriber = Subscriber()
        encrypt_rs.encrypt_batch(b"parent", [subscriber.pair] * 8)  # starts the workers

        pid = os.fork()
        if pid == 0:  # the child: its copy of the pool has no threads
            code = 1
            try:
                bodies = encrypt_rs.encrypt_batch(b"child", [subscriber.pair] * 8)
                code = 0 if all(isinstance(b, bytes) for b in bodies) else 2
            finally:
                os._exit(code)

        deadline = time.monotonic() + 60
        while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("encrypt_batch hung in a forked child")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(waited[1]) == 0

    def test_other_python_threads_run_while_it_works(self) -> None:
        recipients = [Subscriber().pair] * 3000
        done = threading.Event()

        def work() -> None:
            encrypt_rs.encrypt_batch(b"z" * 100, recipients)
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        spins = 0
        while not done.is_set():
            spins += 1
        worker.join()
        # Holding the GIL for the whole call would leave this loop a handful of turns.
        assert spins > 1000


VAPID_HEADER = re.compile(r"vapid t=(([\w-]+)\.([\w-]+))\.([\w-]+), k=([\w-]{87})")


def verify(header: str, public_key: bytes) -> dict[str, object]:
    """Checks the header's form and its ES256 signature with `cryptography`; returns the claims."""
    match = VAPID_HEADER.fullmatch(header)
    assert match, header
    signed, jose, claims, signature, key = match.groups()
    assert json.loads(b64d(jose)) == {"typ": "JWT", "alg": "ES256"}
    assert b64d(key) == public_key
    raw = b64d(signature)
    assert len(raw) == 64  # JWS ES256: r || s, not DER
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    verifier.verify(der, signed.encode(), ec.ECDSA(SHA256()))
    parsed: dict[str, object] = json.loads(b64d(claims))
    return parsed


AUD = "https://fcm.googleapis.com"
SUB = "mailto:ops@example.com"
NOW = 1_800_000_000.5


class TestVapidSigner:
    def test_token_verifies_against_the_public_key_with_the_claims_asked(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        signer = encrypt_rs.VapidSigner(private.private_numbers().private_value.to_bytes(32, "big"))
        assert signer.public_key == point(private)

        claims = verify(signer.authorization(AUD, SUB, 3600, now=NOW), point(private))

        assert claims == {"aud": AUD, "exp": math.floor(NOW) + 3600, "sub": SUB}

    def test_default_lifetime_is_12_hours_from_the_system_clock(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        before = time.time()
        claims = verify(signer.authorization(AUD, SUB), signer.public_key)
        after = time.time()
        exp = claims["exp"]
        assert isinstance(exp, int)
        assert math.floor(before) + 43200 <= exp <= after + 43200

    def test_header_is_vapid_t_and_k(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        header = signer.authorization(audience=AUD, subject=SUB)
        token = header.removeprefix("vapid t=").split(", k=")[0]
        assert header == f"vapid t={token}, k={b64e(signer.public_key)}"

    def test_exp_is_never_more_than_24_hours_ahead(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        claims = verify(signer.authorization(AUD, SUB, 86400, now=NOW), signer.public_key)
        assert claims["exp"] == math.floor(NOW) + 86400

        for expires_in in (86401, 7 * 86400, 0, -60):
            with pytest.raises(ValueError, match="^expires_in must be between 1 and 86400 seconds"):
                signer.authorization(AUD, SUB, expires_in, now=NOW)

    def test_a_token_is_reused_per_audience_and_subject_until_near_expiry(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        first = signer.authorization(AUD, SUB, now=NOW)

        # ECDSA signatures are randomized: an equal header is the same token.
        assert signer.authorization(AUD, SUB, now=NOW + 60) == first
        assert signer.authorization(AUD, SUB, now=NOW + 43200 - 601) == first
        assert signer.authorization(AUD, "mailto:other@example.com", now=NOW) != first
        assert signer.authorization("https://web.push.apple.com", SUB, now=NOW) != first

        renewed = signer.authorization(AUD, SUB, now=NOW + 43200 - 599)
        assert renewed != first
        claims = verify(renewed, signer.public_key)
        assert claims["exp"] == math.floor(NOW + 43200 - 599) + 43200

    def test_a_cached_token_never_outlives_a_shorter_expires_in(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        signer.authorization(AUD, SUB, now=NOW)
        claims = verify(signer.authorization(AUD, SUB, 600, now=NOW + 1), signer.public_key)
        assert claims["exp"] == math.floor(NOW + 1) + 600

    @pytest.mark.parametrize("now", [-1.0, float("nan"), float("inf")])
    def test_a_bad_now_is_refused(self, now: float) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        with pytest.raises(ValueError, match="^now must be a finite, non-negative Unix time"):
            signer.authorization(AUD, SUB, now=now)

    @pytest.mark.parametrize(
        "subject", ["ops@example.com", "http://example.com", "mailto:", "tel:+123", ""]
    )
    def test_a_subject_that_is_not_mailto_or_https_is_refused(self, subject: str) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        with pytest.raises(ValueError, match="^subject must be a 'mailto:' or 'https:' URI"):
            signer.authorization(AUD, subject)

    def test_an_https_subject_is_accepted(self) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        claims = verify(signer.authorization(AUD, "https://example.com/contact"), signer.public_key)
        assert claims["sub"] == "https://example.com/contact"

    @pytest.mark.parametrize(
        "audience",
        ["fcm.googleapis.com", "https://fcm.googleapis.com/fcm/send/abc", "https://", ""],
    )
    def test_an_audience_that_is_not_an_origin_is_refused(self, audience: str) -> None:
        signer = encrypt_rs.VapidSigner(ec_scalar())
        with pytest.raises(ValueError, match="^audience must be the push service's origin"):
            signer.authorization(audience, SUB)

    def test_accepts_raw_pkcs8_der_sec1_and_pem_keys(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        expected = point(private)
        encodings = [
            private.private_numbers().private_value.to_bytes(32, "big"),
            private.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            private.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
        ]
        pems = [
            private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
            for fmt in (
                serialization.PrivateFormat.PKCS8,
                serialization.PrivateFormat.TraditionalOpenSSL,
            )
        ]
        keys: list[bytes | bytearray | str] = [*encodings, *pems, pems[0].decode()]
        keys.append(bytearray(encodings[1]))
        for key in keys:
            signer = encrypt_rs.VapidSigner(key)
            assert signer.public_key == expected
            verify(signer.authorization(AUD, SUB), expected)

    def test_bad_keys_are_refused_naming_private_key(self) -> None:
        p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        for key in (bytes(32), b"\xff" * 32, b"\x01" * 31, p384, encrypted, b"", "not a pem"):
            with pytest.raises(ValueError, match="^private_key "):
                encrypt_rs.VapidSigner(key)
        with pytest.raises(TypeError, match="^private_key must be bytes-like"):
            encrypt_rs.VapidSigner(42)  # type: ignore[arg-type]


def ec_scalar() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    )


class TestStub:
    def test_the_pyi_stub_matches_the_built_module(self, tmp_path: Path) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy.stubtest",
                "encrypt_rs",
                "--allowlist",
                str(CRATE / "stubtest-allowlist.txt"),
            ],
            cwd=tmp_path,
            check=False,
            env={**os.environ, "MYPYPATH": str(CRATE), "MYPY_CACHE_DIR": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
