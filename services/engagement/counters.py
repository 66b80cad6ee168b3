"""Hot engagement counters in Redis, flushed to Cassandra.

Each post's counts live in one Redis hash, `eng:c:{eng<set>}:<post_id>` with
fields l (likes), r (reposts), p (replies) and q (quotes). An applied edge
change increments it (only while the hash is present: an increment into a
missing hash would create counts that start from zero) and marks the post
dirty in one of DIRTY_SETS sets, `eng:dirty:{eng<set>}`, chosen by the post:
the hash and its set share a hash tag, so the script that does both keeps to
one Redis Cluster slot. A flusher copies dirty posts' counts into Cassandra's
post_counts every second, from the sets this process marked since its last
round, and from every set every FULL_FLUSH_SECONDS (marks another engagement
process left, or this one before a restart): an idle flusher asks nothing.

A hash missing from Redis (never loaded, expired, or lost with a Redis
restart or flush) is loaded from the Cassandra snapshot, unless the post's
engagement changed shortly before that snapshot was taken or after it: then
an increment may not be in the snapshot, and the counts are recounted from
the edge tables instead. Every edge change records its time in Cassandra
before it touches Redis, so losing Redis loses no count.

A recount may run while a change is being written, and then may or may not
hold it. So a recounted hash keeps when its recount began and ended (`rs`,
`re`, Redis time) and a change brings when its edge write began: a recount
that ended before then lacks the change (increment), one that began after
the change's first look at the hash holds it (nothing to add), and one in
between is replaced by a fresh recount, unless an increment came in since
(`v`), when the change looks again.

A hash also keeps the Redis epoch it was loaded in (`ep`,
kit/stores/redis_epoch.py): after a failover the promoted replica may hold a
hash without its last increments, so a hash from another epoch counts as
missing (reloaded), and the flusher copies to Cassandra only hashes of the
epoch it confirmed after reading them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time

import redis.asyncio as redis
from prometheus_client import Counter, Histogram

from services.engagement.store import Counts, EngagementStore, Snapshot
from services.kit.peers.engagement_reads import DIRTY_SETS, count_read, count_value, counter_key, dirty_set
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch

log = logging.getLogger(__name__)

FIELDS = {"likes": "l", "reposts": "r", "replies": "p", "quotes": "q"}
FLUSH_BATCH = 500
FULL_FLUSH_SECONDS = 30.0

LOADS = Counter("aviary_engagement_counter_loads_total", "Counter hashes loaded into Redis", ["source"])
FLUSHED = Counter("aviary_engagement_counters_flushed_total", "Post counters flushed to Cassandra")
UNSETTLED = Counter(
    "aviary_engagement_counters_unsettled_total", "Changes that found their counter unsure too often (dropped)"
)
FLUSH_SECONDS = Histogram("aviary_engagement_flush_seconds", "Time to flush one round of dirty counters")

# What a change finds (_INCR's first answer).
APPLIED, HELD, MISSING, UNSURE = 1, 2, 0, 3
# Looks at most this often for a hash that settles (each look after the first
# follows a load or a recount).
ADD_ATTEMPTS = 8

_NOW_MS = """
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Applies one change to an existing hash whose counts lack it. KEYS: the
# counter, its dirty set (same slot). ARGV: field, delta, ttl, post id, when
# the change's edge write began, when the change first found the hash
# missing or unsure (0 on its first look). Answers {APPLIED, new value},
# {HELD}, {MISSING, now} or {UNSURE, now, v}; a hash of another Redis epoch
# (ARGV[7]) is missing. The dirty mark goes in the same script so a flush can
# never miss an applied increment.
_INCR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = redis.call('HMGET', KEYS[1], 'rs', 're', 'v', 'ep')
if base[4] ~= ARGV[7] then return {0, now} end
if tonumber(base[2] or '0') > tonumber(ARGV[5]) then
  local looked = tonumber(ARGV[6])
  if looked > 0 and tonumber(base[1]) >= looked then return {2} end
  return {3, now, base[3] or '0'}
