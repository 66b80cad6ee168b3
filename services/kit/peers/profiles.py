"""Profile edits announced over Redis pub/sub, for caches of user summaries.

Identity publishes a user's id on one channel once a profile edit has
committed; graph does the same for both users of a follow or unfollow, whose
counts changed. Every process that caches user summaries (identity's replicas,
posts) listens and drops that user's entry, so an edit shows at once instead
of after the cache's TTL. Pub/sub delivers at most once: a listener whose
connection drops may miss announcements, so on every subscription (the first
included) it drops its whole cache, and the TTL still bounds an announcement
lost in flight. A failed announcement is logged and left to the TTL too.

(On Redis Cluster a plain PUBLISH reaches the subscribers on every node.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable

import redis.asyncio as redis

from services.kit.stores import redis_client
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

CHANNEL = "aviary:profiles:changed"


async def announce(client: redis.Redis, user_id: int) -> None:
    """Tells every cache that `user_id`'s profile changed (best effort)."""
    try:
        await client.publish(*announcement(user_id)[1:])
    except (redis.RedisError, OSError) as exc:
        not_announced(user_id, exc)


def announcement(user_id: int) -> tuple[str, str, str]:
    """The PUBLISH that announces `user_id`'s change, for a caller sending
    it together with its own commands (BulkRedis)."""
    return ("PUBLISH", CHANNEL, str(user_id))


def not_announced(user_id: int, error: BaseException) -> None:
    """Logs an announcement that failed: caches catch up within their TTL."""
    log.warning(
        "profile change not announced; caches catch up within their TTL",
        extra={"user_id": user_id, "error": error_text(error)},
    )


async def follow(
    client: redis.Redis, changed: Callable[[int], None], maybe_missed: Callable[[], None], *, retry_seconds: float = 1.0
) -> None:
    """Runs until cancelled: `changed(user_id)` for each announcement, and
    `maybe_missed()` on every (re)subscription, when announcements may have
    gone by unheard."""
    attempt = 0
    while True:
        subscriber = pubsub = None
        try:
            subscriber = await _subscriber(client, attempt)
            pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
            maybe_missed()
            async for message in pubsub.listen():
                _dispatch(message, changed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lost the profile change announcements; subscribing again", extra={"error": error_text(exc)})
            attempt += 1
            await asyncio.sleep(retry_seconds)
        finally:
            with contextlib.suppress(Exception):
                if pubsub is not None:
                    await pubsub.aclose()
                if subscriber is not None and subscriber is not client:
                    await subscriber.aclose()


async def _subscriber(client: redis.Redis, attempt: int) -> redis.Redis:
    """Where to listen: the client itself, or on a Redis Cluster a plain
    client of one of its nodes, each in turn after a failure (a PUBLISH
    reaches every node of a cluster; redis-py's cluster pub/sub found no node
    for the channel)."""
    if not redis_client.is_cluster(client):
        return client
    await client.initialize()
    nodes = client.get_nodes()  # type: ignore[attr-defined]
    node = nodes[attempt % len(nodes)]
    kwargs = {k: v for k, v in node.connection_kwargs.items() if k != "event_dispatcher"}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=node.connection_class, **kwargs))


def _dispatch(message: dict, changed: Callable[[int], None]) -> None:
    if message.get("type") != "message":
        return
    try:
        user_id = int(message["data"])
    except (TypeError, ValueError):
        log.warning("unreadable profile change announcement", extra={"data": repr(message.get("data"))[:100]})
        return
    changed(user_id)
