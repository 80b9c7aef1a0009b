"""PushSender at send time: refused endpoints are never connected to.

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


async def post_once(
    policy: EgressPolicy, endpoint: str, resolver: AbstractResolver | None = None
) -> PushAnswer:
    sender = PushSender(4, 5.0, policy, resolver=resolver)
    await sender.start()
    try:
        return await sender.post(endpoint, b"\x00" * 64, dict(HEADERS))
    finally:
        await sender.close()


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
        self, tls_listener: CountingListener, form: str
    ) -> None:
        answer = await post_once(PRODUCTION, form.format(port=tls_listener.port))

        assert answer == REFUSED
        assert tls_listener.accepted == 0

    async def test_control_in_test_mode_the_same_url_does_connect(
        self, tls_listener: CountingListener
    ) -> None:
        # Proves the listener counts: the self-signed certificate then fails TLS.
        answer = await post_once(TEST_MODE, f"https://127.0.0.1:{tls_listener.port}/push")

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


class TestAnswers:
    """The simulator setting (test mode, plain http) for what a push service says."""

    async def _plain(self, **kwargs: object) -> CountingListener:
        return await CountingListener(None, **kwargs).start()  # type: ignore[arg-type]

    async def test_a_long_error_body_is_cut_to_a_printable_excerpt(self) -> None:
        body = b"<html>\r\n" + b"x\x1b[31m" * 2000 + b"\n</html>"
        listener = await self._plain(status_line="400 Bad Request", body=body)
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{listener.port}/push")
        finally:
            await listener.stop()

        assert answer.status == 400
        assert 0 < len(answer.body_excerpt) <= BODY_EXCERPT_CHARS
        assert answer.body_excerpt.isprintable()

    async def test_a_redirect_is_an_answer_not_followed(self) -> None:
        target = await self._plain()
        redirect = await self._plain(
            status_line="307 Temporary Redirect",
            headers={"Location": f"http://127.0.0.1:{target.port}/elsewhere"},
        )
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{redirect.port}/push")
        finally:
            await redirect.stop()
            await target.stop()

        assert answer.status == 307
        assert (redirect.accepted, target.accepted) == (1, 0)

    async def test_a_created_answer_has_no_excerpt(self) -> None:
        listener = await self._plain(body=b"ok")
        try:
            answer = await post_once(TEST_MODE, f"http://127.0.0.1:{listener.port}/push")
        finally:
            await listener.stop()

        assert answer == PushAnswer(status=201)
