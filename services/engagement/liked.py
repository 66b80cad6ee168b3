"""A Redis cache of what each user liked, so liked_by_me costs no Cassandra read.

One hash per reader, `eng:lk:{user_id}`: post id -> "1" liked or "0" unliked,
and `_floor`, below which the hash is incomplete and Cassandra's
likes_by_user is asked. Writers set a post's field whether or not the hash is
loaded and a load only fills fields nobody has set, so a load racing a like
or unlike cannot undo it (hence "0" rather than a deleted field). The whole
layout: services/engagement/README.md, "likedByMe".
"""

from __future__ import annotations

import redis.asyncio as redis
from prometheus_client import Counter

from services.engagement.store import EngagementStore

FLOOR = "_floor"

LOADS = Counter("aviary_engagement_liked_loads_total", "Per-user liked-post hashes loaded from Cassandra")
FALLBACKS = Counter("aviary_engagement_liked_fallbacks_total", "liked_by_me lookups below the cached floor")

# ARGV: field, value, ttl, max fields. Sets the field; a hash grown too big
# is dropped (the next read reloads the newest likes).
_SET = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

# ARGV: ttl, floor, n loaded, the n loaded post ids, then the asked ids.
# Fills only unset fields (writers win), marks the hash loaded, and answers
# the floor and the asked ids as they now stand.
_LOAD = """
local n = tonumber(ARGV[3])
for i = 4, 3 + n do redis.call('HSETNX', KEYS[1], ARGV[i], '1') end
redis.call('HSETNX', KEYS[1], '_floor', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local out = {redis.call('HGET', KEYS[1], '_floor')}
for i = 4 + n, #ARGV do out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) end
return out
"""


def liked_key(user_id: int) -> str:
    return f"eng:lk:{{{user_id}}}"


class LikedCache:
    def __init__(self, client: redis.Redis, store: EngagementStore, *, load_size: int, ttl_seconds: int) -> None:
        self.client = client
        self.store = store
        self.load_size = load_size
        self.ttl_seconds = ttl_seconds
        self._set = client.register_script(_SET)
        self._load = client.register_script(_LOAD)

    async def record(self, user_id: int, post_id: int, liked: bool) -> None:
        """Called after the like edge changed in Cassandra."""
        await self._set(
            keys=[liked_key(user_id)], args=[post_id, "1" if liked else "0", self.ttl_seconds, 2 * self.load_size + 1]
        )

    @staticmethod
    def read_command(user_id: int, post_ids: list[int]) -> tuple:
        """The lookup, for a bulk round trip it shares with the counts."""
        return (b"HMGET", liked_key(user_id), FLOOR, *post_ids)

    async def finish_read(self, user_id: int, post_ids: list[int], row: list) -> set[int]:
        """The liked subset of post_ids, given the answer to read_command."""
        floor, values = row[0], list(row[1:])
        if floor is None:
            floor, values = await self._load_and_read(user_id, post_ids)
        floor = int(floor)
        liked = {p for p, v in zip(post_ids, values) if v == b"1"}
        older = [p for p, v in zip(post_ids, values) if v is None and p < floor]
        if older:
            FALLBACKS.inc()
            liked |= await self.store.liked_among(user_id, older)
        return liked

    async def _load_and_read(self, user_id: int, post_ids: list[int]) -> tuple[bytes, list]:
        newest = await self.store.newest_likes(user_id, self.load_size)
        # A full load may have cut off older likes; below its oldest post the
        # hash is not the whole truth.
        floor = min(newest) if len(newest) >= self.load_size else 0
        LOADS.inc()
        row = await self._load(
            keys=[liked_key(user_id)], args=[self.ttl_seconds, floor, len(newest), *newest, *post_ids]
        )
        return row[0], list(row[1:])
