"""google.rpc details on the kit's errors: BadRequest fields in lowerCamel,
RetryInfo on every UNAVAILABLE, a peer's details passed on unchanged."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, wrappers_pb2
from google.rpc import error_details_pb2, status_pb2

from services.kit.server import errors
from services.kit.server.errors import unreachable_backend


@pytest.mark.parametrize(
    "field, json_path",
    [
        ("page_token", "pageToken"),
        ("q", "q"),
        ("items[0].unit_price", "items[0].unitPrice"),
        ("batch.post_ids[12]", "batch.postIds[12]"),
        ("file.content_type", "file.contentType"),
    ],
)
def test_field_paths_are_given_to_json_clients_in_lower_camel(field, json_path):
    error = errors.invalid_argument(field, "is wrong")
    assert error.message == f"{field}: is wrong"
    (bad_request,) = error.details
    assert [(v.field, v.description) for v in bad_request.field_violations] == [(json_path, "is wrong")]


def _status_of(status: grpc.Status) -> status_pb2.Status:
    (blob,) = [value for key, value in status.trailing_metadata if key == "grpc-status-details-bin"]
    return status_pb2.Status.FromString(blob)


def _retry_seconds(status: status_pb2.Status) -> list[float]:
    delays = []
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delays.append(info.retry_delay.ToTimedelta().total_seconds())
    return delays


def test_every_unavailable_answer_says_when_to_retry():
    plain = _status_of(errors.rich_status(grpc.StatusCode.UNAVAILABLE, errors.BACKEND_UNAVAILABLE))
    assert plain.code == grpc.StatusCode.UNAVAILABLE.value[0] and plain.message == errors.BACKEND_UNAVAILABLE
    assert _retry_seconds(plain) == [1.0]
    own = errors.unavailable("busy", retry_after_seconds=2.5)
    assert _retry_seconds(_status_of(errors.rich_status(own.code, own.message, own.details))) == [2.5]
    refused = errors.invalid_argument("q", "is required")
    assert _retry_seconds(_status_of(errors.rich_status(refused.code, refused.message, refused.details))) == []


def test_a_peers_refusal_is_passed_on_with_its_details():
    foreign = any_pb2.Any()
    foreign.Pack(wrappers_pb2.StringValue(value="something only the peer knows"))
    sent = errors.invalid_argument("idempotency_key", "was used with another quantity")
    status = errors.rich_status(sent.code, sent.message, [*sent.details, foreign])
    answered = grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), details=status.details
    )

    passed = errors.peer_error(answered)
    assert (passed.code, passed.message) == (sent.code, sent.message)
    assert passed.details[0] == sent.details[0] and passed.details[1] == foreign
    again = _status_of(errors.rich_status(passed.code, passed.message, passed.details))
    assert list(again.details) == list(_status_of(status).details)


def test_a_peer_answer_without_details_passes_on_code_and_message():
    answered = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(), details="quantity: must be positive"
    )
    passed = errors.peer_error(answered)
    assert (passed.code, passed.message, passed.details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "quantity: must be positive",
        (),
    )


def test_an_update_that_sets_nothing_names_no_field_as_wrong():
    error = errors.nothing_to_change("display_name", "bio")
    assert error.message == "nothing to change: set at least one of display_name (displayName), bio"
    assert error.details == ()


def test_a_connection_closed_under_a_call_is_an_unreachable_backend():
    import redis.exceptions

    assert unreachable_backend(redis.exceptions.ConnectionError("reset")) == "redis"
    # What uvloop raises when redis-py writes on a transport a failover closed.
    closed = RuntimeError(
        "unable to perform operation on <TCPTransport closed=True reading=False 0x55d0c3a2b6f0>; the handler is closed"
    )
    assert unreachable_backend(closed) == "a backend"
    assert unreachable_backend(RuntimeError("a bug of ours")) is None
