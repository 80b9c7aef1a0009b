"""Outbound URL policy: which URLs a Clarion process may open a connection to.

Anybody can hand Clarion a URL it will later POST to (a browser registering a
subscription goes through an unauthenticated gateway), so without a policy the
sender is a server-side request forgery tool: it would connect to loopback
databases, the cloud metadata service, or hosts on the private network.

The policy is layered:

1. `check_url(url)` — syntax only, no I/O: https, no user info, the default port,
   a host on the allow-list (exact hosts and "*.suffix" wildcards), and no IP
   literal that is not public, in any spelling the resolver would accept
   (dotted, decimal `2130706433`, hex `0x7f000001`, octal `0177.0.0.1`, short
   `127.1`, IPv6, IPv4-mapped IPv6).
2. `check_resolved(host)` — resolves the name and refuses if ANY address is not
   public. A lookup that fails does not refuse: nothing can connect to a name that
   does not resolve, and step 3 still guards the connection.
3. `RefusingResolver` and `refusing_socket_factory` — the same address rule at
   connect time, on the addresses actually connected to. This is the guard against
   DNS rebinding (a name that resolved to a public address at check time and to
   127.0.0.1 a second later), and against IP literals aiohttp never resolves.

Test mode (`test_endpoints=True`) turns 1-3 off except the URL syntax itself and
user info: for the push-service simulator on http://127.0.0.1 and for tests only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from services.kit.logging import get_logger

if TYPE_CHECKING:
    from services.kit.config import Settings

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Stable reason words, one per way a URL or an address is refused.
REASON_INVALID_URL = "invalid_url"
REASON_NOT_HTTPS = "not_https"
REASON_USERINFO = "userinfo"
REASON_INVALID_HOST = "invalid_host"
REASON_NON_PUBLIC_ADDRESS = "non_public_address"
REASON_HOST_NOT_ALLOWED = "host_not_allowed"
REASON_PORT_NOT_ALLOWED = "port_not_allowed"

HTTPS_PORT = 443

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# One part of an IPv4 address as inet_aton(3) (and so getaddrinfo) reads it:
# 0x-hex, 0-octal or decimal. "0x" alone is 0 to glibc.
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")

# Networks that are not reachable "on the internet" but that ipaddress.is_global
# (on the Pythons this project supports) still calls global, or that embed an IPv4
# address a relay would connect to on our behalf.
_IPV4_NOT_PUBLIC = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "224.0.0.0/4",  # multicast: is_global is True for it before Python 3.13
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
_IPV6_NOT_PUBLIC = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
        "::ffff:0:0/96",  # IPv4-mapped: the kernel connects to the IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 included
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast: is_global is True for ff0e:: before Python 3.13
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")


class EgressRefused(Exception):
    """A URL or address the policy does not allow to connect to.

    `reason` is a stable lowercase word (REASON_*); `detail` completes a sentence
    whose subject is the URL, e.g. "must use https; got scheme 'http'", so callers
    can prefix their own field name.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"outbound URL refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class AddressRefused(EgressRefused, OSError):
    """Raised at connect time (resolver, socket factory); an OSError so that aiohttp
    reports it as a connection error carrying this exception."""