end
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if v < 0 then redis.call('HSET', KEYS[1], ARGV[1], 0); v = 0 end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
return {1, v}
"""

# Installs loaded counts unless another loader (or an increment after one)
# got there first in this Redis epoch, and answers the counts as they now
# are. ARGV: likes, reposts, replies, quotes, ttl, when the recount began (0:
# a snapshot, which holds no change still being written), the epoch.
_LOAD = """
if redis.call('HGET', KEYS[1], 'ep') ~= ARGV[7] then
  local ended = 0
  if ARGV[6] ~= '0' then
    local t = redis.call('TIME')
    ended = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'l', ARGV[1], 'r', ARGV[2], 'p', ARGV[3], 'q', ARGV[4], 'rs', ARGV[6], 're', ended,
             'ep', ARGV[7])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return redis.call('HMGET', KEYS[1], 'l', 'r', 'p', 'q')
"""

# Replaces the hash with a recount unless an increment came in since the
# caller read `v` (ARGV[8]); 1 when replaced. ARGV as _LOAD's, then v.
_RELOAD = """
if redis.call('EXISTS', KEYS[1]) == 1 and (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[8] then
  return 0
end
local t = redis.call('TIME')
local ended = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'r', ARGV[2], 'p', ARGV[3], 'q', ARGV[4], 'rs', ARGV[6], 're', ended,
           'ep', ARGV[7])
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def dirty_key(index: int) -> str:
    return f"eng:dirty:{{eng{index}}}"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value


