"""Errors a servicer raises; the server interceptor turns them into gRPC status.

Messages are for people: they name the field and say what was wrong. Envoy's
transcoder passes them through as the JSON `message` with the mapped HTTP status.
"""
from __future__ import annotations

import functools

import grpc


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_argument(field: str, problem: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


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


def unavailable(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAVAILABLE, message)


# A backend that cannot be reached is the caller's cue to retry later
# (UNAVAILABLE, HTTP 503), not a bug (INTERNAL, 500): the interceptor
# answers these exceptions that way when a servicer lets one escape.
@functools.cache
def _unreachable_types() -> dict[type, str]:
    import cassandra
    import psycopg
    import redis.exceptions
    import sqlalchemy.exc
    from cassandra.cluster import NoHostAvailable

    return {
        redis.exceptions.ConnectionError: "redis",
        redis.exceptions.TimeoutError: "redis",
        # OperationalError: connection refused or lost, and also deadlocks
        # and serialization failures; every one of them is worth a retry.
        sqlalchemy.exc.OperationalError: "postgresql",
        sqlalchemy.exc.InterfaceError: "postgresql",
        sqlalchemy.exc.TimeoutError: "postgresql",  # no pooled connection in time
        psycopg.OperationalError: "postgresql",
        NoHostAvailable: "cassandra",
        cassandra.OperationTimedOut: "cassandra",
        cassandra.Unavailable: "cassandra",
        cassandra.ReadTimeout: "cassandra",
        cassandra.WriteTimeout: "cassandra",
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
    return None


BACKEND_UNAVAILABLE = "a service this request needs is unavailable; try again shortly"
