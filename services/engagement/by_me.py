"""A Redis cache of which posts each user liked or reposted, so liked_by_me
and reposted_by_me cost no Cassandra read.

One hash per reader and kind, `eng:lk:{user_id}` (liked) or `eng:rp:{user_id}`
(reposted): post id -> "1" yes or "0" no longer, and `_floor`, below which
the hash is incomplete and the kind's Cassandra index (likes_by_user,
reposts_by_user) is asked. Writers set a post's field whether or not the
hash is loaded and a load only fills fields nobody has set, so a load racing
a like or an unrepost cannot undo it (hence "0" rather than a deleted field).
The whole layout: services/engagement/README.md, "likedByMe and repostedByMe".

A hash also names the Redis epoch it was written in (`_ep`,
kit/stores/redis_epoch.py): a promoted replica may lack a like or unrepost
its master acknowledged, so a hash of another epoch is dropped by the next
writer or reloaded whole by the next reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from prometheus_client import Counter

from services.engagement.store import EngagementStore
from services.kit.peers import engagement_reads
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch

LOADS = Counter(
    "aviary_engagement_by_me_loads_total", "Per-user liked or reposted hashes loaded from Cassandra", ["kind"]
)
FALLBACKS = Counter(
    "aviary_engagement_by_me_fallbacks_total", "liked_by_me or reposted_by_me lookups below the cached floor", ["kind"]
)

# ARGV: field, value, ttl, max fields, epoch. Sets the field (in a hash of
# this epoch: another's is dropped first); a hash grown too big is dropped
# (the next read reloads the newest entries).
_SET = """
if redis.call('HGET', KEYS[1], '_ep') ~= ARGV[5] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], '_ep', ARGV[5])
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

# ARGV: ttl, floor, epoch, n loaded, the n loaded post ids, then the asked
# ids. Fills only unset fields (writers win) of a hash of this epoch (another
# epoch's is dropped first), marks the hash loaded, and answers the floor and
# the asked ids as they now stand.
_LOAD = """
if redis.call('HGET', KEYS[1], '_ep') ~= ARGV[3] then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('HSETNX', KEYS[1], ARGV[i], '1') end
redis.call('HSETNX', KEYS[1], '_floor', ARGV[2])
redis.call('HSET', KEYS[1], '_ep', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local out = {redis.call('HGET', KEYS[1], '_floor')}
for i = 5 + n, #ARGV do out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) end
return out
"""


@dataclass(frozen=True)
class Kind:
    """What a user did to a post: its name (the metrics' label and the
    store's per-user index, EngagementStore.USER_INDEXES) and its key tag."""

    name: str
    tag: str

    def key(self, user_id: int) -> str:
        return engagement_reads.marks_key(self.tag, user_id)


LIKED = Kind("liked", engagement_reads.LIKED_TAG)
REPOSTED = Kind("reposted", engagement_reads.REPOSTED_TAG)


def liked_key(user_id: int) -> str:
    return LIKED.key(user_id)


def reposted_key(user_id: int) -> str:
    return REPOSTED.key(user_id)


class ByMeCache:
    """One kind's per-user hashes (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        store: EngagementStore,
        epoch: RedisEpoch,
        kind: Kind,
        *,
        bulk: BulkRedis,
        load_size: int,
        ttl_seconds: int,
    ) -> None:
        self.client = client
        # Loads go in bulk, as the reads do: a cold start loads a hash for
        # every reader at once, and one pool connection each ran redis-py's
        # pool dry.
        self.bulk = bulk
        self.store = store
        # Hashes are read and written in the last epoch known (while a master
        # cannot be asked, the others' hashes stay usable).
        self.epoch = epoch
        self.kind = kind
        self.load_size = load_size
        self.ttl_seconds = ttl_seconds
        self._set = client.register_script(_SET)

    async def record(self, user_id: int, post_id: int, present: bool) -> None:
        """Called after the user's index row changed in Cassandra."""
        await self._set(
            keys=[self.kind.key(user_id)],
            args=[post_id, "1" if present else "0", self.ttl_seconds, 2 * self.load_size + 2, self.epoch.last_known],
        )

    async def forget(self, user_id: int) -> None:
        """Drops the user's hash (a deleted account's)."""
        await self.client.delete(self.kind.key(user_id))

    def read_command(self, user_id: int, post_ids: list[int]) -> tuple:
        """The lookup, for a bulk round trip it shares with the counts and the other kinds."""
        return engagement_reads.marks_read(self.kind.tag, user_id, post_ids)

    async def finish_read(self, user_id: int, post_ids: list[int], row: list) -> set[int]:
        """The subset of post_ids the user liked (or reposted), given the answer to read_command."""
        floor, epoch, values = row[0], row[1], list(row[2:])
        if floor is None or epoch != self.epoch.last_known:
            floor, values = await self._load_and_read(user_id, post_ids)
        floor = int(floor)
        found = {p for p, v in zip(post_ids, values) if v == b"1"}
        older = [p for p, v in zip(post_ids, values) if v is None and p < floor]
        if older:
            FALLBACKS.labels(self.kind.name).inc()
            found |= await self.store.posts_among(self.kind.name, user_id, older)
        return found

    async def _load_and_read(self, user_id: int, post_ids: list[int]) -> tuple[bytes, list]:
        newest = await self.store.newest_posts(self.kind.name, user_id, self.load_size)
        # A full load may have cut off older entries; below its oldest post
        # the hash is not the whole truth.
        floor = min(newest) if len(newest) >= self.load_size else 0
        LOADS.labels(self.kind.name).inc()
        call = (1, self.kind.key(user_id), self.ttl_seconds, floor, self.epoch.last_known, len(newest))
        [row] = await self.bulk.eval_each(_LOAD, [(*call, *newest, *post_ids)], idempotent=True)
        return row[0], list(row[1:])
