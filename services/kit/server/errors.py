"""Errors a servicer raises; the server interceptor turns them into gRPC status.

Messages are for people: they name the field and say what was wrong. Envoy's
transcoder passes them through as the JSON `message` with the mapped HTTP status.
"""

from __future__ import annotations

import collections
import functools
import math
import re
from typing import Iterable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# How long a client should wait before retrying an UNAVAILABLE answer.
RETRY_DELAY_SECONDS = 1.0


class ApiError(Exception):
    """A failure answered as `code` and `message`, with optional google.rpc
    detail messages (BadRequest, RetryInfo, ...) a client can act on."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Iterable[Message] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)


def invalid_argument(field: str, problem: str) -> ApiError:
    """`field` in the proto's snake form, as messages name it; the attached
    BadRequest names it in lowerCamel, as HTTP/JSON clients send it."""
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}", [bad_request(field, problem)])


def bad_request(field: str, problem: str) -> error_details_pb2.BadRequest:
    violation = error_details_pb2.BadRequest.FieldViolation(field=json_field_path(field), description=problem)
    return error_details_pb2.BadRequest(field_violations=[violation])


_SNAKE_TAIL = re.compile(r"_([a-z0-9])")


def json_field_path(field: str) -> str:
    """A field path in proto JSON's lowerCamel form: items[0].unit_price -> items[0].unitPrice."""
    return _SNAKE_TAIL.sub(lambda m: m.group(1).upper(), field)


def nothing_to_change(*settable: str) -> ApiError:
    """An update that sets no field: names what can be set, in both forms,
    and no single field (none of them is wrong)."""
    named = ", ".join(f if json_field_path(f) == f else f"{f} ({json_field_path(f)})" for f in settable)
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"nothing to change: set at least one of {named}")


def not_found(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message)


def permission_denied(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.PERMISSION_DENIED, message)


def unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message)


def unavailable(message: str, retry_after_seconds: float = RETRY_DELAY_SECONDS) -> ApiError:
    return ApiError(grpc.StatusCode.UNAVAILABLE, message, [retry_info(retry_after_seconds)])


def resource_exhausted(message: str, retry_after_seconds: float) -> ApiError:
    """Too many attempts (HTTP 429); the RetryInfo says when to try again."""
    return ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, [retry_info(retry_after_seconds)])


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(seconds * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def peer_error(exc: grpc.aio.AioRpcError) -> ApiError:
    """A peer's answer passed on as it was given: code, message and details."""
    # from_call reads only the code, details and trailing metadata, which an aio error has too.
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    details = [_unpacked(d) for d in status.details] if status is not None else []
    return ApiError(exc.code(), exc.details() or "", details)


def _unpacked(detail: any_pb2.Any) -> Message:
    """A detail this kit knows as its message; any other stays an Any, passed on as it came."""
    for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
        # types-protobuf: a message's DESCRIPTOR may be either Descriptor class, Is() takes one of them.
        if detail.Is(kind.DESCRIPTOR):  # type: ignore[arg-type]
            message = kind()
            detail.Unpack(message)
            return message
    return detail


def _packed(detail: Message) -> any_pb2.Any:
    if isinstance(detail, any_pb2.Any):
        return detail
    wrapped = any_pb2.Any()
    wrapped.Pack(detail)
    return wrapped


def rich_status(code: grpc.StatusCode, message: str, details: Iterable[Message] = ()) -> grpc.Status:
    """The status to abort with (`context.abort_with_status`): code, message
    and the details in the grpc-status-details-bin trailer."""
    details = list(details)
    # Every UNAVAILABLE answer tells the client when to retry.
    if code == grpc.StatusCode.UNAVAILABLE and not any(isinstance(d, error_details_pb2.RetryInfo) for d in details):
        details.append(retry_info(RETRY_DELAY_SECONDS))
    packed = [_packed(detail) for detail in details]
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))
    retry = next((d for d in details if isinstance(d, error_details_pb2.RetryInfo)), None)
    if retry is None:
        return status
    # The delay also as `retry-after` metadata: Envoy's transcoder answers it
    # as the HTTP Retry-After header (whole seconds, rounded up).
    seconds = max(1, math.ceil(retry.retry_delay.ToNanoseconds() / 1e9))
    return _Status(status.code, status.details, (*status.trailing_metadata, ("retry-after", str(seconds))))


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


# A backend that cannot be reached is the caller's cue to retry later
# (UNAVAILABLE, HTTP 503), not a bug (INTERNAL, 500): the interceptor
# answers these exceptions that way when a servicer lets one escape.
@functools.cache
def _unreachable_types() -> dict[type, str]:
    import psycopg
    import redis.exceptions
    import sqlalchemy.exc

    from services.kit.stores import cql

    return {
        redis.exceptions.ConnectionError: "redis",
        redis.exceptions.TimeoutError: "redis",
        # OperationalError: connection refused or lost, and also deadlocks
        # and serialization failures; every one of them is worth a retry.
        sqlalchemy.exc.OperationalError: "postgresql",
        sqlalchemy.exc.InterfaceError: "postgresql",
        sqlalchemy.exc.TimeoutError: "postgresql",  # no pooled connection in time
        psycopg.OperationalError: "postgresql",
        **dict.fromkeys(cql.OUTAGES, "cassandra"),
        ConnectionError: "a backend",
        TimeoutError: "a backend",
    }


_PEER_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def unreachable_backend(exc: BaseException) -> str | None:
    """What an exception says could not be reached (for logs), or None when
    it is not that kind of failure."""
    for kind, backend in _unreachable_types().items():
        if isinstance(exc, kind):
            return backend
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _PEER_DOWN:
        return "a peer service"
    if isinstance(exc, RuntimeError) and str(exc).endswith(_UVLOOP_CLOSED):
        # uvloop refusing to write on a connection that closed under the call (a
        # Redis failover): redis-py lets it through instead of a ConnectionError.
        return "a backend"
    return None


_UVLOOP_CLOSED = "; the handler is closed"


BACKEND_UNAVAILABLE = "a service this request needs is unavailable; try again shortly"
