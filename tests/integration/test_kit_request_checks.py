"""The kit's interceptor over raw gRPC: bytes that do not parse, NUL in text
and undefined enum numbers are INVALID_ARGUMENT naming the field before any
servicer runs (running services), with a google.rpc.BadRequest in the
status details; UNAVAILABLE carries a google.rpc.RetryInfo (a kit server
started here, whose handler fails the way a backend outage does)."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
import redis.exceptions
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from aviary.timeline.v1 import timeline_pb2
from services.kit.server.errors import BACKEND_UNAVAILABLE, unavailable
from services.kit.server.service import KitInterceptor
from tests.integration.support import free_port
from devstack.mesh_channels import open_channel

TIMEOUT = 10.0


@pytest.fixture
async def channels():
    opened: dict[str, grpc.aio.Channel] = {}

    def channel(service: str) -> grpc.aio.Channel:
        if service not in opened:
            opened[service] = open_channel(service, aio=True)
        return opened[service]

    yield channel
    for ch in opened.values():
        await ch.close()


def _details(err: grpc.aio.AioRpcError) -> list:
    """The status details, unpacked (from_call also checks code and message match)."""
    status = rpc_status.from_call(err)
    assert status is not None, "no grpc-status-details-bin trailer"
    unpacked = []
    for detail in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def _violated_field(err: grpc.aio.AioRpcError) -> str:
    (bad_request,) = _details(err)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    (violation,) = bad_request.field_violations
    assert err.details() == f"{_snake(violation.field)}: {violation.description}"
    return violation.field


def _snake(path: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in path)


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value


def _raw_unary(channel: grpc.aio.Channel, method: str):
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


# -- bytes that do not parse ----------------------------------------------------------


async def test_invalid_utf8_in_a_string_field_names_the_field(channels):
    raw = b"\x0a\x03\xffab"  # LookupUserRequest.username = 0xFF 'a' 'b'
    lookup = _raw_unary(channels("identity"), "/aviary.identity.v1.IdentityService/LookupUser")
    err = await _refused(lookup(raw, timeout=TIMEOUT))
    assert err.details().startswith("username: must be valid UTF-8 text")
    assert "DecodeError" not in err.details() and "Unexpected" not in err.details()
    assert _violated_field(err) == "username"


async def test_invalid_utf8_nested_in_a_request_names_the_dotted_path(channels):
    good = orders_pb2.AdvanceDeliveryRequest(order_id="1", status=2, note="zz").SerializeToString()
    advance = _raw_unary(channels("orders"), "/aviary.orders.v1.OrdersService/AdvanceDelivery")
    err = await _refused(advance(good.replace(b"zz", b"\xc3\x28"), timeout=TIMEOUT))
    assert err.details().startswith("note: must be valid UTF-8 text")


async def test_bytes_that_are_no_message_get_a_plain_invalid_argument(channels):
    lookup = _raw_unary(channels("identity"), "/aviary.identity.v1.IdentityService/LookupUser")
    err = await _refused(lookup(b"\x0a\x7fab", timeout=TIMEOUT))  # a length past the end
    assert "could not be read" in err.details() and "aviary." not in err.details()


async def test_a_streamed_request_that_does_not_parse_ends_the_stream_invalid_argument(channels):
    good = timeline_pb2.DeliverEntriesRequest(op=99).SerializeToString()
    truncated = b"\x12\x7f"  # entry: a length past the end
    deliver = channels("timeline").stream_unary(
        "/aviary.timeline.v1.TimelineService/DeliverEntries", request_serializer=None, response_deserializer=None
    )
    # The stream is still open on the client's side: the server ends it on the
    # bad message alone (a further write could race that end and fail locally).
    call = deliver(timeout=TIMEOUT)
    await call.write(truncated)
    err = await _refused(call)
    assert "could not be read" in err.details()
    err = await _refused(deliver(iter([good]), timeout=TIMEOUT))
    assert err.details().startswith("op: must be one of ")


async def test_a_server_streaming_call_is_refused_before_its_first_message(channels):
    stream = channels("graph").unary_stream(
        "/aviary.graph.v1.GraphService/StreamFollowers", request_serializer=None, response_deserializer=None
    )
    call = stream(b"\x0a\x02\xff1", timeout=TIMEOUT)  # user_id = 0xFF '1'
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pytest.fail("a message was streamed for a malformed request")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("user_id: must be valid UTF-8 text")
    assert _violated_field(caught.value) == "userId"


# -- NUL and undefined enum numbers ---------------------------------------------------


async def test_nul_in_text_is_refused_before_the_servicer_runs(channels):
    orders = orders_pb2_grpc.OrdersServiceStub(channels("orders"))
    # No token: the servicer would answer UNAUTHENTICATED; the kit answers first.
    err = await _refused(
        orders.AdvanceDelivery(
            orders_pb2.AdvanceDeliveryRequest(order_id="1", status=2, note="left\x00right"), timeout=TIMEOUT
        )
    )
    assert err.details() == "note: must not contain NUL (\\u0000) characters"
    assert _violated_field(err) == "note"


_PAST_LAST_STATUS = max(orders_pb2.DeliveryStatus.values()) + 1


@pytest.mark.parametrize("status", [99, _PAST_LAST_STATUS, -1])
async def test_an_undefined_enum_number_is_refused_listing_the_names(channels, status):
    orders = orders_pb2_grpc.OrdersServiceStub(channels("orders"))
    err = await _refused(
        orders.AdvanceDelivery(orders_pb2.AdvanceDeliveryRequest(order_id="1", status=status), timeout=TIMEOUT)
    )
    assert err.details().startswith("status: must be one of DELIVERY_STATUS_PENDING, DELIVERY_STATUS_PACKED, ")
    assert err.details().endswith(f"got {status}")
    assert _violated_field(err) == "status"


async def test_nul_in_a_streamed_message_ends_the_stream_naming_the_field(channels):
    stream = engagement_pb2_grpc.EngagementServiceStub(channels("engagement")).StreamEngagement()
    await stream.write(
        engagement_pb2.StreamEngagementRequest(
            request_id=1, batch=engagement_pb2.BatchGetEngagementRequest(post_ids=["1"])
        )
    )
    first = await stream.read()
    assert first.request_id == 1 and first.batch.engagements[0].post_id == "1"
    await stream.write(
        engagement_pb2.StreamEngagementRequest(
            request_id=2, batch=engagement_pb2.BatchGetEngagementRequest(post_ids=["2", "3\x00"])
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            assert await asyncio.wait_for(stream.read(), TIMEOUT) is not grpc.aio.EOF, "stream ended OK"
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("batch.post_ids[1]: must not contain NUL")
    assert _violated_field(caught.value) == "batch.postIds[1]"


# -- details on answers a servicer raises --------------------------------------------


async def test_a_servicer_invalid_argument_carries_a_bad_request_in_lower_camel(channels):
    orders = orders_pb2_grpc.OrdersServiceStub(channels("orders"))
    err = await _refused(
        orders.OperatorAdvanceDelivery(
            orders_pb2.OperatorAdvanceDeliveryRequest(order_id="not-an-id", status=2), timeout=TIMEOUT
        )
    )
    assert err.details().startswith("order_id: ")
    assert _violated_field(err) == "orderId"


# -- a kit server of our own: UNAVAILABLE, and how refusals are logged -----------------


@pytest.fixture
async def kit_server():
    """A server with the kit's interceptor whose Health/Check fails as told."""
    failure: list[Exception] = []

    async def check(request, context):
        raise failure[0]

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
        },
    )
    server = grpc.aio.server(interceptors=[KitInterceptor("kittest")])
    server.add_generic_rpc_handlers([handler])
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    raw = _raw_unary(channel, "/grpc.health.v1.Health/Check")
    yield failure, stub, raw
    await channel.close()
    await server.stop(None)


