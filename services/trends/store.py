"""The trends service's Redis adapter: the only code that talks to Redis.

Keys (prefix "trends" in service; tests use their own):
  {trends}:b:<bucket>            sorted set hashtag -> distinct users counted in that bucket
  {trends}:u:<user>:<hashtag>    the bucket that user is counted in for that tag (a marker)
  {trends}:tmp:users, :tmp:score scratch sets of the read script, deleted before it returns

Both kinds expire when their bucket leaves the window (windows.Window.expire_at),
so nothing needs sweeping.

Redis Cluster: every key carries the one hash tag {trends}, so both scripts
touch a single slot and run unchanged on a cluster. That puts all trends
data on one node, on purpose: the buckets are few (one per 5 minutes) and
small, and the markers are one small key per distinct (user, tag) per hour,
bounded by the post rate, which one node absorbs many times over. The marker
must sit in the bucket's slot because the increment has to happen exactly
when the marker changes (one script, atomically) - that is what makes replays
and concurrent consumers count a user once. (A per-bucket HyperLogLog would
spread nothing either - PFADD and ZINCRBY must still be atomic together -
and could not move a user's count to a newer bucket.) Should it ever outgrow
a node, shard by hash(tag) into {trends:0}..{trends:N}: a tag lives in one
shard, so merging the shards' top lists stays exact.
"""
from __future__ import annotations

from typing import Sequence

import redis.asyncio as redis

from services.kit import redis_client
from services.kit.config import Settings
from services.trends.windows import Decision, TrendRow, Window

# Counts one post's tags for its author (windows.decide, atomically per call).
# KEYS: the window's buckets ending at the post's bucket, oldest first (so
#       KEYS[w] is the post's bucket), then one marker per tag.
# ARGV: w, the post's bucket, its expiry (unix s), then the tags (marker order).
# Reply: one windows.Decision value per tag.
_COUNT_LUA = """
local w = tonumber(ARGV[1])
local bucket = tonumber(ARGV[2])
local expire_at = ARGV[3]
local target = KEYS[w]
local replies = {}
for i = 4, #ARGV do
  local tag = ARGV[i]
  local marker = KEYS[w + i - 3]
  local previous = tonumber(redis.call('GET', marker) or '')
  local decision = 1
  if previous and previous >= bucket then
    decision = 0
  elseif previous and bucket - previous < w then
    decision = 2
    -- Take the user's count out of the older bucket; guarded so an evicted
    -- or expired bucket is never recreated with a negative count.
    local older = KEYS[w - (bucket - previous)]
    if redis.call('ZSCORE', older, tag) then
      if tonumber(redis.call('ZINCRBY', older, -1, tag)) <= 0 then redis.call('ZREM', older, tag) end
    end
  end
  if decision ~= 0 then
    redis.call('ZINCRBY', target, 1, tag)
    redis.call('EXPIREAT', target, expire_at)
    redis.call('SET', marker, bucket, 'EXAT', expire_at)
  end
  replies[#replies + 1] = decision
end
return replies
"""

# The top list of the window.
# KEYS: the window's buckets, oldest first, then the two scratch keys.
# ARGV: w, the w decay weights (oldest first), min users, limit.
# Reply: flat [tag, score, users, tag, score, users, ...], highest score first.
_TOP_LUA = """
local w = tonumber(ARGV[1])
local users_key, score_key = KEYS[w + 1], KEYS[w + 2]
local min_users, limit = tonumber(ARGV[w + 2]), tonumber(ARGV[w + 3])
-- Distinct users per tag: the plain sum (each user counts in one bucket).
local users_args = {'ZUNIONSTORE', users_key, w}
for i = 1, w do users_args[#users_args + 1] = KEYS[i] end
redis.call(unpack(users_args))
redis.call('ZREMRANGEBYSCORE', users_key, '-inf', '(' .. min_users)
local out = {}
if redis.call('ZCARD', users_key) > 0 then
  -- Decayed score, then kept only for the tags that passed the user filter.
  local score_args = {'ZUNIONSTORE', score_key, w}
  for i = 1, w do score_args[#score_args + 1] = KEYS[i] end
  score_args[#score_args + 1] = 'WEIGHTS'
  for i = 1, w do score_args[#score_args + 1] = ARGV[i + 1] end
  redis.call(unpack(score_args))
  redis.call('ZINTERSTORE', score_key, 2, score_key, users_key, 'WEIGHTS', 1, 0)
  local top = redis.call('ZREVRANGE', score_key, 0, limit - 1, 'WITHSCORES')
  for i = 1, #top, 2 do
    out[#out + 1] = top[i]
    out[#out + 1] = top[i + 1]
    out[#out + 1] = redis.call('ZSCORE', users_key, top[i])
  end
end
redis.call('DEL', users_key, score_key)
return out
"""


class TrendsStore:
    def __init__(self, settings: Settings, window: Window, *, prefix: str = "trends") -> None:
        self.window = window
        self.prefix = prefix
        self._redis: redis.Redis = redis_client.client(settings)
        # Run by EVALSHA, loaded again by redis-py if Redis lost them.
        self._count = self._redis.register_script(_COUNT_LUA)
        self._top = self._redis.register_script(_TOP_LUA)

    # -- keys (one hash tag for all of them; see the module docstring) --------

    def bucket_key(self, bucket: int) -> str:
        return f"{{{self.prefix}}}:b:{bucket}"

    def marker_key(self, user_id: int, tag: str) -> str:
        return f"{{{self.prefix}}}:u:{user_id}:{tag}"

    def _scratch_keys(self) -> list[str]:
        return [f"{{{self.prefix}}}:tmp:users", f"{{{self.prefix}}}:tmp:score"]

    # -- lifecycle -------------------------------------------------------------

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- writes and reads ------------------------------------------------------

    async def count(self, user_id: int, bucket: int, tags: Sequence[str]) -> list[Decision]:
        """Counts `user_id` for each tag in `bucket` (see windows.decide);
        idempotent: the same post applied again is all DUPLICATE."""
        if not tags:
            return []
        w = self.window.buckets
        keys = [self.bucket_key(b) for b in self.window.window_of(bucket)]
        keys += [self.marker_key(user_id, tag) for tag in tags]
        replies = await self._count(keys=keys, args=[w, bucket, self.window.expire_at(bucket), *tags])
        return [Decision(int(r)) for r in replies]

    async def top(self, current: int, limit: int) -> list[TrendRow]:
        """The window ending at bucket `current`: tags with at least
        min_users distinct users, by decayed score, at most `limit`."""
        keys = [self.bucket_key(b) for b in self.window.window_of(current)] + self._scratch_keys()
        weights = [repr(weight) for weight in self.window.weights()]
        flat = await self._top(keys=keys, args=[self.window.buckets, *weights, self.window.min_users, limit])
        return [TrendRow(hashtag=flat[i].decode(), score=float(flat[i + 1]), user_count=int(float(flat[i + 2])))
                for i in range(0, len(flat), 3)]

    async def bucket_counts(self, bucket: int) -> dict[str, int]:
        """One bucket's raw counts (for tests and operators)."""
        raw = await self._redis.zrange(self.bucket_key(bucket), 0, -1, withscores=True)
        return {tag.decode(): int(score) for tag, score in raw}
