"""The outbound URL policy: what a push endpoint may be, in every spelling of an address."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.kit.config import DEFAULT_PUSH_SERVICE_HOSTS, Settings
from services.kit.egress import (
    AddressRefused,
    EgressPolicy,
    EgressRefused,
    is_public_address,
    parse_ip_literal,
    refusal_in,
)
from tests.support.listener import CountingListener, self_signed_server_context

PRODUCTION = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, purpose="push service")
TEST_MODE = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, test_endpoints=True)

# The forms the SSRF report listed, and a few more spellings of the same places.
SSRF_URLS = [
    "https://127.0.0.1:5432/",
    "https://127.0.0.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5:6379/",
    "https://192.168.1.1/",
    "https://172.16.0.1/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://[::1]/",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://[fd00:ec2::254]/",  # the AWS IPv6 metadata endpoint
    "https://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
    "https://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://127.1/",
    "https://127.0.1/",
    "https://0x7f.1/",
    "https://0xa9.0xfe.0xa9.0xfe/",  # 169.254.169.254
    "https://2852039166/",  # 169.254.169.254
    "https://127.0.0.1./",
    "https://224.0.0.1/",
]

REAL_ENDPOINTS = [
    "https://fcm.googleapis.com/fcm/send/dY3Xb7kIvtE:APA91bHexample",
    "https://fcm.googleapis.com/wp/dY3Xb7kIvtE:APA91bHexample",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABexample",
    "https://web.push.apple.com/QGuQyavXutnMH5aHvKbRbRd8kMGMpKo0",
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAADexample",
    "https://FCM.GoogleAPIs.com:443/fcm/send/x",
]


def refusal(policy: EgressPolicy, url: str) -> EgressRefused:
    with pytest.raises(EgressRefused) as raised:
        policy.check_url(url)
    return raised.value


class TestCheckUrl:
    @pytest.mark.parametrize("url", REAL_ENDPOINTS)
    def test_accepts_the_endpoints_browsers_hand_out(self, url: str) -> None:
        PRODUCTION.check_url(url)

    @pytest.mark.parametrize("url", SSRF_URLS)
    def test_refuses_every_non_public_address_in_any_spelling(self, url: str) -> None:
        refused = refusal(PRODUCTION, url)

        assert refused.reason == "non_public_address"
        assert "fcm.googleapis.com" in refused.detail  # says what would be accepted

    def test_the_message_says_what_is_wrong_and_what_is_expected(self) -> None:
        refused = refusal(PRODUCTION, "https://2130706433/")

        assert refused.detail.startswith("must be an https URL of a known push service (")
        assert "*.push.apple.com" in refused.detail
        assert "got host 2130706433, which is 127.0.0.1 (a loopback address)" in refused.detail

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example/",
            "https://fcm.googleapis.com.evil.example/",
            "https://evilfcm.googleapis.com/",
            "https://push.apple.com/",  # the wildcard's own domain is not under it
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://8.8.8.8/",  # public, but no push service
            "https://[2606:4700::1]/",
        ],
    )
    def test_refuses_hosts_not_on_the_allow_list(self, url: str) -> None:
        assert refusal(PRODUCTION, url).reason == "host_not_allowed"

    def test_refuses_plain_http(self) -> None:
        refused = refusal(PRODUCTION, "http://fcm.googleapis.com/fcm/send/x")

        assert refused.reason == "not_https"
        assert "https://" in refused.detail

    @pytest.mark.parametrize(
        "url", ["https://user@fcm.googleapis.com/x", "https://u:p@fcm.googleapis.com/x"]
    )
    def test_refuses_user_info(self, url: str) -> None:
        assert refusal(PRODUCTION, url).reason == "userinfo"
        assert refusal(TEST_MODE, url).reason == "userinfo"

    @pytest.mark.parametrize("port", [80, 8443, 5432, 6379, 1])
    def test_refuses_ports_other_than_443(self, port: int) -> None:
        refused = refusal(PRODUCTION, f"https://fcm.googleapis.com:{port}/fcm/send/x")

        assert refused.reason == "port_not_allowed"
        assert str(port) in refused.detail

    @pytest.mark.parametrize(
        "url",
        [
            "https://fcm.googleapis.com%2e/x",
            "https://1.2.3.999/",
            "https://1.2.3.4.5/",
            "https://08.0.0.1/",
            "https:///x",
            "https://[::1/",
        ],
    )
    def test_refuses_hosts_that_are_no_valid_name_or_address(self, url: str) -> None:
        assert refusal(PRODUCTION, url).reason in {"invalid_host", "invalid_url"}

    def test_a_configured_host_is_accepted_and_others_still_refused(self) -> None:
        policy = EgressPolicy(["push.example.test", "*.push.example.org"])

        policy.check_url("https://push.example.test/x")
        policy.check_url("https://eu.push.example.org/x")
        assert refusal(policy, "https://fcm.googleapis.com/x").reason == "host_not_allowed"

    def test_an_allow_listed_private_address_is_still_refused(self) -> None:
        policy = EgressPolicy(["10.0.0.5"])

        assert refusal(policy, "https://10.0.0.5/").reason == "non_public_address"

    def test_test_mode_accepts_the_simulator_on_loopback_http(self) -> None:
        TEST_MODE.check_url("http://127.0.0.1:8099/push/abc")
        TEST_MODE.check_url("https://push.example.test/wp/x")

    def test_test_mode_still_refuses_other_schemes(self) -> None:
        assert refusal(TEST_MODE, "ftp://127.0.0.1/").reason == "not_https"


IPV4_SPELLINGS = st.sampled_from(["dotted", "decimal", "hex", "octal", "short3", "short2", "mixed"])


def spell(address: ipaddress.IPv4Address, form: str) -> str:
    """`address` in one of the spellings inet_aton(3) accepts."""
    n = int(address)
    a, b, c, d = address.packed
    return {
        "dotted": str(address),
        "decimal": str(n),
        "hex": hex(n),
        "octal": "0" + format(n, "o"),
        "short3": f"{a}.{b}.{(c << 8) | d}",
        "short2": f"{a}.{(b << 16) | (c << 8) | d}",
        "mixed": f"{hex(a)}.0{b:o}.{c}.{hex(d)}",
    }[form]


NON_PUBLIC_V4 = st.sampled_from(
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
).flatmap(
    lambda net: st.integers(
        int(ipaddress.IPv4Network(net).network_address),
        int(ipaddress.IPv4Network(net).broadcast_address),
    ).map(ipaddress.IPv4Address)
)


def fresh_verdict(policy: EgressPolicy, url: str) -> str | None:
    """The refusal reason a new policy (nothing cached) gives `url`, checked twice."""
    reasons = []
    for _ in range(2):
        try:
            policy.check_url(url)
            reasons.append(None)
        except EgressRefused as refused:
            reasons.append(refused.reason)
    assert reasons[0] == reasons[1]
    return reasons[0]


class TestVerdictsKeptPerAuthority:
    """check_url keeps verdicts per scheme://authority; a URL must never be let through
    because another URL with the same beginning was."""

    @pytest.mark.parametrize(
        ("allowed", "tricky"),
        [
            ("https://fcm.googleapis.com/a", "https://fcm.googleapis.com\\@127.0.0.1/a"),
            ("https://fcm.googleapis.com/a", "https://fcm.googleapis.com@127.0.0.1/a"),
            ("https://fcm.googleapis.com/a", "https://fcm.googleapis.com:8443/a"),
            ("https://fcm.googleapis.com/a", "http://fcm.googleapis.com/a"),
            ("https://fcm.googleapis.com/a", "https://fcm.googleapis.com.evil.example/a"),
        ],
    )
    def test_an_allowed_url_does_not_open_the_door_for_a_tricky_one(
        self, allowed: str, tricky: str
    ) -> None:
        policy = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, purpose="push service")
        policy.check_url(allowed)

        assert fresh_verdict(policy, tricky) is not None

    @pytest.mark.parametrize(
        "path", ["/x", "/x?y=@127.0.0.1", "?q", "#@10.0.0.1", "/%2F..%2F", "/a/b/c" * 50]
    )
    def test_the_path_does_not_change_the_verdict(self, path: str) -> None:
        policy = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, purpose="push service")

        assert fresh_verdict(policy, "https://fcm.googleapis.com" + path) is None
        assert fresh_verdict(policy, "https://127.0.0.1" + path) == "non_public_address"


class TestAddressSpellings:
    @given(NON_PUBLIC_V4, IPV4_SPELLINGS)
    def test_every_spelling_of_a_non_public_ipv4_address_is_refused(
        self, address: ipaddress.IPv4Address, form: str
    ) -> None:
        host = spell(address, form)

        assert parse_ip_literal(host) == address
        assert refusal(PRODUCTION, f"https://{host}/").reason == "non_public_address"

    @given(NON_PUBLIC_V4 | st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
    def test_every_ipv4_mapped_ipv6_address_is_refused(self, v4: ipaddress.IPv4Address) -> None:
        for host in (f"[::ffff:{v4}]", f"[::ffff:{int(v4) >> 16:x}:{int(v4) & 0xFFFF:x}]"):
            assert refusal(PRODUCTION, f"https://{host}/").reason == "non_public_address"

    @given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
    @hypothesis_settings(max_examples=500)
    def test_reads_numeric_hosts_as_the_system_resolver_does(self, host: str) -> None:
        """Whenever inet_aton (what getaddrinfo uses for numbers) reads `host` as an
        address, the policy reads the same address, or refuses the host outright."""
        try:
            system = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return
        try:
            ours = parse_ip_literal(host)
        except EgressRefused:
            return
        assert ours == system


class TestIsPublicAddress:
    @pytest.mark.parametrize(
        "address",
        [
            "8.8.8.8",
            "142.250.185.10",
            "17.253.144.10",
            "2a00:1450:4001:80b::200a",
            "2606:4700::1",
            "64:ff9b::808:808",  # NAT64 of 8.8.8.8
            "2002:808:808::1",  # 6to4 of 8.8.8.8
        ],
    )
    def test_public(self, address: str) -> None:
        assert is_public_address(ipaddress.ip_address(address))

    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",  # multicast: ipaddress calls it global before 3.13
            "239.255.255.250",
            "192.0.0.8",  # IETF protocol assignments: also "global" to ipaddress
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "::7f00:1",  # IPv4-compatible ::127.0.0.1: "global" to ipaddress
            "::ffff:8.8.8.8",  # mapped, even of a public address
            "::ffff:127.0.0.1",
            "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
            "64:ff9b:1::1",
            "2002:7f00:1::",  # 6to4 of 127.0.0.1
            "2001::1",  # Teredo
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fe80::1%eth0",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
        ],
    )
    def test_not_public(self, address: str) -> None:
        assert not is_public_address(ipaddress.ip_address(address))


def result(host: str, address: str, port: int = 443) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host,
        host=address,
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )


class FakeResolver(AbstractResolver):
    """Answers from a table, as a DNS server under an attacker's control would."""

    def __init__(self, answers: dict[str, list[str]], port: int | None = None) -> None:
        self.answers = answers
        self.port = port
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [result(host, a, self.port or port) for a in self.answers[host]]

    async def close(self) -> None:
        pass