async def _unavailable(stub) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    return caught.value


async def test_an_unreachable_backend_is_unavailable_with_retry_info(kit_server):
    failure, stub, _ = kit_server
    failure.append(redis.exceptions.ConnectionError("connection refused"))
    err = await _unavailable(stub)
    assert err.details() == BACKEND_UNAVAILABLE
    (retry,) = _details(err)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 1.0


async def test_an_unavailable_api_error_keeps_its_own_retry_delay(kit_server):
    failure, stub, _ = kit_server
    failure.append(unavailable("the feed cache is not answering; reload the feed", retry_after_seconds=3))
    err = await _unavailable(stub)
    (retry,) = _details(err)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 3.0


async def test_a_refused_request_is_logged_as_a_client_error_without_a_traceback(kit_server, caplog):
    failure, _, raw = kit_server
    failure.append(AssertionError("the servicer must not run"))
    with caplog.at_level(logging.DEBUG):
        err = await _refused(raw(b"\x0a\x01\xff", timeout=TIMEOUT))  # service = 0xFF
    assert err.details().startswith("service: must be valid UTF-8 text")
    refusals = [r for r in caplog.records if r.getMessage() == "refused a malformed request"]
    assert [r.levelno for r in refusals] == [logging.INFO]
    assert all(r.levelno < logging.WARNING and not r.exc_info for r in caplog.records)


async def test_calls_are_unavailable_until_the_start_up_hooks_have_run():
    served: list[str] = []

    async def check(request, context):
        served.append(request.service)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    method = grpc.unary_unary_rpc_method_handler(
        check,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    interceptor = KitInterceptor("kittest")
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler("kittest.v1.Probe", {"Check": method}),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": method}),
        ]
    )
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:

        def stub(path):
            return channel.unary_unary(
                path,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )

        probe, health_check = stub("/kittest.v1.Probe/Check"), stub("/grpc.health.v1.Health/Check")
        err = await _unavailable(
            lambda request, timeout: probe(health_pb2.HealthCheckRequest(service="early"), timeout=timeout)
        )
        assert err.details() == "kittest is starting; try again shortly"
        assert [type(d).__name__ for d in _details(err)] == ["RetryInfo"]
        # Health answers while the service starts (it is how the stack waits for it).
        await health_check(health_pb2.HealthCheckRequest(service="health"), timeout=TIMEOUT)
        assert served == ["health"]
        interceptor.ready = True
        await probe(health_pb2.HealthCheckRequest(service="later"), timeout=TIMEOUT)
        assert served == ["health", "later"]
    finally:
        await channel.close()
        await server.stop(None)
