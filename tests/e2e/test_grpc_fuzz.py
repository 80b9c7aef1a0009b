"""No input makes a service answer INTERNAL or UNKNOWN: generated requests for every RPC.

Hypothesis builds requests for every method of every service from the message
descriptors: ids a caller really has next to hostile text (NUL, over-long, broken URLs),
integers at their type's edges, undefined enum values, timestamps out of range, lists,
and raw bytes that do not parse. Each goes to the real services of the embedded stack,
on each database backend, with a site API key and (for internal-only methods) the
internal token. Whatever the input, the answer is a success or a clear client error,
with a bounded message; never INTERNAL, UNKNOWN or DATA_LOSS.

The budget is fixed (`EXAMPLES` per method, derandomized), so the suite's time is too;
`CASES` counts what ran, and the summary test checks every method was exercised.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import string
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.campaign.v1 import (  # noqa: F401
    campaign_service_pb2,
    site_internal_service_pb2,
    site_service_pb2,
)
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_service_pb2  # noqa: F401
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import (  # noqa: F401
    reporting_internal_service_pb2,
    reporting_service_pb2,
    webhook_service_pb2,
)
from clarion.segment.v1 import segment_internal_service_pb2, segment_service_pb2  # noqa: F401
from services.campaign.admin import create_site
from services.kit.auth import internal_metadata
from services.kit.grpcserver import client_channel

EXAMPLES = 80
RAW_EXAMPLES = 20
# Codes that mean "the service broke", never "your input was wrong".
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
MAX_DETAIL = 2048

SERVICES = {
    "campaign": (
        "clarion.campaign.v1.CampaignService",
        "clarion.campaign.v1.SiteService",
        "clarion.campaign.v1.SiteInternalService",
    ),
    "segment": ("clarion.segment.v1.SegmentService", "clarion.segment.v1.SegmentInternalService"),
    "delivery": ("clarion.delivery.v1.DeliveryService",),  # internal as a whole
    "reporting": (
        "clarion.reporting.v1.ReportingService",
        "clarion.reporting.v1.ReportingInternalService",
        "clarion.reporting.v1.WebhookService",
    ),
}
METHODS: list[tuple[str, MethodDescriptor]] = [
    (server, method)
    for server, names in SERVICES.items()
    for name in names
    for method in descriptor_pool.Default().FindServiceByName(name).methods
]
CASES: collections.Counter[str] = collections.Counter()

HOSTILE_TEXT = [
    "",
    "\x00",
    "sub\x00x",
    "x" * 8200,
    "https://[",
    "https://127.0.0.1:5432/",
    "http://[::ffff:127.0.0.1]/",
    "https://example.com:99999/",
    "mailto:a@localhost",
    "'; DROP TABLE x; --",
    "\u202e\u200b",
    "ö" * 300,
    "\t\n\r",
    "%00",
    "../../etc/passwd",
    "clarion.common.v1",
]
INT_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 2**32 - 1, 2**64 - 1]
TIMESTAMP_SECONDS = [0, -1, 253402300799, 253402300800, -62135596800, -62135596801, 2**62]


class Known:
    """Ids the caller really has, so generated requests also reach the code behind
    'not found'."""

    values: list[str] = []


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=30),
        st.text(alphabet=string.ascii_letters + string.digits + "_-.:", max_size=40),
        st.deferred(lambda: st.sampled_from(Known.values or [""])),
    )


def _integer(field: FieldDescriptor) -> st.SearchStrategy[int]:
    unsigned = field.type in (
        FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64,
    )  # fmt: skip
    wide = field.type in (
        FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
    )  # fmt: skip
    bits = 64 if wide else 32
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    edges = [value for value in INT_EDGES if low <= value <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(-5, 5000).filter(
        lambda value: low <= value <= high
    ))


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _text()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=80), st.sampled_from([b"\x04" + b"\x01" * 64, b"\x00" * 16]))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        defined = list(field.enum_type.values_by_number)
        return st.one_of(st.sampled_from(defined), st.integers(-3, 200))
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _integer(field)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            cls,
            seconds=st.one_of(st.sampled_from(TIMESTAMP_SECONDS), st.integers(-(2**63), 2**63 - 1)),
            nanos=st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)),
        )
    if descriptor.full_name == "google.protobuf.FieldMask":
        return st.builds(cls, paths=st.lists(_text(), max_size=3))
    if depth > 3:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            # map<K, V>: the entry's key and value fields, as a dict.
            key, item = (_value(f, depth) for f in entry.fields)
            fields[field.name] = st.dictionaries(key, item, max_size=3)
            continue
        value = _value(field, depth)
        fields[field.name] = (
            st.lists(value, max_size=3) if field.is_repeated else st.one_of(st.none(), value)
        )
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, values))


def _build(cls: Callable[[], Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        if value is None or value == [] or value == {}:
            continue
        target = getattr(message, name)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Message):
                    target.add().CopyFrom(item)
                else:
                    target.append(item)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _metadatas(stack: EmbeddedStack, site_id: str, api_key: str) -> list[tuple[tuple[str, str], ...]]:
    token = stack.settings.internal_token_value
    return [
        (("authorization", f"Bearer {api_key}"),),
        internal_metadata(token, site_id),
        (("authorization", f"Bearer {token}"),),  # internal, naming no site
    ]


def _assert_not_broken(error: grpc.aio.AioRpcError, what: str) -> None:
    assert error.code() not in BROKEN, f"{what}: {error.code()} {error.details()!r}"
    assert len(error.details() or "") <= MAX_DETAIL, f"{what}: unbounded error message"


async def _expect_no_break(sender: Any, request: Any, metadata: Any, what: str) -> None:
    try:
        await sender(request, metadata=metadata, timeout=20)
    except grpc.aio.AioRpcError as error:
        _assert_not_broken(error, what)


def _sender(channel: grpc.aio.Channel, path: str, method: MethodDescriptor, serialize: Any) -> Any:
    """A call of the method's kind that reads every answer; a client-streaming method
    takes a list of messages (the stream)."""
    if not method.client_streaming and not method.server_streaming:
        return channel.unary_unary(path, request_serializer=serialize)
    if not method.client_streaming:
        call = channel.unary_stream(path, request_serializer=serialize)

        async def server_stream(request: Any, **kwargs: Any) -> None:
            async for _ in call(request, **kwargs):
                pass

        return server_stream
    opened = (
        channel.stream_stream(path, request_serializer=serialize)
        if method.server_streaming
        else channel.stream_unary(path, request_serializer=serialize)
    )

    async def client_stream(requests: list[Any], **kwargs: Any) -> None:
        # Written one by one. A server that ends the call after a bad message makes a
        # later write fail, and grpc.aio then reports its own INTERNAL ("Internal error
        # from Core") instead of the server's status: the messages the server did read
        # are sent again alone, so the status checked is the one the server answered.
        call = opened(**kwargs)
        for written, request in enumerate(requests):
            try:
                await call.write(request)
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                call.cancel()
                return await client_stream(requests[:written], **kwargs)
        with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
            await call.done_writing()
        with contextlib.suppress(grpc.aio.AioRpcError):
            if method.server_streaming:
                while await call.read() is not grpc.aio.EOF:
                    pass
            else:
                await call
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise grpc.aio.AioRpcError(
                code, await call.initial_metadata(), await call.trailing_metadata(),
                await call.details(),
            )  # fmt: skip

    return client_stream


@pytest.fixture(scope="module")
async def fuzz_site(stack: EmbeddedStack) -> tuple[str, str]:
    """A site with a campaign, a subscriber and a run, whose ids join the generated text."""
    site = await create_site(stack.settings, "Fuzz", "mailto:fuzz@example.com")
    auth = (("authorization", f"Bearer {site.api_key}"),)
    async with client_channel(stack.address("campaign")) as channel:
        created = await channel.unary_unary(
            "/clarion.campaign.v1.CampaignService/CreateCampaign",
            request_serializer=campaign_service_pb2.CreateCampaignRequest.SerializeToString,
            response_deserializer=campaign_service_pb2.CreateCampaignResponse.FromString,
        )(
            campaign_service_pb2.CreateCampaignRequest(
                name="fuzz",
                notification=common_pb2.Notification(
                    title="t", body="b", target_url="https://shop.example/"
                ),
            ),
            metadata=auth,
            timeout=10,
        )
        campaign_id = created.campaign.campaign_id
        sent = await channel.unary_unary(
            "/clarion.campaign.v1.CampaignService/SendCampaignNow",
            request_serializer=campaign_service_pb2.SendCampaignNowRequest.SerializeToString,
            response_deserializer=campaign_service_pb2.SendCampaignNowResponse.FromString,
        )(campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id), metadata=auth, timeout=10)
    Known.values = [campaign_id, sent.run.run_id, site.site_id]
    return site.site_id, site.api_key


@pytest.mark.parametrize(
    ("server", "method"), METHODS, ids=[f"{m.containing_service.name}.{m.name}" for _, m in METHODS]
)
async def test_generated_requests_never_break_a_service(
    stack: EmbeddedStack, fuzz_site: tuple[str, str], server: str, method: MethodDescriptor
) -> None:
    site_id, api_key = fuzz_site
    if method.name == "RotateApiKey":
        # Each call replaces the site's key: a site of its own, so the others keep theirs.
        rotated = await create_site(stack.settings, "Fuzz rotate", "mailto:fuzz@example.com")
        site_id, api_key = rotated.site_id, rotated.api_key
    path = f"/{method.containing_service.full_name}/{method.name}"
    metadatas = _metadatas(stack, site_id, api_key)
    async with client_channel(stack.address(server)) as channel:
        call = _sender(channel, path, method, lambda m: m.SerializeToString())
        raw = _sender(channel, path, method, lambda b: b)
        # A client-streaming method gets a stream of one to three generated messages.
        streamed = method.client_streaming
        requests = (
            st.lists(messages(method.input_type), min_size=1, max_size=3)
            if streamed
            else messages(method.input_type)
        )

        # Hypothesis drives a plain function: it runs in a worker thread and hands each
        # call to the test's event loop, where the channel lives.
        loop = asyncio.get_running_loop()

        def run(request: Any, metadata: Any, sender: Any, what: str) -> None:
            CASES[path] += 1
            asyncio.run_coroutine_threadsafe(
                _expect_no_break(sender, request, metadata, what), loop
            ).result(timeout=60)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests, which=st.integers(0, len(metadatas) - 1))
        def generated(request: Message | list[Message], which: int) -> None:
            run(request, metadatas[which], call, f"{path} with {request!r:.300}")

        @settings(max_examples=RAW_EXAMPLES, derandomize=True, deadline=None, database=None)
        @given(body=st.one_of(st.binary(max_size=64), st.sampled_from([b"\xff" * 8, b"\x0a\x05\xff\xfe"])))
        def undecodable(body: bytes) -> None:
            run([body] if streamed else body, metadatas[0], raw, f"{path} with raw {body!r}")

        await asyncio.to_thread(generated)
        await asyncio.to_thread(undecodable)


async def test_every_method_was_exercised() -> None:
    # A request type with no fields has one possible message: Hypothesis stops early.
    exercised = {path for path, count in CASES.items() if count > RAW_EXAMPLES}
    every = {f"/{m.containing_service.full_name}/{m.name}" for _, m in METHODS}
    assert every <= exercised, sorted(every - exercised)
    print("generated cases per method:", dict(sorted(CASES.items())))
