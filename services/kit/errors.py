"""Domain errors that the gRPC adapter turns into google.rpc.Status with ErrorInfo."""

from __future__ import annotations

import grpc

ERROR_DOMAIN = "clarion.dev"
# An error's text goes back in the call's trailers, which gRPC caps (16 KiB by default):
# a message or metadata value that quotes a caller's huge input is cut, so the caller
# gets the real error instead of RESOURCE_EXHAUSTED.
MAX_MESSAGE_LENGTH = 1024
MAX_METADATA_VALUE_LENGTH = 256


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ClarionError(Exception):
    """An error a caller should see; `reason` is a stable UPPER_SNAKE_CASE code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = _bounded(message, MAX_MESSAGE_LENGTH)
        self.metadata = {k: _bounded(str(v), MAX_METADATA_VALUE_LENGTH) for k, v in metadata.items()}


class InvalidArgument(ClarionError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ClarionError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ClarionError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ClarionError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ClarionError):
    """A concurrent change won; the caller may try again."""

    code = grpc.StatusCode.ABORTED


class Unauthenticated(ClarionError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ClarionError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ClarionError):
    code = grpc.StatusCode.UNAVAILABLE


def to_status(error: ClarionError):  # -> grpc.Status
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2
    from grpc_status import rpc_status

    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=error.code.value[0], message=error.message, details=[detail]
    )
    return rpc_status.to_status(status)


def error_info(rpc_error: grpc.RpcError):
    """The ErrorInfo carried by a failed call, or None (client side helper)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(rpc_error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