class TestCheckResolved:
    async def test_refuses_a_name_if_any_address_is_not_public(self) -> None:
        fake = FakeResolver({"fcm.googleapis.com": ["142.250.185.10", "127.0.0.1"]})

        with pytest.raises(AddressRefused) as raised:
            await PRODUCTION.check_resolved("fcm.googleapis.com", fake)

        assert raised.value.reason == "non_public_address"
        assert "127.0.0.1 (a loopback address)" in raised.value.detail

    async def test_accepts_a_name_with_only_public_addresses(self) -> None:
        fake = FakeResolver({"fcm.googleapis.com": ["142.250.185.10", "2a00:1450:4001::200a"]})

        await PRODUCTION.check_resolved("fcm.googleapis.com", fake)

    async def test_a_failed_lookup_does_not_refuse(self) -> None:
        await PRODUCTION.check_resolved("no-such-host.invalid", FakeResolver({}))

    async def test_with_the_system_resolver_a_failed_lookup_does_not_refuse(self) -> None:
        await PRODUCTION.check_resolved("no-such-host.invalid")

    async def test_an_ip_literal_is_checked_without_a_lookup(self) -> None:
        fake = FakeResolver({})

        with pytest.raises(AddressRefused):
            await PRODUCTION.check_resolved("2130706433", fake)
        assert fake.asked == []

    async def test_test_mode_does_not_look_up(self) -> None:
        fake = FakeResolver({"push.example.test": ["127.0.0.1"]})

        await TEST_MODE.check_resolved("push.example.test", fake)
        assert fake.asked == []


