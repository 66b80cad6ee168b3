"""The feed's Redis: ranked feeds cached for a short TTL, and recently deleted
post ids so a cached page never shows a post deleted since it was ranked.

Keys:
- ``feed:{u<user>}:<feed id>``: a list of serialized FeedItem messages, the
  whole ranking; a page is an LRANGE, so paging reads only that page. Every
  page read renews its TTL: a reader who keeps scrolling keeps their ranking
  (up to a maximum age, told from the feed id's timestamp).
- ``feed:{u<user>}:latest``: the feed id a first-page request may reuse, for a
  shorter time than the ranking lives (a pull-to-refresh after that re-ranks).
- ``feed:{deleted}``: sorted set post id -> deletion time (ms), trimmed to what
  a cached ranking could still hold.
A user's keys share a hash tag, so the save pipeline is one slot on Redis
Cluster; the deleted set is one small key of its own.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import redis.asyncio as redis

from services.kit.server.ids import timestamp_ms
from services.kit.stores.redis_bulk import BulkRedis

DELETED_KEY = "feed:{deleted}"


def ranking_key(user_id: int, feed_id: int) -> str:
    return f"feed:{{u{user_id}}}:{feed_id}"


def latest_key(user_id: int) -> str:
    return f"feed:{{u{user_id}}}:latest"


# Stores a ranking and (unless ARGV[2] is 0) makes it the one first pages
# reuse, atomically (a script rather than MULTI: redis-py runs a cluster MULTI
# on a thread and event loop of its own, which broke the client's later calls
# while a failover moved slots). KEYS: ranking, latest (same slot). ARGV: TTL
# seconds, reuse seconds, feed id, items... (pushed a thousand at a time:
# Lua's stack is bounded).
_SAVE_LUA = """
for i = 4, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '0' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class CachedPage:
    items: list[bytes]
    total: int


class FeedCache:
    def __init__(
        self, client: redis.Redis, bulk: BulkRedis, ttl_seconds: int, reuse_seconds: int, max_age_seconds: int
    ) -> None:
        self.r = client
        self._save = client.register_script(_SAVE_LUA)
        # The page reads (every feed request makes two or three) go through
        # `bulk`, same server: hiredis packs and parses them, a fraction of
        # redis-py's Python per command.
        self._bulk = bulk
        self.ttl_seconds = ttl_seconds
        self.reuse_seconds = min(reuse_seconds, ttl_seconds)
        # The longest a ranking is served, page reads renewing it or not (its
        # age comes from the feed id's timestamp); deletions are remembered
        # that long plus one TTL.
        self.max_age_ms = max_age_seconds * 1000
        self.retention_ms = (max_age_seconds + ttl_seconds) * 1000

    async def save(self, user_id: int, feed_id: int, items: list[bytes]) -> None:
        """Stores a ranking (non-empty) and makes it the one first pages reuse."""
        reuse = self._jittered_reuse_seconds() if self.reuse_seconds > 0 else 0
        await self._save(
            keys=[ranking_key(user_id, feed_id), latest_key(user_id)],
            args=[self.ttl_seconds, reuse, feed_id, *items],
        )

    def _jittered_reuse_seconds(self) -> int:
        # Up to a quarter shorter at random: readers who arrived together (a
        # push notification, a deploy, a benchmark) would otherwise all
        # re-rank together every period, a storm of builds.
        return max(1, round(self.reuse_seconds * random.uniform(0.75, 1.0)))

    async def reusable(self, user_id: int) -> int | None:
        """The feed id a first page may be served from, if one is fresh enough."""
        (raw,) = await self._bulk.read([(b"GET", latest_key(user_id))])
        return int(raw) if raw else None

    async def page(self, user_id: int, feed_id: int, offset: int, size: int) -> CachedPage | None:
        """One page of a cached ranking, renewing its TTL; None once it expired
        or outlived the maximum age."""
        if time.time() * 1000 - timestamp_ms(feed_id) > self.max_age_ms:
            return None
        key = ranking_key(user_id, feed_id)
        # Renewing the TTL is as harmless to repeat as the reads.
        items, total, _ = await self._bulk.read(
            [
                (b"LRANGE", key, offset, offset + size - 1),
                (b"LLEN", key),
                (b"EXPIRE", key, self.ttl_seconds),
            ]
        )
        if total == 0:
            return None
        return CachedPage(items=items, total=total)

    async def deleted_among(self, post_ids: list[int]) -> set[int]:
        if not post_ids:
            return set()
        (scores,) = await self._bulk.read([(b"ZMSCORE", DELETED_KEY, *post_ids)])
        return {post_id for post_id, score in zip(post_ids, scores) if score is not None}

    async def mark_deleted(self, post_id: int) -> None:
        """Idempotent. Entries older than a ranking can live are trimmed."""
        now_ms = int(time.time() * 1000)
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.zadd(DELETED_KEY, {str(post_id): now_ms})
            pipe.zremrangebyscore(DELETED_KEY, "-inf", now_ms - self.retention_ms)
            await pipe.execute()
