"""Redis through redis.asyncio.

Keys that belong together carry a Redis Cluster hash tag ({...}) so the same
code runs against Redis Cluster in production.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, ConnectionError, TimeoutError, TryAgainError

from services.kit.settings import Settings
from services.kit.stores import redis_target

# What an unreachable Redis raises (after the client's own retries), or a
# Redis Cluster while a replica takes over (CLUSTERDOWN, TRYAGAIN): callers
# catch these to degrade or answer UNAVAILABLE instead of INTERNAL.
UNREACHABLE = (ConnectionError, TimeoutError, OSError, ClusterDownError, TryAgainError)


def client(settings: Settings) -> redis.Redis:
    target = redis_target.parse(settings.redis_url)
    if target.cluster:
        return _cluster_client(target, settings)
    # A blocking pool: under a burst, callers wait briefly for a connection
    # instead of failing with "too many connections".
    pool = redis.BlockingConnectionPool(
        **target.pool_kwargs(),
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        health_check_interval=30,
        # A pooled connection that a Redis restart closed is replaced and the
        # command retried, instead of failing the request that found it.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return redis.Redis(connection_pool=pool, decode_responses=False)


class _SlotMapFirst(RedisCluster):
    """redis-py picks a command's routing before reading the slot map; for a
    script (EVALSHA) sent by many callers at once on a client never used,
    that breaks their connections. The map is read first."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def _cluster_client(target: redis_target.RedisTarget, settings: Settings) -> redis.Redis:
    cluster = _SlotMapFirst(
        startup_nodes=[ClusterNode(host, port) for host, port in target.cluster_nodes],
        **target.cluster_kwargs(),
        # Per node: a burst waits on the pool of the node its keys live on.
        max_connections=settings.redis_max_connections,
        health_check_interval=30,
        decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    # The same commands as redis.Redis (those on keys of one slot, which is
    # every multi-key command the services send: their keys share hash tags),
    # so callers are typed against the one client.
    return cast(redis.Redis, cluster)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)
