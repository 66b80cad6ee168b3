"""Redis through redis.asyncio.

Keys that belong together carry a Redis Cluster hash tag ({...}) so the same
code runs against Redis Cluster in production.
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from services.kit.settings import Settings
from services.kit.stores import redis_target

# What an unreachable Redis raises (after the client's own retries): callers
# catch these to degrade or answer UNAVAILABLE instead of INTERNAL.
UNREACHABLE = (ConnectionError, TimeoutError, OSError)


def client(settings: Settings) -> redis.Redis:
    # A blocking pool: under a burst, callers wait briefly for a connection
    # instead of failing with "too many connections".
    pool = redis.BlockingConnectionPool(
        **redis_target.parse(settings.redis_url).pool_kwargs(),
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        health_check_interval=30,
        # A pooled connection that a Redis restart closed is replaced and the
        # command retried, instead of failing the request that found it.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return redis.Redis(connection_pool=pool, decode_responses=False)
