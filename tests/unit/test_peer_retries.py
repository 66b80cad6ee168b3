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
