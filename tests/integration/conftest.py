"""Fixtures shared by the integration tests: stubs to the running services,
and stores of their own on the stack's datastores."""

from __future__ import annotations

import grpc
import pytest

from aviary.catalog.v1 import catalog_pb2_grpc
from aviary.graph.v1 import graph_pb2_grpc
from aviary.identity.v1 import identity_pb2_grpc
from aviary.posts.v1 import posts_pb2_grpc
from services.kit.events.kafka import Producer
from services.kit.settings import load_settings, service_addr
from services.posts.store import PostStore
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


@pytest.fixture
async def posts_store():
    """A posts store of the test's own on the stack's Cassandra."""
    settings = load_settings()
    producer = Producer(settings.kafka_bootstrap)
    store = PostStore(settings)
    await store.start(producer)
    yield store
    await store.stop()
    await producer.close()
