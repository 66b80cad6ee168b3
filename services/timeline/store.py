"""The timeline service's Redis adapter: the only code that talks to Redis.

Keys (hash-tagged for Redis Cluster, see entries.py for the member format):
  timeline:{user}
                 home timeline, newest `timeline_max_entries` kept; exists only
                 while the user is active
  active:{user}  present while the user is active; deliveries skip users
                 without it, and a read that finds it missing rebuilds
  authored:{author}
                 author's recent posts, newest `author_index_max_entries` kept
  celebs:{user}  the user's followed celebrities, a cache of graph's answer,
                 forgotten whenever it may change (the user follows or
                 unfollows, a followed author crosses the celebrity threshold)
  celebsgen:{user}
                 bumped each time celebs:{user} is forgotten, so an answer
                 graph gave before that is never cached after it
  unfollowed:{user}:author
                 present for UNFOLLOW_MARK_SECONDS after the user unfollowed
                 the author, until they follow again; deliveries of the
                 author's posts to the user are dropped meanwhile
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence, cast

import redis.asyncio as redis
from redis.exceptions import ResponseError

from services.kit.events.live import publish_command
from services.kit.stores import redis_bulk, redis_client
from services.kit.stores.redis_epoch import RedisEpoch
from services.kit.settings import Settings
from services.timeline.entries import (
    Entry,
    Stored,
    author_fingerprint,
    author_key,
    celebrity_cache_key,
    celebrity_generation_key,
    decode_id_list,
    decode_member,
    earlier_range,
    encode_id_list,
    entry_member,
    home_key,
    legacy_author_key,
    member_forms,
    oldest_per_original,
    post_prefix,
    with_siblings,
    seen_key,
    unfollowed_key,
)
from services.timeline.live import author_channel, home_channel

# How many of a newly followed author's recent posts a follow copies in.
BACKFILL_ENTRIES = 50

# How long an unfollow's mark lasts: longer than any delivery can take
# (fanout's stream deadline, AVIARY_FANOUT_STREAM_TIMEOUT_SECONDS, 120 s by
# default), since a delivery may carry a follower list read before the unfollow.
UNFOLLOW_MARK_SECONDS = 600

# Every sorted set here keeps its newest members first (entries.py), so a
# trim to the newest N removes ranks N and on.

# Deliveries of one entry, each to one user atomically: only to an active
# user (seen present) who has not just unfollowed the author (unfollowed
# absent), trimmed to the newest ARGV[2], announced to live readers. A
# timeline this creates expires with the activity mark.
# KEYS: home, seen, unfollowed of each user in turn. ARGV: member, max
# entries, then each user's live channel. Returns 1 per user delivered to, 0
# per user not.
# It runs for every follower of every post, so it makes as few calls as it
# can: many users per script call (redis_bulk.eval_batched), all their
# marks in one MGET, and the size alone tells a timeline it just created.
_DELIVER_LUA = """
local member, max = ARGV[1], tonumber(ARGV[2])
local users = #KEYS / 3
local mark_keys = {}
for i = 1, users do
  mark_keys[2 * i - 1], mark_keys[2 * i] = KEYS[3 * i - 1], KEYS[3 * i]
end
local marks = redis.call('MGET', unpack(mark_keys))
local delivered = {}
for i = 1, users do
  -- Never after an unfollow's purge: this delivery's follower list may predate it.
  if marks[2 * i - 1] and not marks[2 * i] then
    local home, seen = KEYS[3 * i - 2], KEYS[3 * i - 1]
    redis.call('ZADD', home, 0, member)
    local size = redis.call('ZCARD', home)
    if size == 1 then
      local ttl = redis.call('PTTL', seen)
      if ttl > 0 then redis.call('PEXPIRE', home, ttl) end
    end
    if size > max then
      redis.call('ZREMRANGEBYRANK', home, max, -1)
    end
    redis.call('PUBLISH', ARGV[i + 2], member)
    delivered[i] = 1
  else
    delivered[i] = 0
  end
