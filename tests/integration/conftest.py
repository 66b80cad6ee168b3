"""Fixtures shared by the integration tests: stubs to the running services."""

from __future__ import annotations

import grpc
import pytest

from aviary.catalog.v1 import catalog_pb2_grpc
from aviary.graph.v1 import graph_pb2_grpc
from aviary.identity.v1 import identity_pb2_grpc
from aviary.posts.v1 import posts_pb2_grpc
from services.kit.settings import service_addr
from tests.integration.support import wait_serving
from devstack.mesh_channels import open_channel


@pytest.fixture(scope="module")
def identity():
    with open_channel("identity") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture(scope="module")
def graph():
    with open_channel("graph") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield graph_pb2_grpc.GraphServiceStub(channel)


@pytest.fixture(scope="module")
def posts():
    channel = wait_serving(service_addr("posts"))
    yield posts_pb2_grpc.PostsServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def catalog():
    channel = wait_serving(service_addr("catalog"))
    yield catalog_pb2_grpc.CatalogServiceStub(channel)
    channel.close()
