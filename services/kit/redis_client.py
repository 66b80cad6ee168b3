"""Redis through redis.asyncio.

Keys that belong together carry a Redis Cluster hash tag ({...}) so the same
code runs against Redis Cluster in production.
"""
from __future__ import annotations

import redis.asyncio as redis

from services.kit.config import Settings


def client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=False, health_check_interval=30)