class TestRefusingResolver:
    async def test_refuses_a_name_that_rebinds_to_loopback(self) -> None:
        resolver = PRODUCTION.resolver(FakeResolver({"web.push.apple.com": ["127.0.0.1"]}))

        with pytest.raises(AddressRefused):
            await resolver.resolve("web.push.apple.com", 443)

    async def test_passes_public_answers_through(self) -> None:
        resolver = PRODUCTION.resolver(FakeResolver({"web.push.apple.com": ["17.253.144.10"]}))

        answers = await resolver.resolve("web.push.apple.com", 443)

        assert [a["host"] for a in answers] == ["17.253.144.10"]


@pytest_asyncio.fixture(loop_scope="session")
async def listener(tmp_path: Path) -> AsyncIterator[CountingListener]:
    started = await CountingListener(self_signed_server_context(tmp_path)).start()
    yield started
    await started.stop()


class TestConnectTimeGuard:
    """The last layer alone, with no URL check in front: aiohttp hands IP literals
    straight to the connector (no resolver), so the socket factory must refuse them."""

    async def _get(self, policy: EgressPolicy, url: str, resolver: AbstractResolver | None = None):
        connector = aiohttp.TCPConnector(
            resolver=policy.resolver(resolver), socket_factory=policy.socket_factory()
        )
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url) as response,
        ):
            return response.status

    @pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
    async def test_refuses_to_connect_to_loopback(
        self, listener: CountingListener, host: str
    ) -> None:
        with pytest.raises(aiohttp.ClientError) as raised:
            await self._get(PRODUCTION, f"https://{host}:{listener.port}/")

        if host == "[::ffff:127.0.0.1]" and refusal_in(raised.value) is None:
            pytest.skip("no IPv6 on this machine")  # connect() failed before the check
        assert isinstance(refusal_in(raised.value), AddressRefused)
        assert listener.accepted == 0

    async def test_refuses_a_rebinding_name(self, listener: CountingListener) -> None:
        fake = FakeResolver({"web.push.apple.com": ["127.0.0.1"]}, port=listener.port)

        with pytest.raises(aiohttp.ClientError) as raised:
            await self._get(PRODUCTION, "https://web.push.apple.com/", fake)

        assert isinstance(refusal_in(raised.value), AddressRefused)
        assert listener.accepted == 0

    async def test_control_test_mode_does_connect(self, listener: CountingListener) -> None:
        # The listener's certificate is self-signed, so TLS fails, after the connect.
        with pytest.raises(aiohttp.ClientError) as raised:
            await self._get(TEST_MODE, f"https://127.0.0.1:{listener.port}/")

        assert refusal_in(raised.value) is None
        assert listener.accepted == 1


