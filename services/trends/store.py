"""The trends service's Redis adapter: the only code that talks to Redis.

Every key carries the one hash tag {trends} and expires after its (newest)
bucket leaves the window (windows.Window.expire_at), so nothing needs
sweeping and both scripts touch a single slot on Redis Cluster. The key
layout, why one slot is enough and how to shard if it is not:
services/trends/README.md.
"""

from __future__ import annotations

from typing import Sequence, cast

import redis.asyncio as redis

from services.kit.stores import redis_client
from services.kit.settings import Settings
from services.trends.windows import Decision, TrendRow, Window

# The bucket a user is counted in for a tag: the newest in their marker
# (post id -> bucket), nil when it is empty. Both scripts below start with it.
_NEWEST_LUA = """
local function newest(marker)
  local found = nil
  for _, b in ipairs(redis.call('HVALS', marker)) do
    b = tonumber(b)
    if found == nil or b > found then found = b end
  end
  return found
end
"""

# Counts one post's tags for its author (windows.decide, atomically per call).
# KEYS: the window's buckets ending at the post's bucket, oldest first (so
#       KEYS[w] is the post's bucket), then one marker per tag, then the
#       post's record.
# ARGV: w, the post's bucket, its expiry (unix s), the post id, then the tags
#       (marker order).
# Reply: one windows.Decision value per tag (all DUPLICATE for a post applied
#        before, or deleted since).
_COUNT_LUA = (
    _NEWEST_LUA
    + """
local w = tonumber(ARGV[1])
local bucket = tonumber(ARGV[2])
local expire_at = ARGV[3]
local post = ARGV[4]
local target = KEYS[w]
local record = KEYS[#KEYS]
local replies = {}
if redis.call('EXISTS', record) == 1 then
  for i = 5, #ARGV do replies[#replies + 1] = 0 end
  return replies
end
local tags = {}
for i = 5, #ARGV do
  local tag = ARGV[i]
  local marker = KEYS[w + i - 4]
  tags[#tags + 1] = tag
  local previous = newest(marker)
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
  -- Remembered even when it changes no count: should the newer post that
  -- holds the count be deleted, the count falls back to this one.
  redis.call('HSET', marker, post, bucket)
  if previous == nil or bucket > previous then redis.call('EXPIREAT', marker, expire_at) end
  if decision ~= 0 then
    redis.call('ZINCRBY', target, 1, tag)
    redis.call('EXPIREAT', target, expire_at)
  end
  replies[#replies + 1] = decision
end
redis.call('SET', record, bucket .. ' ' .. table.concat(tags, ' '), 'EXAT', expire_at)
return replies
"""
)

