"""Which calls a peer channel retries on UNAVAILABLE (services/kit/peers/clients.py)."""

from __future__ import annotations

import json

from services.kit import manifest
from services.kit.peers import clients


def _retried(name: str) -> set[str]:
    config = json.loads(clients.service_config(name))
    return {entry["method"] for group in config.get("methodConfig", ()) for entry in group["name"]}


def test_reads_are_retried_and_writes_are_not():
    assert {"GetMedia", "BatchGetMedia"} == _retried("media")
    payments = _retried("payments")
    assert {"GetPayment", "CheckPaymentMethod"} <= payments
    assert not {"RefundPayment", "AuthorizePayment", "CapturePayment"} & payments


def test_no_stream_and_no_write_anywhere_is_retried():
    for name, entry in manifest.services().items():
        if entry.worker:
            continue
        retried = _retried(name)
        for full_name in entry.grpc:
            for method in manifest.proto_service(full_name).methods:
                if method.name not in retried:
                    continue
                assert not (method.client_streaming or method.server_streaming), (name, method.name)
                assert not method.name.startswith(("Create", "Update", "Delete", "Add", "Remove")), method.name


def test_grpc_accepts_every_service_config():
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for name, entry in manifest.services().items():
        if entry.worker:
            continue
        config = clients.service_config(name)
        # grpc validates the config when the channel is built: a bad one fails the call
        # with INVALID_ARGUMENT; a good one reaches for the (closed) port.
        with grpc.insecure_channel("127.0.0.1:1", options=[("grpc.service_config", config)]) as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.2)
            except grpc.RpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), (
                    name,
                    exc.details(),
                )


async def test_after_a_call_failed_through_an_outage_the_first_call_once_the_peer_is_back_succeeds():
    import grpc

    from tests.integration.support import free_port

    method = "/aviary.media.v1.MediaService/BatchGetMedia"
    addr = f"127.0.0.1:{free_port()}"
    options = [*clients._CHANNEL_OPTIONS, ("grpc.service_config", clients.service_config("media"))]
    async with grpc.aio.insecure_channel(addr, options=options) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        # The peer is down: the call is retried, and fails with UNAVAILABLE.
        try:
            await call(b"", timeout=5)
            raise AssertionError("answered with nobody listening")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        server = grpc.aio.server()

        async def answer(request: bytes, context) -> bytes:
            return b""

        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "aviary.media.v1.MediaService", {"BatchGetMedia": grpc.unary_unary_rpc_method_handler(answer)}
                )
            ]
        )
        server.add_insecure_port(addr)
        await server.start()
        try:
            # The channel may still be waiting to reconnect: the call's retries wait it out.
            assert await call(b"", timeout=5) == b""
        finally:
            await server.stop(None)