class TestSettings:
    def test_defaults_are_the_browsers_push_services(self) -> None:
        assert Settings().push_service_hosts == (
            "fcm.googleapis.com",
            "updates.push.services.mozilla.com",
            "*.push.services.mozilla.com",
            "*.push.apple.com",
            "*.notify.windows.com",
        )
        assert Settings().allow_insecure_endpoints is False

    def test_hosts_come_comma_separated_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CLARION_PUSH_SERVICE_HOSTS", " Push.Example.TEST , *.push.example.org")

        assert Settings().push_service_hosts == ("push.example.test", "*.push.example.org")

    @pytest.mark.parametrize("bad", ["*.com", "*", "push example", "*.10.0.0.1", "1.2.3.999"])
    def test_a_bad_host_entry_fails_at_start_up_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, bad: str
    ) -> None:
        monkeypatch.setenv("CLARION_PUSH_SERVICE_HOSTS", f"fcm.googleapis.com,{bad}")

        with pytest.raises(ValidationError, match="CLARION_PUSH_SERVICE_HOSTS"):
            Settings()

    @pytest.mark.parametrize(
        "variable", ["CLARION_PUSH_TEST_ENDPOINTS", "CLARION_ALLOW_INSECURE_ENDPOINTS"]
    )
    def test_test_mode_is_switched_on_by_either_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str
    ) -> None:
        monkeypatch.setenv(variable, "true")

        assert Settings().push_test_endpoints
        assert EgressPolicy.from_settings(Settings()).test_endpoints

    def test_test_mode_logs_a_warning_when_the_policy_is_built(self) -> None:
        with structlog.testing.capture_logs() as logs:
            EgressPolicy.from_settings(Settings(allow_insecure_endpoints=True))
            EgressPolicy.from_settings(Settings())

        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert len(warnings) == 1
        assert "CLARION_PUSH_TEST_ENDPOINTS" in warnings[0]["event"]