# Takes back what one deleted post counted (windows.removal, atomically).
# KEYS: the window's buckets ending at the current bucket, oldest first,
#       then one marker per tag of the post's record, then the record.
# ARGV: w, the current bucket, bucket seconds, the post id, the record as the
#       caller read it, then the tags (marker order).
# Reply: how many counts moved or went; -1 if the record changed meanwhile.
_UNCOUNT_LUA = (
    _NEWEST_LUA
    + """
local w = tonumber(ARGV[1])
local current = tonumber(ARGV[2])
local bucket_seconds = tonumber(ARGV[3])
local post = ARGV[4]
local record = KEYS[#KEYS]
if redis.call('GET', record) ~= ARGV[5] then return -1 end
local deleted = tonumber(string.match(ARGV[5], '^%d+'))
local oldest = current - w + 1
local changed = 0
for i = 6, #ARGV do
  local tag = ARGV[i]
  local marker = KEYS[w + i - 5]
  local counted_in = newest(marker)
  redis.call('HDEL', marker, post)
  local left = newest(marker)
  if counted_in ~= nil and counted_in == deleted and left ~= counted_in then
    if counted_in >= oldest then
      local from = KEYS[counted_in - oldest + 1]
      if redis.call('ZSCORE', from, tag) then
        if tonumber(redis.call('ZINCRBY', from, -1, tag)) <= 0 then redis.call('ZREM', from, tag) end
      end
    end
    if left ~= nil and left >= oldest then
      local to = KEYS[left - oldest + 1]
      redis.call('ZINCRBY', to, 1, tag)
      redis.call('EXPIREAT', to, (left + w + 1) * bucket_seconds)
      redis.call('EXPIREAT', marker, (left + w + 1) * bucket_seconds)
    end
    changed = changed + 1
  end
end
-- A tombstone for the rest of the record's life: a replayed creation of
-- this post (at-least-once delivery) counts nothing.
redis.call('SET', record, 'deleted', 'KEEPTTL')
return changed
"""
)

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
        self._uncount = self._redis.register_script(_UNCOUNT_LUA)
        self._top = self._redis.register_script(_TOP_LUA)

    # -- keys (one hash tag for all of them; see the module docstring) --------

    def bucket_key(self, bucket: int) -> str:
        return f"{{{self.prefix}}}:b:{bucket}"

    def marker_key(self, user_id: int, tag: str) -> str:
        return f"{{{self.prefix}}}:h:{user_id}:{tag}"

    def post_key(self, post_id: int) -> str:
        return f"{{{self.prefix}}}:p:{post_id}"

    def _scratch_keys(self) -> list[str]:
        return [f"{{{self.prefix}}}:tmp:users", f"{{{self.prefix}}}:tmp:score"]

    # -- lifecycle -------------------------------------------------------------

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- writes and reads ------------------------------------------------------

    async def count(self, user_id: int, post_id: int, bucket: int, tags: Sequence[str]) -> list[Decision]:
        """Counts the post's author for each tag in `bucket` (see windows.decide);
        idempotent: the same post applied again, or after its deletion, is all DUPLICATE."""
        if not tags:
            return []
        w = self.window.buckets
        keys = [self.bucket_key(b) for b in self.window.window_of(bucket)]
        keys += [self.marker_key(user_id, tag) for tag in tags]
        keys.append(self.post_key(post_id))
        replies = await self._count(keys=keys, args=[w, bucket, self.window.expire_at(bucket), post_id, *tags])
        return [Decision(int(r)) for r in replies]

    async def uncount(self, user_id: int, post_id: int, current: int) -> int:
        """Takes back what a deleted post counted (see windows.removal);
        returns how many tag counts moved or went. Nothing for a post that
        counted nothing (no tags, too old) or was taken back already."""
        for _ in range(3):
            record = cast("bytes | None", await self._redis.get(self.post_key(post_id)))  # the client does not decode
            if record is None or record == b"deleted":
                return 0
            tags = record.decode().split(" ")[1:]
            keys = [self.bucket_key(b) for b in self.window.window_of(current)]
            keys += [self.marker_key(user_id, tag) for tag in tags]
            keys.append(self.post_key(post_id))
            changed = int(
                await self._uncount(
                    keys=keys, args=[self.window.buckets, current, self.window.bucket_seconds, post_id, record, *tags]
                )
            )
            if changed >= 0:
                return changed
            # The record changed between the read and the script: read it again.
        raise RuntimeError(f"post {post_id}: its trends record kept changing")

    async def top(self, current: int, limit: int) -> list[TrendRow]:
        """The window ending at bucket `current`: tags with at least
        min_users distinct users, by decayed score, at most `limit`."""
        keys = [self.bucket_key(b) for b in self.window.window_of(current)] + self._scratch_keys()
        weights = [repr(weight) for weight in self.window.weights()]
        flat = await self._top(keys=keys, args=[self.window.buckets, *weights, self.window.min_users, limit])
        return [
            TrendRow(hashtag=flat[i].decode(), score=float(flat[i + 1]), user_count=int(float(flat[i + 2])))
            for i in range(0, len(flat), 3)
        ]

    async def bucket_counts(self, bucket: int) -> dict[str, int]:
        """One bucket's raw counts (for tests and operators)."""
        raw = await self._redis.zrange(self.bucket_key(bucket), 0, -1, withscores=True)
        # With scores, a client that does not decode answers (member bytes, score) pairs.
        return {tag.decode(): int(score) for tag, score in cast("list[tuple[bytes, float]]", raw)}
