"""HTTP to push services from the native crate (encrypt_rs.PushClient): the requests
run on a tokio runtime of their own, off this process's event loop and GIL, and their
answers come back in batches when the client's descriptor becomes readable.

The outbound policy is applied as by the aiohttp sender: each URL before it is
submitted, and (outside test mode) every address a name resolves to, at connect time,
by the policy itself, which the client calls before it opens a connection.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from services.delivery.adapters.http_sender import AnswerStream, RefusalLog, excerpt
from services.delivery.domain.ports import PushRequest
from services.delivery.domain.rules import SENT_STATUSES, PushAnswer, Reason
from services.kit.egress import EgressPolicy, EgressRefused
from services.kit.logging import get_logger

log = get_logger(__name__)

# A request's tag is its stream's number and its own, so answers find their stream.
_TAG_BITS = 32
_TAG_MASK = (1 << _TAG_BITS) - 1
_NO_ANSWER = {
    "timeout": Reason.TIMEOUT,
    "connection": Reason.CONNECTION_ERROR,
    "refused": Reason.ENDPOINT_REFUSED,
    "invalid": Reason.ENDPOINT_REFUSED,
}


class NativePushSender:
    def __init__(self, timeout_seconds: float, policy: EgressPolicy, *, threads: int = 1) -> None:
        import encrypt_rs  # the extension built from native/encrypt_rs; fails fast

        self._native = encrypt_rs
        self._timeout = timeout_seconds
        self._policy = policy
        self._threads = threads
        self._refusals = RefusalLog()
        self._streams: dict[int, _NativeStream] = {}
        self._numbers = itertools.count(1)
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        self._client = self._native.PushClient(
            self._timeout,
            # Test mode lets the simulator on loopback be reached: no address check.
            address_check=None if self._policy.test_endpoints else self._check_addresses,
            threads=self._threads,
        )
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._client.fileno(), self._on_answers)

    async def close(self) -> None:
        if self._client is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._client.fileno())
        for stream in list(self._streams.values()):
            stream.close()
        client, self._client = self._client, None
        await asyncio.to_thread(client.close)

    def stream(self, headers: Mapping[str, str]) -> AnswerStream:
        if self._client is None:
            raise RuntimeError("NativePushSender.start() was not called")
        number = next(self._numbers) & _TAG_MASK
        stream = _NativeStream(self, number, [(k, v) for k, v in headers.items()])
        self._streams[number] = stream
        return stream

    def _submit(self, stream: _NativeStream, requests: Sequence[PushRequest]) -> None:
        """Each URL through the policy (a refusal answers at once), the rest to the client."""
        prefix = stream.number << _TAG_BITS
        batch = []
        for request in requests:
            try:
                self._policy.check_url(request.endpoint)
            except EgressRefused as refused:
                stream.deliver(request.tag, self._refusals.refused(request.endpoint, refused))
                continue
            batch.append(
                (prefix | request.tag, request.endpoint, request.body, request.authorization)
            )
        if batch:
            self._client.submit(batch, stream.headers)

    def _check_addresses(self, host: str, addresses: list[str]) -> str | None:
        """Called by the client (with the GIL, from its own thread) before connecting."""
        try:
            for address in addresses:
                self._policy.check_address(host, address)
        except EgressRefused as refused:
            self._refusals.refused(f"https://{host}", refused)
            return refused.detail
        return None

    def _on_answers(self) -> None:
        if self._client is None:
            return
        for tag, status, retry_after, body, failure, _detail in self._client.drain():
            stream = self._streams.get(tag >> _TAG_BITS)
            if stream is None:
                continue  # its chunk was given up (a lost lease)
            if failure:
                answer = PushAnswer(error=_NO_ANSWER.get(failure, Reason.CONNECTION_ERROR))
            elif status in SENT_STATUSES:
                answer = PushAnswer(status=status, retry_after=retry_after)
            else:
                answer = PushAnswer(
                    status=status, retry_after=retry_after, body_excerpt=excerpt(body)
                )
            stream.deliver(tag & _TAG_MASK, answer)


class _NativeStream(AnswerStream):
    """One chunk's requests on the sender's client; its number prefixes their tags."""

    def __init__(
        self, sender: NativePushSender, number: int, headers: list[tuple[str, str]]
    ) -> None:
        super().__init__()
        self._sender = sender
        self.number = number
        self.headers = headers

    def _start(self, requests: Sequence[PushRequest]) -> None:
        self._sender._submit(self, requests)

    def _stop(self) -> None:
        self._sender._streams.pop(self.number, None)