end
return delivered
"""

# Adds members to an active user's timeline (inactive: nothing; their
# timeline is rebuilt when they return), unless the optional KEYS[3] (an
# unfollow's mark of the members' author) is present.
# KEYS: home, seen[, unfollowed]. ARGV: max, members...
_ADD_IF_ACTIVE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if #KEYS > 2 and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
if redis.call('PTTL', KEYS[1]) == -1 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], ARGV[1], -1)
return #ARGV - 1
"""

# How long a celebrity-list generation outlives its last bump. A cached list
# lives at most half as long (CELEBRITY_CACHE_MAX_SECONDS), so a generation
# never expires (and restarts from nothing) while a list cached under an
# older one is still held.
CELEBRITY_GENERATION_SECONDS = 86_400
CELEBRITY_CACHE_MAX_SECONDS = CELEBRITY_GENERATION_SECONDS / 2

# Forgets a user's cached celebrity list and bumps its generation.
# KEYS: celebs, celebsgen. ARGV: generation lifetime in ms.
_FORGET_CELEBRITIES_LUA = """
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 0
"""

# Caches a user's celebrity list only if its generation is still the one
# read before graph was asked (a follow, unfollow or threshold crossing in
# between makes that answer possibly stale). KEYS: celebs, celebsgen.
# ARGV: generation read ("" for none), encoded list, TTL in ms.
_CACHE_CELEBRITIES_LUA = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# Removes, in one atomic step on one key, every member whose author
# fingerprint (bytes 9 to 12, after the post id) is ARGV[1], forgets the reader's cached
# celebrity list (KEYS[2], its generation KEYS[3]; same slot) and marks the
# pair unfollowed (KEYS[4], for ARGV[3] ms). ARGV[2]: the generation
# lifetime in ms. Returns the removed members.
_PURGE_AUTHOR_LUA = """
redis.call('DEL', KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
local fp = ARGV[1]
local removed = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 9, 12) == fp then
    redis.call('ZREM', KEYS[1], member)
    removed[#removed + 1] = member
  end
end
return removed
"""


# A follow: lifts the pair's unfollow mark (KEYS[5]), forgets the reader's
# cached celebrity list (KEYS[3], its generation KEYS[4]) and copies the
# author's recent posts (ARGV[3]...) into the timeline of an active reader,
# trimmed to the newest ARGV[2]. KEYS: home, seen, celebs, celebsgen,
# unfollowed. ARGV: generation lifetime in ms, max entries, members...
# Returns how many members were copied.
_FOLLOWED_LUA = """
redis.call('DEL', KEYS[5])
redis.call('DEL', KEYS[3])
redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ARGV[1])
if #ARGV < 3 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
if redis.call('PTTL', KEYS[1]) == -1 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], ARGV[2], -1)
return #ARGV - 2
"""

# For each (original, repost) pair, one per original, the members of one
# source that show the original before the repost: the original itself (its
# key first) or a pure repost of it (its key last), older than the repost,
# oldest first, at most ARGV[1] of them. One pass over the range that spans
# every pair, whatever their number, from its oldest end. Keys are compared
# as two unsigned 32-bit halves (Lua's string order follows the server's
# locale); a larger key is an older post. Reads only. KEYS: a timeline or
# author index. ARGV: cap, the BYLEX bounds of the whole range (max, then
# min), then each pair's original and repost key (8 bytes each).
# Returns one list of members per pair.
_EARLIER_OCCURRENCES_LUA = """
local cap = tonumber(ARGV[1])
local wanted, out = {}, {}
for i = 4, #ARGV, 2 do
  local hi, lo = struct.unpack('>I4I4', ARGV[i + 1])
  out[#out + 1] = {}
  wanted[ARGV[i]] = {out[#out], hi, lo}
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3], 'BYLEX', 'REV')) do
  local pair = wanted[string.sub(m, 1, 8)]
  if pair == nil and #m == 20 then pair = wanted[string.sub(m, 13, 20)] end
  if pair ~= nil and #pair[1] < cap then
    local hi, lo = struct.unpack('>I4I4', m)
    if hi > pair[2] or (hi == pair[2] and lo > pair[3]) then
      pair[1][#pair[1] + 1] = m
    end
  end
end
return out
"""

