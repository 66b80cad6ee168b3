"""Shared fixtures. Integration and end-to-end tests talk to the real stack the
devstack started (`make up`, or `make test` which starts it when needed)."""

from __future__ import annotations

import os
import secrets

import httpx
import pytest

EDGE_URL = os.environ.get("AVIARY_EDGE_URL", f"http://127.0.0.1:{os.environ.get('ENVOY_PORT', '8080')}")


def unique_username(prefix: str = "t") -> str:
    """3..15 chars of [A-Za-z0-9_], unique per call."""
    return f"{prefix}_{secrets.token_hex(5)}"[:15]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked runs_last go after all others, in their own order."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


@pytest.fixture(scope="session")
def edge_url() -> str:
    return EDGE_URL


@pytest.fixture(scope="session")
def http(edge_url):
    with httpx.Client(base_url=edge_url, timeout=15.0) as client:
        yield client


# The devstack runs graph with this threshold (its default is 3 so a small demo
# has a celebrity); production's default is 10,000.
FANOUT_THRESHOLD = int(os.environ.get("AVIARY_FANOUT_THRESHOLD", "3"))
# AVIARY_REDIS_CLUSTER=1 (the devstack's switch): the tests, like the
# services, use the local Redis Cluster.
if os.environ.get("AVIARY_REDIS_CLUSTER", "").strip() in ("1", "true", "yes"):
    from devstack import redis_cluster

    os.environ.setdefault("AVIARY_REDIS_URL", redis_cluster.url())
REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