def is_public_address(address: IPAddress) -> bool:
    """True only for addresses on the public internet.

    `is_global` is the basis; on top of it this refuses what it lets through on
    older Pythons (multicast, IPv4-compatible and -mapped IPv6, 192.0.0.0/24) and
    looks inside NAT64 and 6to4 addresses at the IPv4 address they lead to.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _SIXTOFOUR:
            embedded = address.sixtofour
            return embedded is not None and is_public_address(embedded)
        if any(address in network for network in _IPV6_NOT_PUBLIC):
            return False
    elif any(address in network for network in _IPV4_NOT_PUBLIC):
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def show_address(address: IPAddress) -> str:
    """An address as people write it (::ffff:127.0.0.1 rather than ::ffff:7f00:1)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def address_kind(address: IPAddress) -> str:
    """A few words on why an address is not public, for messages."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    for test, kind in (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, test):
            return kind
    return "not a public internet address"


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address `host` means if it is an IP literal in any form that getaddrinfo
    (inet_aton) or a browser (WHATWG URL) reads as one; None for a host name.

    Raises EgressRefused for a host that looks numeric but is no valid address
    (e.g. "1.2.3.999"), which no name can be either.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise EgressRefused(
                REASON_INVALID_HOST, f"must name a valid host; got {host[:80]!r}"
            ) from None
    name = host.removesuffix(".")
    parts = name.split(".")
    # WHATWG: a host whose last label is a number is an IPv4 address (or invalid).
    if not parts or not _NUMERIC_PART.fullmatch(parts[-1]):
        return None
    invalid = EgressRefused(
        REASON_INVALID_HOST, f"must name a valid host; {host[:80]!r} is no valid IPv4 address"
    )
    if len(parts) > 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        raise invalid
    values = [_numeric_part(p) for p in parts]
    # inet_aton: a.b.c.d, a.b.c (c is 16 bits), a.b (b is 24 bits), a (32 bits).
    last_bits = 8 * (5 - len(values))
    if values[-1] >= 1 << last_bits or any(v > 255 for v in values[:-1]):
        raise invalid
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def _numeric_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if not all(c in "01234567" for c in part):
            # glibc refuses 08/09; a browser too. No host name looks like this.
            raise EgressRefused(
                REASON_INVALID_HOST, f"must name a valid host; {part!r} is no octal number"
            )
        return int(part, 8)
    return int(part)


@dataclass(frozen=True)
class HostPattern:
    """An allow-list entry: an exact host, or "*.suffix" for any host under suffix."""

    text: str
    wildcard: bool = field(init=False)
    suffix: str = field(init=False)

    def __post_init__(self) -> None:
        wildcard = self.text.startswith("*.")
        object.__setattr__(self, "wildcard", wildcard)
        object.__setattr__(self, "suffix", self.text[2:] if wildcard else self.text)

    def matches(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.suffix)
        return host == self.suffix


def parse_host_patterns(entries: Iterable[str]) -> tuple[HostPattern, ...]:
    """Validated allow-list entries; raises ValueError naming the bad entry."""
    patterns: list[HostPattern] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        name = entry.removeprefix("*.")
        literal = None
        try:
            literal = parse_ip_literal(name)
        except EgressRefused as error:
            raise ValueError(f"{raw!r} is not a host name or '*.suffix': {error.detail}") from None
        if literal is not None:
            if entry.startswith("*."):
                raise ValueError(f"{raw!r}: a wildcard needs a domain, not an IP address")
            patterns.append(HostPattern(str(literal)))
            continue
        if not _HOSTNAME.fullmatch(name) or len(name) > 253:
            raise ValueError(f"{raw!r} is not a host name or '*.suffix' (e.g. *.push.apple.com)")
        if entry.startswith("*.") and "." not in name:
            raise ValueError(f"{raw!r} is too broad: a wildcard needs at least two labels")
        patterns.append(HostPattern(entry))
    return tuple(patterns)


def url_authority(url: str) -> str | None:
    """`scheme://authority` of an absolute URL, as written (None without "://").

    Everything a URL check or an origin depends on (scheme, user info, host, port) is
    in it, and an RFC 3986 parser (yarl) never reads past the first "/", "?" or "#"
    after it. So verdicts can be kept per authority rather than per URL, where each
    push endpoint is unique. (A WHATWG parser also stops at a backslash; the key then
    holds more than its authority, and the check reads that whole, stricter part.)
    """
    start = url.find("://")
    if start < 0:
        return None
    start += 3
    end = len(url)
    for separator in ("/", "?", "#"):
        found = url.find(separator, start, end)
        if found >= 0:
            end = found
    return url[:end]


# Distinct push-service authorities whose verdicts are kept (per policy).
_VERDICTS_KEPT = 4096


class EgressPolicy:
    """Where outbound requests may go. Build one with `from_settings` at start-up."""

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        test_endpoints: bool = False,
        purpose: str = "service",
    ) -> None:
        """`purpose` names the allowed hosts in messages ("push service")."""
        self.allowed_hosts = parse_host_patterns(allowed_hosts)
        self.test_endpoints = test_endpoints
        self.purpose = purpose
        # functools' cache is thread-safe and bounded; it keeps (reason, detail) pairs,
        # never exception objects (a re-raised one would keep growing its traceback).
        self._verdict = functools.lru_cache(maxsize=_VERDICTS_KEPT)(self._refusal)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """The push-service policy: CLARION_PUSH_SERVICE_HOSTS, and test mode from
        CLARION_PUSH_TEST_ENDPOINTS (logged as a warning: it switches protection off)."""
        policy = cls(
            settings.push_service_hosts,
            test_endpoints=settings.push_test_endpoints,
            purpose="push service",
        )
        if policy.test_endpoints:
            log.warning(
                "push test endpoints are enabled: any http(s) URL on any host, loopback and "
                "private addresses included, is accepted and sent to. Use this for the "
                "simulator and tests only, never in production (unset "
                "CLARION_PUSH_TEST_ENDPOINTS / CLARION_ALLOW_INSECURE_ENDPOINTS)"
            )
        return policy

    def describe_allowed(self) -> str:
        return ", ".join(p.text for p in self.allowed_hosts) or "none configured"

    def _example_host(self) -> str:
        for pattern in self.allowed_hosts:
            return pattern.suffix if not pattern.wildcard else f"host.{pattern.suffix}"
        return "host.example"

    def check_url(self, url: str) -> None:
        """Refuses (EgressRefused) a URL this policy does not allow; no I/O."""
        authority = url_authority(url)
        if authority is None:
            self._check_url(url)
            return
        refusal = self._verdict(authority)
        if refusal is not None:
            raise EgressRefused(*refusal)

    def _refusal(self, authority: str) -> tuple[str, str] | None:
        try:
            self._check_url(authority)
        except EgressRefused as refused:
            return refused.reason, refused.detail
        return None

    def _check_url(self, url: str) -> None:
        try:
            parsed = URL(url)
            port = parsed.port
        except (ValueError, TypeError) as error:
            raise EgressRefused(REASON_INVALID_URL, f"is not a valid URL: {error}") from None
        schemes = ("https", "http") if self.test_endpoints else ("https",)
        if parsed.scheme not in schemes:
            allowed = " or ".join(f"{s}://" for s in schemes)
            raise EgressRefused(
                REASON_NOT_HTTPS,
                f"must be an absolute {allowed} URL; got scheme {parsed.scheme or 'none'!r}",
            )
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise EgressRefused(REASON_USERINFO, "must not carry user credentials (user@host)")
        host = (parsed.raw_host or "").lower()
        if not host:
            raise EgressRefused(
                REASON_INVALID_HOST, f"must name a host, e.g. https://{self._example_host()}/…"
            )
        address = parse_ip_literal(host)
        if address is None:
            host = host.rstrip(".")
            if not _HOSTNAME.fullmatch(host) or len(host) > 253:
                raise EgressRefused(
                    REASON_INVALID_HOST,
                    f"must name a host of letters, digits, '-' and '.'; got {host[:80]!r}",
                )
        if self.test_endpoints:
            return
        expected = f"must be an https URL of a known {self.purpose} ({self.describe_allowed()})"
        if address is not None and not is_public_address(address):
            spelled = show_address(address)
            meaning = "" if host.strip("[]") == spelled else f", which is {spelled}"
            raise EgressRefused(
                REASON_NON_PUBLIC_ADDRESS,
                f"{expected}; got host {host}{meaning} ({address_kind(address)})",
            )
        canonical = str(address) if address is not None else host
        if not any(pattern.matches(canonical) for pattern in self.allowed_hosts):
            raise EgressRefused(REASON_HOST_NOT_ALLOWED, f"{expected}; got host {host}")
        # Push services listen on 443; any other port would only let an allow-listed
        # name that points somewhere unexpected be used to probe other services.
        if port != HTTPS_PORT:
            raise EgressRefused(
                REASON_PORT_NOT_ALLOWED,
                f"must use the default https port {HTTPS_PORT}; got port {port}",
            )

    def check_address(self, host: str, address: str) -> None:
        """Refuses (AddressRefused) connecting to `address`, which `host` resolved to."""
        if self.test_endpoints:
            return
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise AddressRefused(
                REASON_NON_PUBLIC_ADDRESS, f"host {host} resolved to {address!r}, not an IP address"
            ) from None
        if not is_public_address(ip):
            raise AddressRefused(
                REASON_NON_PUBLIC_ADDRESS,
                f"host {host} resolves to {show_address(ip)} ({address_kind(ip)}); only "
                "public addresses may be connected to",
            )

    async def check_resolved(self, host: str, resolver: AbstractResolver | None = None) -> None:
        """Resolves `host` and refuses (AddressRefused) if ANY address is not public.

        A failed lookup does not refuse: the connect-time check still guards.
        """
        if self.test_endpoints:
            return
        literal = parse_ip_literal(host)
        if literal is not None:
            self.check_address(host, str(literal))
            return
        owned = resolver is None
        inner = resolver or _default_resolver()
        try:
            results = await inner.resolve(host, 0, socket.AF_UNSPEC)
        except OSError:
            return
        finally:
            if owned:
                await inner.close()
        for result in results:
            self.check_address(host, result["host"])

    def resolver(self, inner: AbstractResolver | None = None) -> RefusingResolver:
        return RefusingResolver(self, inner)

    def socket_factory(self) -> Callable[[Any], socket.socket]:
        return refusing_socket_factory(self)


def _default_resolver() -> AbstractResolver:
    from aiohttp.resolver import ThreadedResolver

    return ThreadedResolver()


class RefusingResolver(AbstractResolver):
    """An aiohttp resolver that fails a lookup if ANY address it yields is not
    public, so a connection to a rebinding name is refused before it is opened."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or _default_resolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def refusing_socket_factory(policy: EgressPolicy) -> Callable[[Any], socket.socket]:
    """An aiohttp `socket_factory` that refuses to open a socket to a non-public
    address. aiohttp does not pass IP-literal hosts to the resolver, so this is the
    last check on every address actually connected to."""

    def make(addr_info: Sequence[Any]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        policy.check_address(str(sockaddr[0]), str(sockaddr[0]))
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

    return make


def refusal_in(error: BaseException) -> EgressRefused | None:
    """The EgressRefused behind `error` (aiohttp wraps connect-time refusals)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressRefused):
            return current
        seen.add(id(current))
        wrapped = getattr(current, "os_error", None)
        if isinstance(wrapped, EgressRefused):
            return wrapped
        current = current.__cause__ or current.__context__
    return None


__all__ = [
    "AddressRefused",
    "EgressPolicy",
    "EgressRefused",
    "HostPattern",
    "RefusingResolver",
    "is_public_address",
    "parse_host_patterns",
    "parse_ip_literal",
    "refusal_in",
    "refusing_socket_factory",
]
