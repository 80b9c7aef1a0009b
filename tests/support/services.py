"""What a running server hosts, asked as an integrator would (server reflection), and
the proof that an internal service refuses a site API key on every one of its methods."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.kit.errors import error_info

Metadata = tuple[tuple[str, str], ...]


async def reflected_services(channel: grpc.aio.Channel) -> set[str]:
    """The service names the server lists through reflection (`grpcurl ... list`)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=5)]
    return {service.name for service in responses[0].list_services_response.service}


async def refusals(
    channel: grpc.aio.Channel, service_full_name: str, metadata: Metadata
) -> dict[str, tuple[grpc.StatusCode, str]]:
    """Calls every method of the service (from its descriptor) with an empty request and
    `metadata`; answers {method: (code, ErrorInfo reason)} ("" for a call that passed)."""
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    answers: dict[str, tuple[grpc.StatusCode, str]] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            await call(request_class(), metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            info = error_info(error)
            answers[method.name] = (error.code(), info.reason if info is not None else "")
        else:
            answers[method.name] = (grpc.StatusCode.OK, "")
    return answers


async def assert_internal_only(
    channel: grpc.aio.Channel, service_full_name: str, site_metadata: Metadata
) -> list[str]:
    """Every method of the service answers a site API key PERMISSION_DENIED INTERNAL_ONLY;
    returns the methods tried."""
    answers = await refusals(channel, service_full_name, site_metadata)
    assert answers, f"{service_full_name} has no methods"
    refused = (grpc.StatusCode.PERMISSION_DENIED, "INTERNAL_ONLY")
    assert {name: refused for name in answers} == answers, service_full_name
    return list(answers)