# Stores a member again in another form, only where the old form is held
# (a member removed meanwhile is not brought back). KEYS: the sorted set.
# ARGV: old member, new member. Returns 1 when replaced.
_REPLACE_MEMBER_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 0, ARGV[2])
return 1
"""

# Moves an author index kept oldest first (entries.legacy_author_key) to
# its newest-first key, atomically: each member's keys turned around (a key
# is 2^64 - 1 minus the id, so every byte b becomes 255 - b), added to what
# was written there meanwhile, trimmed, the old key deleted.
# KEYS: legacy, current. ARGV: max entries. Returns the members moved.
_MOVE_LEGACY_AUTHOR_INDEX_LUA = """
local function turned(key)
  return (string.gsub(key, '.', function(c) return string.char(255 - string.byte(c)) end))
end
local moved = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if #m == 12 or #m == 20 then
    local member = turned(string.sub(m, 1, 8)) .. string.sub(m, 9, 12)
    if #m == 20 then member = member .. turned(string.sub(m, 13, 20)) end
    redis.call('ZADD', KEYS[2], 0, member)
    moved = moved + 1
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], ARGV[1], -1)
redis.call('DEL', KEYS[1])
return moved
"""

# Earlier occurrences returned per repost and source: the oldest few are
# enough (more only matter when all of these are deleted or hidden).
EARLIER_OCCURRENCES_CAP = 8


class TimelineStore:
    def __init__(self, settings: Settings) -> None:
        self.timeline_max = settings.timeline_max_entries
        self.author_index_max = settings.author_index_max_entries
        self._redis: redis.Redis = redis_client.client(settings)
        # Which history Redis follows: cached celebrity lists count within one.
        self.redis_epoch = RedisEpoch(self._redis)
        # Deliveries: tens of script calls per fanout batch (see redis_bulk).
        self._bulk = redis_bulk.BulkRedis(settings.redis_url)
        # On a cluster a delivery announces itself on its shard (SPUBLISH).
        self._deliver = _DELIVER_LUA.replace("'PUBLISH'", f"'{publish_command(self._redis)}'")
        self._add_if_active = self._redis.register_script(_ADD_IF_ACTIVE_LUA)
        self._purge_author = self._redis.register_script(_PURGE_AUTHOR_LUA)
        self._followed = self._redis.register_script(_FOLLOWED_LUA)
        self._forget_celebrities = self._redis.register_script(_FORGET_CELEBRITIES_LUA)
        self._cache_celebrities = self._redis.register_script(_CACHE_CELEBRITIES_LUA)
        self._earlier_occurrences = self._redis.register_script(_EARLIER_OCCURRENCES_LUA)
        self._replace_member = self._redis.register_script(_REPLACE_MEMBER_LUA)
        self._move_legacy_author_index = self._redis.register_script(_MOVE_LEGACY_AUTHOR_INDEX_LUA)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    @property
    def bulk(self) -> redis_bulk.BulkRedis:
        """The hiredis connections (redis_bulk), for other readers of the same Redis."""
        return self._bulk

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._bulk.close()
        await self._redis.aclose()

    # -- deliveries ---------------------------------------------------------------

    async def add_to_homes(self, entry: Entry, user_ids: Sequence[int]) -> int:
        """Adds the entry to every listed ACTIVE user's timeline, in one round
        trip; returns how many were active (and got it)."""
        replies = await self._bulk.eval_batched(
            self._deliver,
            [
                (
                    (home_key(user_id), seen_key(user_id), unfollowed_key(user_id, entry.author_id)),
                    (home_channel(user_id),),
                )
                for user_id in user_ids
            ],
            (entry_member(entry), self.timeline_max),
            idempotent=True,
        )
        return sum(replies)

    async def _evalsha_each(self, script, calls: Iterable[tuple]) -> list:
        """One EVALSHA of `script` per argument tuple (numkeys, keys, args), all
        in one bulk round trip (see redis_bulk); returns the replies. The
        scripts run this way are idempotent, so a batch on a connection Redis
        closed is sent again."""
        return await self._bulk.eval_each(script.script, calls, idempotent=True)

    async def remove_from_homes(self, entry: Entry, user_ids: Sequence[int]) -> None:
        members = member_forms(entry)
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zrem(home_key(user_id), *members)
        await pipe.execute()

    async def add_to_author_index(self, entry: Entry) -> None:
        key = author_key(entry.author_id)
        member = entry_member(entry)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {member: 0})
        pipe.zremrangebyrank(key, self.author_index_max, -1)
        pipe.execute_command(publish_command(self._redis), author_channel(entry.author_id), member)
        await pipe.execute()

    async def remove_from_author_index(self, entry: Entry) -> None:
        await self._redis.zrem(author_key(entry.author_id), *member_forms(entry))

    # -- follows --------------------------------------------------------------------

    async def backfill(self, user_id: int, author_id: int, *, copy: bool = True) -> int:
        """One follow (see backfill_many)."""
        return await self.backfill_many([(user_id, author_id)], {author_id} if copy else set())

    async def backfill_many(self, follows: Sequence[tuple[int, int]], copy_from: set[int]) -> int:
        """For each (user, author) followed: lifts the pair's unfollow mark,
        forgets the user's cached celebrity list (the author may be a
        celebrity) and, for authors in `copy_from`, copies their newest posts
        into the user's timeline (unless the user is inactive: their timeline
        is rebuilt from scratch when they return). Returns entries copied.

        Author indexes and timelines are in different cluster slots, so this
        is read-then-write: one bulk read, one bulk write, each step idempotent.
        """
        if not follows:
            return 0
        authors = sorted(copy_from & {author for _, author in follows})
        indexes = await self._bulk.read(
            [(b"ZRANGE", author_key(a), b"0", str(BACKFILL_ENTRIES - 1).encode()) for a in authors]
        )
        members = dict(zip(authors, indexes))
        generation_ms = str(_GENERATION_MS).encode()
        max_entries = str(self.timeline_max).encode()
        replies = await self._evalsha_each(
            self._followed,
            (
                (
                    b"5",
                    home_key(user_id),
                    seen_key(user_id),
                    *_celebrity_keys(user_id),
                    unfollowed_key(user_id, author_id),
                    generation_ms,
                    max_entries,
                    *members.get(author_id, ()),
                )
                for user_id, author_id in follows
            ),
        )
        return sum(replies)

    async def purge_author(self, user_id: int, author_id: int) -> list[bytes]:
        """One unfollow (see purge_many)."""
        return (await self.purge_many([(user_id, author_id)]))[0]

    async def purge_many(self, unfollows: Sequence[tuple[int, int]]) -> list[list[bytes]]:
        """For each (user, author) unfollowed: removes the members carrying
        the author's fingerprint, forgets the user's cached celebrity list
        and marks the pair, so that no delivery of the author's posts lands
        for UNFOLLOW_MARK_SECONDS; returns the removed members, per pair."""
        generation_ms = str(_GENERATION_MS).encode()
        mark_ms = str(UNFOLLOW_MARK_SECONDS * 1000).encode()
        replies = await self._evalsha_each(
            self._purge_author,
            (
                (
                    b"4",
                    home_key(user_id),
                    *_celebrity_keys(user_id),
                    unfollowed_key(user_id, author_id),
                    author_fingerprint(author_id),
                    generation_ms,
                    mark_ms,
                )
                for user_id, author_id in unfollows
            ),
        )
        return [list(removed) for removed in replies]

    async def author_index_members(self, author_id: int) -> list[bytes]:
        # Without scores, a client that does not decode answers the members as bytes.
        return cast("list[bytes]", await self._redis.zrange(author_key(author_id), 0, -1))

    async def apply_author_status(self, author_id: int, user_ids: Sequence[int], members: Sequence[bytes]) -> int:
        """Drops each user's cached celebrity list and copies `members` (the
        author's) into the active ones' timelines, except where the user has
        just unfollowed the author; returns how many entries were copied."""
        generation_ms = str(_GENERATION_MS).encode()
        await self._evalsha_each(
            self._forget_celebrities, ((b"2", *_celebrity_keys(user_id), generation_ms) for user_id in user_ids)
        )
        if not members:
            return 0
        max_entries = str(self.timeline_max).encode()
        replies = await self._evalsha_each(
            self._add_if_active,
            (
                (
                    b"3",
                    home_key(user_id),
                    seen_key(user_id),
                    unfollowed_key(user_id, author_id),
                    max_entries,
                    *members,
                )
                for user_id in user_ids
            ),
        )
        return sum(replies)

    async def add_members_many(self, puts: Sequence[tuple[int, int, Sequence[bytes]]]) -> None:
        """Puts members back (a purge that caught another author's posts):
        each (user, the members' author, members) in one round trip, unless
        the user has just unfollowed that author too."""
        max_entries = str(self.timeline_max).encode()
        calls = [
            (b"3", home_key(user_id), seen_key(user_id), unfollowed_key(user_id, author_id), max_entries, *members)
            for user_id, author_id, members in puts
            if members
        ]
        if calls:
            await self._evalsha_each(self._add_if_active, calls)

    # -- activity -------------------------------------------------------------------

    async def mark_active(self, user_id: int, ttl_seconds: int) -> None:
        """The user is active for `ttl_seconds` more; so is their timeline."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(seen_key(user_id), b"1", ex=ttl_seconds)
        pipe.expire(home_key(user_id), ttl_seconds)
        await pipe.execute()

    async def is_active(self, user_id: int) -> bool:
        return bool(await self._redis.exists(seen_key(user_id)))

    async def rebuild(self, user_id: int, members: Sequence[bytes], ttl_seconds: int) -> None:
        """Fills a returning user's timeline (already marked active) with members."""
        key = home_key(user_id)
        pipe = self._redis.pipeline(transaction=False)
        if members:
            # Oldest first: a listpack insert walks from the head to the
            # member's place, so each then lands at the head at once; newest
            # first, each walked past all the others (three times the CPU).
            pipe.zadd(key, {m: 0 for m in sorted(members, reverse=True)})
            pipe.zremrangebyrank(key, self.timeline_max, -1)
        pipe.expire(key, ttl_seconds)
        await pipe.execute()

    # -- reads ------------------------------------------------------------------------

    async def cached_celebrities(self, user_id: int) -> tuple[list[int] | None, bytes]:
        """The user's followed celebrities as last cached (None when not
        cached), and the cache's generation: pass it to cache_celebrities."""
        values = await self._redis.mget(_celebrity_keys(user_id))
        return self._decoded_celebrities(*cast("list[bytes | None]", values))  # the client does not decode

    async def cache_celebrities(
        self, user_id: int, celebrity_ids: Sequence[int], ttl_seconds: float, generation: bytes
    ) -> bool:
        """Caches graph's answer unless the list was forgotten since
        `generation` was read, or Redis failed over since (its generation may
        have gone back); True when cached."""
        epoch, _, generation = generation.partition(b"|")
        if not epoch or epoch != self.redis_epoch.current:
            return False
        ttl_ms = int(min(ttl_seconds, CELEBRITY_CACHE_MAX_SECONDS) * 1000)
        return bool(
            await self._cache_celebrities(
                keys=_celebrity_keys(user_id),
                args=[generation, epoch + b"|" + encode_id_list(celebrity_ids), ttl_ms],
            )
        )

    def _decoded_celebrities(self, raw: bytes | None, generation: bytes | None) -> tuple[list[int] | None, bytes]:
        """An MGET of _celebrity_keys as (list or None when not cached, generation).

        A list counts only when cached in the Redis epoch this read ended in,
        and the generation returned carries that epoch (b"" while it is
        unknown: nothing is cached then)."""
        epoch = self.redis_epoch.current
        if epoch is None:
            return None, b""
        held, _, encoded = (raw or b"").partition(b"|")
        celebrities = decode_id_list(encoded) if raw is not None and held == epoch else None
        return celebrities, epoch + b"|" + (generation or b"")

    async def newest_from(self, keys: Sequence[str], start: bytes, limit: int) -> list[list[bytes]]:
        """For each key, its newest `limit` members from `start` (entries.lex_start) on, in one round trip."""
        if not keys:
            return []
        return await self._bulk.read([_newest_from(key, start, limit) for key in keys])

    async def first_read(
        self,
        user_id: int,
        start: bytes,
        limit: int,
        likely_celebrities: Sequence[int] = (),
        also: Sequence[tuple] = (),
    ) -> FirstRead:
        """What a home read needs before it knows the followed celebrities,
        in one round trip: the cached celebrity list with its generation,
        whether the user is active, and the newest members from `start`
        (entries.lex_start) on of their timeline, of their own author index and of
        each likely celebrity's index (the list the reader's last read used:
        usually the list itself, so no second round trip is needed).
        `also`: other reads for the same round trip; their replies come back
        in FirstRead.also."""
        cached, active, home, own, *rest = await self._bulk.read(
            [
                (b"MGET", *_celebrity_keys(user_id)),
                (b"EXISTS", seen_key(user_id)),
                _newest_from(home_key(user_id), start, limit),
                _newest_from(author_key(user_id), start, limit),
                *also,
                *(_newest_from(author_key(c), start, limit) for c in likely_celebrities),
            ]
        )
        celebrities, generation = self._decoded_celebrities(*cached)
        return FirstRead(
            active=bool(active),
            pages=[home, own],
            celebrities=celebrities,
            generation=generation,
            celebrity_pages=dict(zip(likely_celebrities, rest[len(also) :])),
            also=rest[: len(also)],
        )

    async def drop_from_home(self, user_id: int, members: Sequence[bytes]) -> None:
        if members:
            await self._redis.zrem(home_key(user_id), *members)

    async def holding(self, wanted: Sequence[tuple[Entry, int]]) -> list[bool]:
        """For each (entry, user), whether the user's home timeline holds the
        entry, in one round trip."""
        if not wanted:
            return []
        scores = await self._bulk.read([(b"ZSCORE", home_key(user_id), entry_member(e)) for e, user_id in wanted])
        return [score is not None for score in scores]

    async def earlier_occurrences(self, keys: Sequence[str], reposts: Sequence[Stored]) -> dict[int, list[Stored]]:
        """For each pure repost, the members of any of `keys` that show its
        original before it (entries.earlier_range), in one round trip: looked
        up for the oldest repost of each original, the rest follow from it
        (entries.with_siblings)."""
        lookups = oldest_per_original(reposts)
        if not keys or not lookups:
            return {}
        ranges = [earlier_range(repost) for repost in lookups]
        args = [str(EARLIER_OCCURRENCES_CAP).encode(), max(high for _, high in ranges), min(low for low, _ in ranges)]
        for repost in lookups:
            args += [post_prefix(repost.original_id), post_prefix(repost.post_id)]
        replies = await self._evalsha_each(self._earlier_occurrences, ((b"1", key, *args) for key in keys))
        found: dict[int, list[Stored]] = {}
        for per_key in replies:
            for repost, members in zip(lookups, per_key):
                for member in members:
                    found.setdefault(repost.post_id, []).append(decode_member(member))
        return with_siblings(reposts, found)

    async def replace_members(self, replacements: Sequence[tuple[str, bytes, bytes]]) -> int:
        """(key, old member, new member): each replaced where the old one is
        still held, in one round trip; returns how many were."""
        if not replacements:
            return 0
        replies = await self._evalsha_each(
            self._replace_member, ((b"1", key, old, new) for key, old, new in replacements)
        )
        return sum(replies)

    # -- account deletion -------------------------------------------------------------

    async def forget_account(self, user_id: int) -> None:
        """Deletes every key kept for a deleted account: its timeline,
        activity mark, cached celebrity list and generation, and its own
        recent-post index (its posts are deleted by the posts service, whose
        tombstones remove them from followers' timelines). Idempotent."""
        await self._redis.unlink(home_key(user_id), seen_key(user_id), *_celebrity_keys(user_id), author_key(user_id))

    # -- keys kept before members sorted newest first ---------------------------------

    async def move_legacy_author_indexes(self) -> tuple[int, int]:
        """Moves every author index still kept oldest first to its current
        key; returns (indexes, members) moved. Idempotent."""
        indexes = members = 0
        async for key in self._redis.scan_iter(match=LEGACY_AUTHOR_INDEXES, count=1000):
            author_id = _legacy_author(key)
            if author_id is not None:
                members += await self._move_legacy_author_index(
                    keys=[key, author_key(author_id)], args=[self.author_index_max]
                )
                indexes += 1
        return indexes, members

    async def forget_legacy_timelines(self) -> int:
        """Deletes the timelines and activity marks kept before members sorted
        newest first (their readers are rebuilt on their next read, under the
        current keys; these would only expire with their activity); returns
        how many keys went. Idempotent."""
        forgotten = 0
        for pattern in LEGACY_TIMELINE_KEYS:
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    forgotten += await self._unlink_each(batch)
                    batch = []
            forgotten += await self._unlink_each(batch)
        return forgotten

    async def _unlink_each(self, keys: list[bytes]) -> int:
        # One key per command: on a cluster the keys are in different slots.
        replies = await self._bulk.execute([(b"UNLINK", key) for key in keys]) if keys else []
        _raise_errors(replies, "deletes")
        return sum(replies)

    # -- bulk (python -m services.timeline.load) ------------------------------------

    async def mark_many_active(self, user_ids: Sequence[int], ttl_seconds: int) -> None:
        """mark_active for many users in one round trip (their timelines are not rebuilt)."""
        ttl = str(ttl_seconds).encode()
        commands: list[tuple[bytes | str, ...]] = []
        for user_id in user_ids:
            commands.append((b"SET", seen_key(user_id), b"1", b"EX", ttl))
            commands.append((b"EXPIRE", home_key(user_id), ttl))
        _raise_errors(await self._bulk.execute(commands), "activity marks")

    async def forget_users(self, user_ids: Sequence[int]) -> None:
        """Deletes every key kept for these readers (timeline, activity mark,
        cached celebrity list and its generation) in one round trip. Their own
        posts' author indexes stay: those belong to the posts."""
        replies = await self._bulk.execute(
            [(b"UNLINK", home_key(u), seen_key(u), *_celebrity_keys(u)) for u in user_ids]
        )
        _raise_errors(replies, "deletes")


_GENERATION_MS = CELEBRITY_GENERATION_SECONDS * 1000

# The keys kept before members sorted newest first (entries.legacy_author_key).
LEGACY_AUTHOR_INDEXES = "aidx:{*}"
LEGACY_TIMELINE_KEYS = ("home:{*}", "seen:{*}")


def _legacy_author(key: bytes) -> int | None:
    """The author of a legacy author index key, None for any other key."""
    try:
        author_id = int(key[len(b"aidx:{") : -1])
    except ValueError:
        return None
    return author_id if legacy_author_key(author_id).encode() == key else None


@dataclass(frozen=True)
class FirstRead:
    """The first round trip of a home read (see TimelineStore.first_read)."""

    active: bool
    pages: list[list[bytes]]  # the timeline's, then the user's own author index's
    celebrities: list[int] | None  # None: not cached
    generation: bytes  # for cache_celebrities
    # The likely celebrities' pages, read in the same round trip.
    celebrity_pages: dict[int, list[bytes]] = field(default_factory=dict)
    also: list = field(default_factory=list)  # the replies to first_read's `also`


def _newest_from(key: str, start: bytes, limit: int) -> tuple:
    """ZRANGE for the first `limit` members from `start` on (members sort newest first)."""
    return (b"ZRANGE", key, start, b"+", b"BYLEX", b"LIMIT", b"0", str(limit).encode())


def _raise_errors(replies: list, what: str) -> None:
    errors = [r for r in replies if isinstance(r, redis_bulk.ReplyError)]
    if errors:
        raise ResponseError(f"{len(errors)} of {len(replies)} {what} failed: {errors[0]}")


def _celebrity_keys(user_id: int) -> list[str]:
    return [celebrity_cache_key(user_id), celebrity_generation_key(user_id)]
