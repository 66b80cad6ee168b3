"""The timeline service's Redis adapter: the only code that talks to Redis.

Keys (hash-tagged for Redis Cluster, see entries.py for the member format):
  tl:{user}   home timeline, newest `timeline_max_entries` kept
  ai:{author} author's recent posts, newest `author_index_max_entries` kept
  tc:{user}   the user's followed celebrities, a short-lived cache of graph's answer
"""
from __future__ import annotations

from typing import Sequence

import redis.asyncio as redis

from services.kit import redis_client
from services.kit.config import Settings
from services.timeline.entries import (
    Entry,
    author_key,
    author_suffix,
    celebrity_cache_key,
    decode_id_list,
    encode_id_list,
    encode_member,
    home_key,
)
from services.timeline.live import author_channel, home_channel

# How many of a newly followed author's recent posts a follow copies in.
BACKFILL_ENTRIES = 50

# Removes, in one atomic step on one key, every member written for an author
# (members end in ":<author id>"; the post id part holds digits only), and
# forgets the reader's cached celebrity list (KEYS[2], same slot).
_PURGE_AUTHOR_LUA = """
redis.call('DEL', KEYS[2])
local suffix = ARGV[1]
local removed = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, -string.len(suffix)) == suffix then
    removed = removed + redis.call('ZREM', KEYS[1], member)
  end
end
return removed
"""


class TimelineStore:
    def __init__(self, settings: Settings) -> None:
        self.timeline_max = settings.timeline_max_entries
        self.author_index_max = settings.author_index_max_entries
        self._redis: redis.Redis = redis_client.client(settings)
        self._purge_author = self._redis.register_script(_PURGE_AUTHOR_LUA)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def add_to_homes(self, entry: Entry, user_ids: Sequence[int]) -> None:
        """ZADD + trim on every listed home timeline, in one round trip."""
        member = encode_member(entry.post_id, entry.author_id)
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            key = home_key(user_id)
            pipe.zadd(key, {member: 0})
            pipe.zremrangebyrank(key, 0, -(self.timeline_max + 1))
            # Cheap when nobody listens: PUBLISH to a channel without subscribers is O(1).
            pipe.publish(home_channel(user_id), member)
        await pipe.execute()

    async def remove_from_homes(self, entry: Entry, user_ids: Sequence[int]) -> None:
        member = encode_member(entry.post_id, entry.author_id)
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zrem(home_key(user_id), member)
        await pipe.execute()

    async def add_to_author_index(self, entry: Entry) -> None:
        key = author_key(entry.author_id)
        member = encode_member(entry.post_id, entry.author_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {member: 0})
        pipe.zremrangebyrank(key, 0, -(self.author_index_max + 1))
        pipe.publish(author_channel(entry.author_id), member)
        await pipe.execute()

    async def remove_from_author_index(self, entry: Entry) -> None:
        await self._redis.zrem(author_key(entry.author_id), encode_member(entry.post_id, entry.author_id))

    async def backfill(self, user_id: int, author_id: int, *, copy: bool = True) -> int:
        """Copies the author's newest posts into the user's home timeline
        (unless `copy` is False) and forgets the user's cached celebrity list.

        Two keys in different cluster slots, so this is read-then-write rather
        than one script; both steps are idempotent, so a retry is harmless.
        """
        members = await self._redis.zrange(author_key(author_id), -BACKFILL_ENTRIES, -1) if copy else []
        key = home_key(user_id)
        pipe = self._redis.pipeline(transaction=False)
        # The user follows someone new, who may be a celebrity.
        pipe.delete(celebrity_cache_key(user_id))
        if members:
            pipe.zadd(key, {m: 0 for m in members})
            pipe.zremrangebyrank(key, 0, -(self.timeline_max + 1))
        await pipe.execute()
        return len(members)

    async def purge_author(self, user_id: int, author_id: int) -> int:
        keys = [home_key(user_id), celebrity_cache_key(user_id)]
        return int(await self._purge_author(keys=keys, args=[author_suffix(author_id)]))

    async def cached_celebrities(self, user_id: int) -> list[int] | None:
        """The user's followed celebrities as last cached, or None when not cached."""
        raw = await self._redis.get(celebrity_cache_key(user_id))
        return None if raw is None else decode_id_list(raw)

    async def cache_celebrities(self, user_id: int, celebrity_ids: Sequence[int], ttl_seconds: float) -> None:
        await self._redis.set(celebrity_cache_key(user_id), encode_id_list(celebrity_ids), px=int(ttl_seconds * 1000))

    async def newest_below(self, keys: Sequence[str], upper_bound: bytes, limit: int) -> list[list[bytes]]:
        """For each key, its newest `limit` members below `upper_bound`, in one pipeline."""
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(key, upper_bound, b"-", desc=True, bylex=True, offset=0, num=limit)
        return await pipe.execute()

    async def drop_from_home(self, user_id: int, entries: Sequence[Entry]) -> None:
        if entries:
            await self._redis.zrem(home_key(user_id), *(encode_member(e.post_id, e.author_id) for e in entries))
