"""Redis clients for tests, on whatever AVIARY_REDIS_URL names: one server
(redis://, rediss://) or a Redis Cluster (redis+cluster://, rediss+cluster://),
so the same test reads and writes the keys the services use on either."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from services.kit.stores import redis_target


def from_url(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client; a RedisCluster (same commands) for a cluster URL."""
    target = redis_target.parse(url)
    if not target.cluster:
        return redis.Redis.from_url(url, **kwargs)
    nodes = [ClusterNode(host, port) for host, port in target.cluster_nodes]
    return RedisCluster(startup_nodes=nodes, **target.cluster_kwargs(), **kwargs)  # type: ignore[return-value]


def async_from_url(url: str, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client; a RedisCluster (same commands) for a cluster URL."""
    target = redis_target.parse(url)
    if not target.cluster:
        return aioredis.Redis.from_url(url, **kwargs)
    nodes = [AsyncClusterNode(host, port) for host, port in target.cluster_nodes]
    return AsyncRedisCluster(startup_nodes=nodes, **target.cluster_kwargs(), **kwargs)  # type: ignore[return-value]
