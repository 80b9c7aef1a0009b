"""Both push transports (aiohttp's PushSender, the native crate's NativePushSender) at
send time: refused endpoints are never connected to; answers come back as they are.

A TLS listener on 127.0.0.1 stands in for an internal service and counts accepted
connections (before any handshake); every SSRF form must leave it at 0 and come back
as PushAnswer(error="endpoint_refused").
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult

from services.delivery.adapters.http_sender import BODY_EXCERPT_CHARS, PushSender
from services.delivery.adapters.native_sender import NativePushSender
from services.delivery.domain.ports import PushRequest, PushTransport
from services.delivery.domain.rules import PushAnswer, Reason
from services.kit.config import DEFAULT_PUSH_SERVICE_HOSTS
from services.kit.egress import EgressPolicy
from tests.support.listener import CountingListener, self_signed_server_context

PRODUCTION = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, purpose="push service")
TEST_MODE = EgressPolicy(DEFAULT_PUSH_SERVICE_HOSTS, test_endpoints=True)
REFUSED = PushAnswer(error=Reason.ENDPOINT_REFUSED)
HEADERS = {"TTL": "60", "Content-Encoding": "aes128gcm"}


class RebindingResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1 on the listener's port: an allow-listed name
    whose DNS an attacker (or a stale record) points at the internal network."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    async def close(self) -> None:
        pass


@pytest_asyncio.fixture(loop_scope="session")
async def tls_listener(tmp_path: Path) -> AsyncIterator[CountingListener]:
    listener = await CountingListener(self_signed_server_context(tmp_path)).start()
    yield listener
    await listener.stop()


TRANSPORTS = ["aiohttp", "native"]


def make_transport(
    kind: str, policy: EgressPolicy, resolver: AbstractResolver | None
) -> PushTransport:
    if kind == "native":
        return NativePushSender(5.0, policy)
    return PushSender(4, 5.0, policy, resolver=resolver)


async def post_all(
    kind: str, policy: EgressPolicy, endpoints: list[str], resolver: AbstractResolver | None = None
) -> list[PushAnswer]:
    """POSTs to every endpoint through one stream; the answers in endpoint order."""
    sender = make_transport(kind, policy, resolver)
    await sender.start()
    stream = sender.stream(HEADERS)
    try:
        stream.submit(
            [
                PushRequest(n, endpoint, b"\x00" * 64, "vapid t=x, k=y")
                for n, endpoint in enumerate(endpoints)
            ]
        )
        answers: dict[int, PushAnswer] = {}
        while stream.in_flight:
            answers.update(await stream.answers())
        return [answers[n] for n in range(len(endpoints))]
    finally:
        stream.close()
        await sender.close()


async def post_once(
    policy: EgressPolicy,
    endpoint: str,
    resolver: AbstractResolver | None = None,
    *,
    kind: str = "aiohttp",
) -> PushAnswer:
    return (await post_all(kind, policy, [endpoint], resolver))[0]


@pytest.fixture(params=TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SSRF_FORMS = [
    "https://127.0.0.1:{port}/push",
    "https://2130706433:{port}/push",
    "https://0x7f000001:{port}/push",
    "https://0177.0.0.1:{port}/push",
    "https://017700000001:{port}/push",
    "https://127.1:{port}/push",
    "https://127.0.1:{port}/push",
    "https://127.0.0.1.:{port}/push",
    "https://[::ffff:127.0.0.1]:{port}/push",
    "https://[::1]:{port}/push",
    "https://localhost:{port}/push",
    "http://127.0.0.1:{port}/push",
    "https://user:pw@127.0.0.1:{port}/push",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5:6379/",
    "https://fcm.googleapis.com:{port}/push",  # allow-listed name, odd port
]


class TestRefusedBeforeConnecting:
    @pytest.mark.parametrize("form", SSRF_FORMS)
    async def test_ssrf_forms_are_refused_without_a_connection(
        self, tls_listener: CountingListener, form: str, kind: str
    ) -> None:
        answer = await post_once(PRODUCTION, form.format(port=tls_listener.port), kind=kind)

        assert answer == REFUSED
        assert tls_listener.accepted == 0

    async def test_control_in_test_mode_the_same_url_does_connect(
        self, tls_listener: CountingListener, kind: str
    ) -> None:
        # Proves the listener counts: the self-signed certificate then fails TLS.
        answer = await post_once(
            TEST_MODE, f"https://127.0.0.1:{tls_listener.port}/push", kind=kind
        )

        assert answer.error == Reason.CONNECTION_ERROR
        assert tls_listener.accepted == 1


class TestRefusedAtConnectTime:
    async def test_an_allow_listed_name_that_resolves_to_loopback_is_refused(
        self, tls_listener: CountingListener
    ) -> None:
        resolver = RebindingResolver(tls_listener.port)

        answer = await post_once(PRODUCTION, "https://web.push.apple.com/QGuQyav", resolver)

        assert resolver.asked == ["web.push.apple.com"]  # it passed the URL check
        assert answer == REFUSED
        assert tls_listener.accepted == 0

    async def test_control_in_test_mode_the_rebound_name_does_connect(
        self, tls_listener: CountingListener
    ) -> None:
        resolver = RebindingResolver(tls_listener.port)

        answer = await post_once(TEST_MODE, "https://web.push.apple.com/QGuQyav", resolver)

        assert answer.error == Reason.CONNECTION_ERROR
        assert tls_listener.accepted == 1


class TestNativeRefusedAtConnectTime:
    """The native client resolves names itself and asks the policy about every address
    before it connects: an allow-listed name that resolves to loopback is refused."""

    async def test_a_name_resolving_to_loopback_is_refused(self) -> None:
        policy = EgressPolicy(("localhost",), purpose="push service")

        answer = await post_once(policy, "https://localhost/push", kind="native")

        assert answer == REFUSED

    async def test_control_in_test_mode_the_name_does_connect(
        self, tls_listener: CountingListener
    ) -> None:
        answer = await post_once(
            TEST_MODE, f"https://localhost:{tls_listener.port}/push", kind="native"
        )

        assert answer.error == Reason.CONNECTION_ERROR
        assert tls_listener.accepted >= 1


class TestAnswers:
    """The simulator setting (test mode, plain http) for what a push service says."""

    async def _plain(self, **kwargs: object) -> CountingListener:
        return await CountingListener(None, **kwargs).start()  # type: ignore[arg-type]

    async def test_a_long_error_body_is_cut_to_a_printable_excerpt(self, kind: str) -> None:
        body = b"<html>\r\n" + b"x\x1b[31m" * 2000 + b"\n</html>"
        listener = await self._plain(status_line="400 Bad Request", body=body)
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{listener.port}/push", kind=kind)
        finally:
            await listener.stop()

        assert answer.status == 400
        assert 0 < len(answer.body_excerpt) <= BODY_EXCERPT_CHARS
        assert answer.body_excerpt.isprintable()

    async def test_a_redirect_is_an_answer_not_followed(self, kind: str) -> None:
        target = await self._plain()
        redirect = await self._plain(
            status_line="307 Temporary Redirect",
            headers={"Location": f"http://127.0.0.1:{target.port}/elsewhere"},
        )
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{redirect.port}/push", kind=kind)
        finally:
            await redirect.stop()
            await target.stop()

        assert answer.status == 307
        assert (redirect.accepted, target.accepted) == (1, 0)

    async def test_a_created_answer_has_no_excerpt(self, kind: str) -> None:
        listener = await self._plain(body=b"ok")
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{listener.port}/push", kind=kind)
        finally:
            await listener.stop()

        assert answer == PushAnswer(status=201)

    async def test_retry_after_comes_back_with_a_429(self, kind: str) -> None:
        listener = await self._plain(
            status_line="429 Too Many Requests", headers={"Retry-After": "7"}
        )
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{listener.port}/push", kind=kind)
        finally:
            await listener.stop()

        assert (answer.status, answer.retry_after) == (429, "7")

    async def test_many_requests_each_get_their_own_answer(self, kind: str) -> None:
        ok = await self._plain()
        gone = await self._plain(status_line="410 Gone")
        endpoints = [f"http://127.0.0.1:{(ok if n % 3 else gone).port}/push/{n}" for n in range(60)]
        try:
            answers = await post_all(kind, TEST_MODE, endpoints)
        finally:
            await ok.stop()
            await gone.stop()

        assert [a.status for a in answers] == [201 if n % 3 else 410 for n in range(60)]
