"""Fixtures shared by the integration tests: stubs to the running services."""
from __future__ import annotations

import grpc
import pytest

from aviary.graph.v1 import graph_pb2_grpc
from aviary.identity.v1 import identity_pb2_grpc
from services.kit.config import service_addr


@pytest.fixture(scope="module")
def identity():
    with grpc.insecure_channel(service_addr("identity")) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture(scope="module")
def graph():
    with grpc.insecure_channel(service_addr("graph")) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield graph_pb2_grpc.GraphServiceStub(channel)
