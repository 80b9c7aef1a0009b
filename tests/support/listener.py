"""A TCP listener on 127.0.0.1 that counts every accepted connection, then (optionally)
speaks TLS with a throw-away self-signed certificate and answers one canned HTTP
response. It stands in for "something on the internal network" in SSRF tests: the
count is taken at accept time, before any TLS handshake, so a refused request must
leave it at 0.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_server_context(directory: Path) -> ssl.SSLContext:
    """A server SSLContext with a fresh self-signed certificate for localhost/127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "listener-cert.pem"
    key_path = directory / "listener-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@dataclass
class CountingListener:
    tls: ssl.SSLContext | None
    status_line: str = "201 Created"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    accepted: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> CountingListener:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            if self.tls is not None:
                await writer.start_tls(self.tls)
            await reader.readuntil(b"\r\n\r\n")
            head = [f"HTTP/1.1 {self.status_line}", f"Content-Length: {len(self.body)}"]
            head += [f"{k}: {v}" for k, v in self.headers.items()]
            head += ["Connection: close", "", ""]
            writer.write("\r\n".join(head).encode() + self.body)
            await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # a client that refused our certificate, or hung up
        finally:
            writer.close()