class HotCounters:
    def __init__(
        self,
        client: redis.Redis,
        store: EngagementStore,
        epoch: RedisEpoch,
        *,
        bulk: BulkRedis,
        ttl_seconds: int,
        flush_interval: float,
        trust_margin: float,
    ) -> None:
        self.client = client
        # Loads go in bulk: a cold page loads up to a page of counters at
        # once, and one pool connection each ran redis-py's pool dry.
        self.bulk = bulk
        self.store = store
        self.epoch = epoch
        self.ttl_seconds = ttl_seconds
        self.flush_interval = flush_interval
        # How long before a snapshot a change must have happened for the
        # snapshot to be trusted (covers the gap between the Cassandra mark
        # and the Redis increment, and clock skew between replicas).
        self.trust_margin = datetime.timedelta(seconds=trust_margin)
        self._incr = client.register_script(_INCR)
        self._reload = client.register_script(_RELOAD)
        self._now_ms = client.register_script(_NOW_MS)
        # Loads in flight, by post (_loads_of): each post's batch.
        self._loading: dict[int, asyncio.Future[dict[int, Counts]]] = {}
        # Dirty sets this process marked since its flusher last took them.
        self._marked: set[int] = set()
        self._full_flush_at = 0.0

    # -- writes -----------------------------------------------------------------

    async def clock(self, post_id: int) -> int:
        """Now in ms on the clock of the Redis node holding the post's counter:
        taken before a change's edge write, for `add`."""
        return int(await self._now_ms(keys=[counter_key(post_id)]))

    async def add(self, post_id: int, what: str, delta: int, began_ms: int) -> None:
        """Applies one counted change whose edge write began at began_ms (`clock`)."""
        key, dirty = counter_key(post_id), dirty_key(dirty_set(post_id))
        looked = 0
        for _ in range(ADD_ATTEMPTS):
            outcome = await self._incr(
                keys=[key, dirty],
                args=[FIELDS[what], delta, self.ttl_seconds, post_id, began_ms, looked, self._epoch_held()],
            )
            if outcome[0] == APPLIED:
                self._marked.add(dirty_set(post_id))
            if outcome[0] in (APPLIED, HELD):
                return
            looked = looked or int(outcome[1])
            if outcome[0] == MISSING:
                await self._load_one(post_id)
            else:
                await self._recount_over(post_id, outcome[2])
        # Many changes racing on one post kept the hash unsure: it goes, and
        # its next read recounts it (the post changed just now), which holds
        # this change, its edge being written. Never fails the change.
        log.warning("counter did not settle; dropped for a recount", extra={"post_id": post_id})
        UNSETTLED.inc()
        await self.client.delete(key)

    async def _recount_over(self, post_id: int, version: bytes) -> None:
        """Replaces an unsure hash with a recount begun now (which holds every
        change already written), unless it was incremented since."""
        began = await self.clock(post_id)
        counts = await self.store.recount(post_id)
        LOADS.labels("recount").inc()
        replaced = await self._reload(
            keys=[counter_key(post_id)],
            args=[
                *(counts.likes, counts.reposts, counts.replies, counts.quotes),
                *(self.ttl_seconds, began, self._epoch_held(), version),
            ],
        )
        if replaced:
            await self._mark_dirty(post_id)

    async def _mark_dirty(self, post_id: int) -> None:
        await self.client.sadd(dirty_key(dirty_set(post_id)), post_id)
        # Noted once the mark is in Redis: a flush that takes the note pops the mark.
        self._marked.add(dirty_set(post_id))

    def _epoch_held(self) -> bytes:
        """The epoch hashes are read and written in: the last one known (while
        a master cannot be asked, the others' hashes stay usable)."""
        return self.epoch.last_known

    # -- reads --------------------------------------------------------------------

    @staticmethod
    def read_commands(post_ids: list[int]) -> list[tuple]:
        """The counts' reads (one command per post), for a bulk round trip."""
        return [count_read(post_id) for post_id in post_ids]

    async def finish_reads(self, post_ids: list[int], rows: list) -> dict[int, Counts]:
        """Counts for each post from the answers to read_commands, loading the
        missing ones (and those of another Redis epoch)."""
        found: dict[int, Counts] = {}
        missing = []
        epoch = self._epoch_held()
        for post_id, row in zip(post_ids, rows):
            if row[4] != epoch:
                missing.append(post_id)
            else:
                found[post_id] = _counts(row[:4])
        if missing:
            batches = await asyncio.gather(*(asyncio.shield(load) for load in self._loads_of(missing)))
            loaded = {post_id: counts for batch in batches for post_id, counts in batch.items()}
            found.update((post_id, loaded[post_id]) for post_id in missing)
        return found

    async def load_ahead(self, post_ids: list[int]) -> None:
        """Loads these posts' counters before any page asks for them (new
        posts'): pages read the counters from Redis themselves, and one not
        loaded sends its page to engagement."""
        await asyncio.gather(*(asyncio.shield(load) for load in self._loads_of(post_ids)))

    def _loads_of(self, post_ids: list[int]) -> list[asyncio.Future[dict[int, Counts]]]:
        """The loads that answer for these posts: those already in flight in
        this process, and one batch for the rest. On a cold cache every
        reader's page asks for the same popular posts (a celebrity's are on
        every home), and a load each repeated the same Cassandra read and
        Redis write. Shielded by the caller, so a reader that stops waiting
        does not cancel a load others wait on."""
        new = [post_id for post_id in post_ids if post_id not in self._loading]
        if new:
            batch = asyncio.ensure_future(self._load_many(new))
            for post_id in new:
                self._loading[post_id] = batch
            batch.add_done_callback(lambda _: self._forget_loads(new, batch))
        return list({id(load): load for load in (self._loading[post_id] for post_id in post_ids)}.values())

    def _forget_loads(self, post_ids: list[int], batch: asyncio.Future) -> None:
        for post_id in post_ids:
            if self._loading.get(post_id) is batch:
                del self._loading[post_id]

    async def _load_one(self, post_id: int) -> Counts:
        return (await self._load_many([post_id]))[post_id]

    async def _load_many(self, post_ids: list[int]) -> dict[int, Counts]:
        """The posts' counts as installed in Redis, by this call or a loader
        before it: one Cassandra read and one Redis round trip for all."""
        snapshots = await self.store.snapshots(post_ids)
        recounted = [post_id for post_id, snapshot in zip(post_ids, snapshots) if not self._trusts(snapshot)]
        loads = {post_id: (snapshot.counts, 0) for post_id, snapshot in zip(post_ids, snapshots)}
        loads.update(zip(recounted, await asyncio.gather(*(self._recount_from_now(p) for p in recounted))))
        LOADS.labels("snapshot").inc(len(post_ids) - len(recounted))
        LOADS.labels("recount").inc(len(recounted))
        epoch = self._epoch_held()
        calls = []
        for post_id in post_ids:
            counts, began = loads[post_id]
            calls.append(
                (1, counter_key(post_id), counts.likes, counts.reposts, counts.replies, counts.quotes)
                + (self.ttl_seconds, began, epoch)
            )
        rows = await self.bulk.eval_each(_LOAD, calls, idempotent=True)
        # Persist what was recounted so the next load can trust it.
        await asyncio.gather(*(self._mark_dirty(post_id) for post_id in recounted))
        return {post_id: _counts(row) for post_id, row in zip(post_ids, rows)}

    def _trusts(self, snapshot: Snapshot) -> bool:
        """Whether the snapshot holds every change: none since shortly before it was taken."""
        return snapshot.last_change is None or (
            snapshot.flushed_at is not None
            and _naive_utc(snapshot.last_change) < _naive_utc(snapshot.flushed_at) - self.trust_margin
        )

    async def _recount_from_now(self, post_id: int) -> tuple[Counts, int]:
        """A recount, and when it began (which tells which changes it holds)."""
        began = await self.clock(post_id)
        return await self.store.recount(post_id), began

    # -- flushing -----------------------------------------------------------------

    async def flush_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.flush_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Cassandra or Redis is down: the dirty marks stay, retry later.
                log.warning("counter flush failed; retrying", exc_info=True)
            await asyncio.sleep(max(0.05, self.flush_interval - (time.monotonic() - started)))

    async def flush_once(self) -> int:
        """Copies every dirty post's counts to Cassandra; returns how many."""
        flushed = 0
        with FLUSH_SECONDS.time():
            sets = self._sets_to_flush()
            while sets:
                popped = await self._pop_dirty(sets)
                post_ids = [post_id for _, ids in popped for post_id in ids]
                try:
                    await self._flush(post_ids)
                except BaseException:
                    await self._mark_dirty_again(popped)
                    raise
                flushed += len(post_ids)
                FLUSHED.inc(len(post_ids))
                # A full batch: that set may hold more.
                sets = [dirty for dirty, ids in popped if len(ids) == FLUSH_BATCH]
        return flushed

    def _sets_to_flush(self) -> list[int]:
        """The sets marked since the last round (taken: marks noted from now on
        wait for the next), or every set when a full round is due."""
        marked, self._marked = self._marked, set()
        if time.monotonic() < self._full_flush_at:
            return sorted(marked)
        self._full_flush_at = time.monotonic() + FULL_FLUSH_SECONDS
        return list(range(DIRTY_SETS))

    async def _pop_dirty(self, sets: list[int]) -> list[tuple[int, list[int]]]:
        """Up to FLUSH_BATCH post ids from each of these dirty sets (the non-empty ones)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for dirty in sets:
                pipe.spop(dirty_key(dirty), FLUSH_BATCH)
            replies = await pipe.execute()
        return [(dirty, [int(m) for m in members]) for dirty, members in zip(sets, replies) if members]

    async def _mark_dirty_again(self, popped: list[tuple[int, list[int]]]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for dirty, post_ids in popped:
                pipe.sadd(dirty_key(dirty), *post_ids)
            await pipe.execute()
        self._marked.update(dirty for dirty, _ in popped)

    async def _flush(self, post_ids: list[int]) -> None:
        if not post_ids:
            return
        # The time is taken before reading Redis: the snapshot then holds at
        # least every change applied before it.
        flushed_at = _utcnow()
        async with self.client.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.hmget(counter_key(post_id), "l", "r", "p", "q", "ep")
            rows = await pipe.execute()
        # Confirmed after the read: the hashes read are of this epoch's history.
        epoch = await self.epoch.refresh()
        writes = [
            self.store.flush(post_id, _counts(row[:4]), flushed_at)
            for post_id, row in zip(post_ids, rows)
            # A hash that vanished since it was marked, or one that may have
            # missed increments in a failover (another epoch's, or any while
            # the epoch is unknown), is reloaded (and recounted when needed)
            # on its next use; nothing to write.
            if epoch is not None and row[4] == epoch
        ]
        await asyncio.gather(*writes)


def _counts(row) -> Counts:
    """A hash's l, r, p, q values."""
    likes, reposts, replies, quotes = (count_value(v) for v in row)
    return Counts(likes, reposts, replies, quotes)
