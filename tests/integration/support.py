"""Plumbing shared by integration tests that start or wait for service processes."""
from __future__ import annotations

import socket
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(addr: str, deadline_s: float = 30.0) -> grpc.Channel:
    """A channel to `addr` once its grpc.health.v1 says SERVING; fails the test otherwise."""
    channel = grpc.insecure_channel(addr)
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return channel
            last = status
        except grpc.RpcError as exc:
            last = exc.code()
        time.sleep(0.2)
    channel.close()
    pytest.fail(f"service at {addr} is not serving (last: {last}); start it first")
