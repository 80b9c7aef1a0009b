"""Registrations from browsers, sent to the segment service in batches (group commit).

A browser's subscribe is one small upsert; made one RPC and one transaction each, the
gateway and the segment service spent ~3.5 ms of CPU per registration on per-call
overhead and topped out near 250/s. Here each site's registrations queue while that
site's batch is in flight, and go as one BatchRegisterSubscribers (one transaction). An
idle gateway adds no delay: a lone registration is sent at once, in a batch of one.
Under load, batches grow by themselves to what arrived meanwhile.

A batch is refused whole when one entry is invalid (its error names `requests[i]`).
That entry is then sent alone with RegisterSubscriber, so its browser gets exactly the
error a lone registration gets, and the others go again as a batch.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.errors import error_info
from services.kit.logging import get_logger

log = get_logger("clarion.gateway.registrations")

# Entries per BatchRegisterSubscribers (the service takes up to 1000).
MAX_BATCH = 500
# Batches of one site in flight at once. While one is in the database the next fills;
# a second sender in flight made batches half the size, and cost 13% more CPU and 10%
# more PostgreSQL a registration (64 in flight, docs/services/gateway.md).
SENDERS_PER_SITE = 1
_ENTRY = re.compile(r"requests\[(\d+)\]")

Metadata = tuple[tuple[str, str], ...]


@dataclass
class _Pending:
    request: segment_service_pb2.RegisterSubscriberRequest
    answer: asyncio.Future[segment_service_pb2.RegisterSubscriberResponse] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RegistrationBatcher:
    """register() answers what RegisterSubscriber would, through batches per site."""

    def __init__(
        self,
        stub: Callable[[], segment_service_pb2_grpc.SegmentServiceStub],
        metadata: Callable[[str], Metadata],
        timeout: float,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._queues: dict[str, list[_Pending]] = {}
        # Senders working through each site's queue, at most SENDERS_PER_SITE.
        self._senders: dict[str, set[asyncio.Task[None]]] = {}

    async def register(
        self, site_id: str, request: segment_service_pb2.RegisterSubscriberRequest
    ) -> segment_service_pb2.RegisterSubscriberResponse:
        pending = _Pending(request)
        self._queues.setdefault(site_id, []).append(pending)
        if len(self._senders.setdefault(site_id, set())) < SENDERS_PER_SITE:
            self._start_sender(site_id)
        # The sender outlives a browser that went away: its entry is still stored and
        # its batch-mates still answered.
        return await asyncio.shield(pending.answer)

    async def _send_all(self, site_id: str) -> None:
        """Sends the site's queue batch by batch until it is empty."""
        # One turn of the loop first, so registrations that arrived together go together.
        await asyncio.sleep(0)
        while queue := self._queues.get(site_id):
            batch, self._queues[site_id] = queue[:MAX_BATCH], queue[MAX_BATCH:]
            await self._send(site_id, batch)

    def _start_sender(self, site_id: str) -> None:
        sender = asyncio.create_task(self._send_all(site_id))
        self._senders.setdefault(site_id, set()).add(sender)
        sender.add_done_callback(lambda done: self._finished(site_id, done))

    def _finished(self, site_id: str, sender: asyncio.Task[None]) -> None:
        senders = self._senders.get(site_id, set())
        senders.discard(sender)
        if not sender.cancelled() and self._queues.get(site_id):
            # Entries that came after this sender found the queue empty, but before this
            # callback ran: a finished sender still counted, so none was started for them.
            if len(senders) < SENDERS_PER_SITE:
                self._start_sender(site_id)
            return
        if senders:
            return
        self._senders.pop(site_id, None)
        # Cancelled (the gateway stopping) with entries left: they must not wait forever.
        for pending in self._queues.pop(site_id, []):
            if not pending.answer.done():
                pending.answer.cancel()

    async def _send(self, site_id: str, batch: list[_Pending]) -> None:
        while batch:
            if len(batch) == 1:
                await self._send_one(site_id, batch[0])
                return
            try:
                response = await self._stub().BatchRegisterSubscribers(
                    segment_service_pb2.BatchRegisterSubscribersRequest(
                        requests=[pending.request for pending in batch]
                    ),
                    metadata=self._metadata(site_id),
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as error:
                refused = _refused_entry(error, len(batch))
                if refused is None:
                    for pending in batch:
                        _settle(pending, error=error)
                    return
                # One bad entry: it is answered alone; the rest go again together.
                await self._send_one(site_id, batch.pop(refused))
                continue
            except Exception as error:  # every waiter learns of it
                log.exception("a registration batch failed")
                for pending in batch:
                    _settle(pending, error=error)
                return
            for pending, answer in zip(batch, response.responses, strict=True):
                _settle(pending, answer=answer)
            return

    async def _send_one(self, site_id: str, pending: _Pending) -> None:
        try:
            answer = await self._stub().RegisterSubscriber(
                pending.request, metadata=self._metadata(site_id), timeout=self._timeout
            )
        except Exception as error:  # noqa: BLE001 - the waiter gets it, as a direct call would
            _settle(pending, error=error)
        else:
            _settle(pending, answer=answer)


def _refused_entry(error: grpc.aio.AioRpcError, size: int) -> int | None:
    """The index of the entry an INVALID_ARGUMENT names, or None."""
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    info = error_info(error)
    match = _ENTRY.match(info.metadata.get("field", "")) if info is not None else None
    if match is None:
        log.warning(
            "a registration batch was refused without naming an entry", details=error.details()
        )
        return None
    index = int(match.group(1))
    return index if index < size else None


def _settle(
    pending: _Pending,
    *,
    answer: segment_service_pb2.RegisterSubscriberResponse | None = None,
    error: BaseException | None = None,
) -> None:
    if pending.answer.done():
        return
    if error is not None:
        pending.answer.set_exception(error)
    else:
        pending.answer.set_result(answer)
