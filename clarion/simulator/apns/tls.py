"""TLS for the APNs simulator: a throwaway CA, the server certificate it signs, and a
sans-IO TLS session (``ssl.MemoryBIO``) so one port can serve TLS and cleartext HTTP/2,
choosing by the first bytes received."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names a client may expect on the certificate: loopback, and Apple's hosts (for a
# client that resolves or tunnels api.push.apple.com to the simulator).
APPLE_HOSTS = (
    "api.push.apple.com",
    "api.development.push.apple.com",
    "api.sandbox.push.apple.com",
)
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class SimulatorCertificate:
    """A CA made for one simulator run and the server certificate it issued.

    Clients trust `ca_pem` (``ssl.create_default_context(cadata=ca_pem)``); the CA's
    private key is discarded once the server certificate is signed."""

    ca_pem: str
    cert_pem: str
    key_pem: str

    @classmethod
    def generate(cls, extra_hosts: tuple[str, ...] = ()) -> SimulatorCertificate:
        now = datetime.datetime.now(datetime.UTC)
        not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Clarion APNs simulator CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [
            x509.DNSName(name) for name in (*LOOPBACK_NAMES, *APPLE_HOSTS)
        ]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in LOOPBACK_ADDRESSES]
        for host in extra_hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_pem=ca_cert.public_bytes(Encoding.PEM).decode("ascii"),
            cert_pem=cert.public_bytes(Encoding.PEM).decode("ascii"),
            key_pem=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode(
                "ascii"
            ),
        )

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2+ offering ALPN h2 (APNs speaks nothing else; a client that offers no
        ALPN, as aioapns does, still gets HTTP/2)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])
        # load_cert_chain reads files only; the files live for this call.
        with tempfile.TemporaryDirectory() as directory:
            chain = Path(directory) / "chain.pem"
            chain.write_text(self.key_pem + self.cert_pem)
            context.load_cert_chain(chain)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this simulator only (hostname checks kept)."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        context.set_alpn_protocols(["h2"])
        return context


class TlsSession:
    """Server-side TLS over memory buffers: feed received bytes, read what to send."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False
        self.closed_by_peer = False

    def receive(self, data: bytes) -> bytes:
        """Plaintext from `data` (b"" while the handshake runs); raises ssl.SSLError."""
        self._incoming.write(data)
        if not self.handshake_done:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.handshake_done = True
        chunks = []
        while True:
            try:
                chunk = self._ssl.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed_by_peer = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        if plaintext:
            self._ssl.write(plaintext)

    def pending(self) -> bytes:
        """Ciphertext to write to the socket (handshake records included)."""
        return self._outgoing.read()

    @property
    def alpn(self) -> str | None:
        return self._ssl.selected_alpn_protocol()
