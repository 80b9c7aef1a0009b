"""RFC 8291 Web Push payload encryption and RFC 8292 VAPID signing (Rust, AWS-LC).

Every function takes raw bytes (any bytes-like object: ``bytes``, ``bytearray``,
``memoryview``), never base64. Wrong arguments raise ``ValueError`` (bad value)
or ``TypeError`` (bad type) with a message that starts with the argument's name.
The heavy work runs with the GIL released.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import final

from _typeshed import ReadableBuffer

__all__ = ["PushClient", "VapidSigner", "__version__", "encrypt", "encrypt_batch"]

__version__: str

def encrypt(
    payload: ReadableBuffer,
    p256dh: ReadableBuffer,
    auth: ReadableBuffer,
    *,
    record_size: int = 4096,
    salt: ReadableBuffer | None = None,
    sender_private_key: ReadableBuffer | None = None,
) -> bytes:
    """Encrypt one Web Push message and return the complete ``aes128gcm`` body.

    The body is ``salt (16) || rs (4, = record_size) || idlen (1, = 65) ||
    keyid (the 65-byte sender public key) || one record`` (RFC 8188 / RFC 8291),
    ``len(payload) + 103`` bytes long.

    - ``p256dh``: the subscription's 65-byte uncompressed P-256 point.
    - ``auth``: the subscription's 16-byte authentication secret.
    - ``record_size``: the largest body allowed, written as the header's ``rs``;
      the payload may be at most ``record_size - 103`` bytes (3993 for the
      default 4096, which every push service accepts).
    - ``salt`` (16 bytes) and ``sender_private_key`` (32-byte big-endian scalar)
      exist only to reproduce known vectors. Leave them ``None``: then both are
      fresh and random for every message, as RFC 8291 requires.

    Raises ``ValueError`` naming the argument for a wrong length, a point that
    is not on P-256, a payload larger than ``record_size - 103``, or an invalid
    scalar; ``TypeError`` for an argument that is not bytes-like.
    """

def encrypt_batch(
    payloads: ReadableBuffer | Sequence[ReadableBuffer],
    recipients: Sequence[tuple[ReadableBuffer, ReadableBuffer]],
    *,
    record_size: int = 4096,
) -> list[bytes | Exception]:
    """Encrypt for many subscribers at once, on every core, without the GIL.

    ``recipients`` is a sequence of ``(p256dh, auth)`` pairs. ``payloads`` is
    either one bytes-like payload sent to everyone, or a sequence with exactly
    one payload per recipient (else ``ValueError``). Each message gets its own
    fresh key pair and salt, exactly as :func:`encrypt` would produce.

    Returns a list in the order of ``recipients``. A slot is the ``bytes`` body
    when encryption succeeded, or, when that recipient (or its payload) is
    unusable, the exception instance that :func:`encrypt` would have raised,
    with its message prefixed by the index, e.g.
    ``ValueError("recipient 3: p256dh is not a point on P-256")`` or
    ``TypeError("recipient 5: must be a (p256dh, auth) pair")``.
    Failed slots are *returned*, not raised, so one bad subscription never costs
    the others their message; check with ``isinstance(slot, bytes)``.

    Raised (for the whole call): ``ValueError`` for a bad ``record_size``, a
    shared payload larger than ``record_size - 103``, or a ``payloads``
    sequence whose length differs from ``recipients``; ``TypeError`` when
    ``recipients`` or ``payloads`` is not a sequence.
    """

@final
class VapidSigner:
    """One application server's VAPID key (RFC 8292), ES256 (ECDSA P-256/SHA-256).

    ``private_key`` is a raw 32-byte big-endian scalar, a PKCS#8 or SEC 1
    (``EC PRIVATE KEY``) DER encoding, or the same in PEM (``bytes`` or
    ``str``). Keys on other curves, encrypted PEM and invalid scalars raise
    ``ValueError``.

    Thread-safe; keep one per site and share it.
    """

    def __new__(cls, private_key: ReadableBuffer | str) -> VapidSigner: ...
    @property
    def public_key(self) -> bytes:
        """The 65-byte uncompressed public key (its base64url is the ``k=`` value)."""

    def authorization(
        self, audience: str, subject: str, expires_in: int = 43200, *, now: float | None = None
    ) -> str:
        """The ``Authorization`` header value ``"vapid t=<jwt>, k=<key>"``.

        - ``audience``: the push service's origin, e.g.
          ``"https://fcm.googleapis.com"`` (scheme and host[:port], no path);
          anything else raises ``ValueError``.
        - ``subject``: a ``mailto:`` or ``https:`` URI; anything else raises
          ``ValueError`` (Apple's push service rejects other subjects).
        - ``expires_in``: seconds from now for the ``exp`` claim, 1 to 86400.
          More than 24 hours is refused with ``ValueError`` rather than
          silently shortened (RFC 8292 caps ``exp`` at 24 hours).

        The JWT is ``{"typ":"JWT","alg":"ES256"}`` / ``{"aud", "exp", "sub"}``
        with a raw 64-byte ``r || s`` signature. A token is cached per
        ``(audience, subject)`` and returned again while it expires no later
        than ``now + expires_in`` and more than ``min(expires_in / 2, 600)``
        seconds from now; otherwise a new one is signed.

        ``now`` is the Unix time to sign at; ``None`` (the default) reads the
        system clock. Pass it when the caller runs on an injected clock.
        """

@final
class PushClient:
    """HTTP to push services, off the Python event loop.

    One pooled client (HTTP/1.1 keep-alive, HTTP/2 where a push service offers it,
    TLS by rustls on AWS-LC with Mozilla's roots) on a tokio runtime of
    ``threads`` threads of its own. ``submit`` returns at once; answers are
    collected with ``drain``, and ``fileno()`` becomes readable when some are
    waiting (watch it with ``loop.add_reader``). Redirects are not followed and
    no proxy is used.

    ``address_check``, when given, is called (with the GIL, from the runtime's
    thread) as ``address_check(host, [address, ...])`` for every name resolved
    before a connection is opened; it returns ``None`` to allow the connection
    or a message saying why it is refused, and the request then fails with
    ``"refused"`` and that message. IP-literal URLs are not resolved: check them
    before submitting.
    """

    def __new__(
        cls,
        timeout_seconds: float,
        *,
        address_check: Callable[[str, list[str]], str | None] | None = None,
        threads: int = 1,
        user_agent: str = "clarion",
    ) -> PushClient: ...
    def fileno(self) -> int:
        """The descriptor that becomes readable when answers are waiting."""

    @property
    def in_flight(self) -> int:
        """Requests submitted whose answers have not been drained yet."""

    def submit(
        self,
        requests: Iterable[tuple[int, str, ReadableBuffer, str]],
        headers: Sequence[tuple[str, str]],
    ) -> None:
        """POSTs each ``(tag, url, body, authorization)``, with ``headers`` on every
        request; returns at once. ``tag`` (an unsigned 64-bit int) comes back with
        the answer. Raises ``TypeError``/``ValueError`` naming the bad request or
        header, and ``RuntimeError`` once closed."""

    def drain(self) -> list[tuple[int, int, str | None, bytes, str, str]]:
        """The answers finished since the last call, each ``(tag, status,
        retry_after, excerpt, failure, detail)``. ``excerpt`` is at most 800 bytes
        of the body. With an HTTP answer ``failure`` is ``""``; without one
        ``status`` is 0 and ``failure`` is ``"timeout"``, ``"connection"``,
        ``"refused"`` (the address check said no; ``detail`` says why) or
        ``"invalid"`` (the URL or a header is unusable)."""

    def close(self) -> None:
        """Stops the runtime; requests in flight are abandoned without answers."""
