"""The recommendations service's Redis adapter: the only code that talks to Redis.

A user's keys share the hash tag {u:<id>} and the global ones {g}, so one Lua
script may touch all of a user's (the key layout: services/recommendations/README.md).
Idempotency: every increment runs in one Lua script guarded by its event's
marker in the same slot (SET NX), so a replayed event changes nothing;
everything else is an absolute write (SET, SADD, SREM, ZADD of a timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as redis

from services.kit.stores import redis_client
from services.recommendations.scoring import EngagementRecord
from services.recommendations.settings import RecommendationsSettings

# KEYS: marker, aff, auth, eng, engt. ARGV: marker ttl, field, mode (add |
# remove), record (add only), aff cap, auth cap, eng cap, data ttl.
# Answers {"applied" | "duplicate", record}: for add the record stored, for
# remove the record taken back ("" when there was none). A replay answers what
# the first run did, so the caller can finish the global side the same way.
_ENGAGE_LUA = """
local done = redis.call('GET', KEYS[1])
if done then return {'duplicate', done} end
local function bump(key, member, delta)
  local left = tonumber(redis.call('ZINCRBY', key, delta, member))
  -- Taking back the only contribution leaves ~0 (or less, if the member was
  -- trimmed meanwhile): drop the member rather than keep dust.
  if left <= math.abs(tonumber(delta)) * 1e-9 then redis.call('ZREM', key, member) end
end
local function neg(delta)
  if string.sub(delta, 1, 1) == '-' then return string.sub(delta, 2) end
  return '-' .. delta
end
-- record: t|product_weight|author|p1,p2|product_delta|author_delta
local function apply(record, sign)
  local t, _, author, products, pd, ad = string.match(record, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  if pd ~= '0' then
    local d = pd
    if sign < 0 then d = neg(pd) end
    for p in string.gmatch(products, '[^,]+') do bump(KEYS[2], p, d) end
  end
  if ad ~= '0' and author ~= '0' then
    local d = ad
    if sign < 0 then d = neg(ad) end
    bump(KEYS[3], author, d)
  end
  return t
end
local field = ARGV[2]
local old = redis.call('HGET', KEYS[4], field)
local outcome = ''
if old then
  apply(old, -1)
  redis.call('HDEL', KEYS[4], field)
  redis.call('ZREM', KEYS[5], field)
  outcome = old
end
if ARGV[3] == 'add' then
  local t = apply(ARGV[4], 1)
  redis.call('HSET', KEYS[4], field, ARGV[4])
  redis.call('ZADD', KEYS[5], t, field)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[6]) + 1))
  local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
  if excess > 0 then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, excess - 1)
    redis.call('HDEL', KEYS[4], unpack(oldest))
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, excess - 1)
  end
  for i = 2, 5 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[8]) end
  end
  outcome = ARGV[4]
end
redis.call('SET', KEYS[1], outcome, 'EX', ARGV[1])
return {'applied', outcome}
"""

# KEYS: marker, pop, inactive. ARGV: marker ttl, cap, then product and delta
# pairs (a delta may be negative: a like taken back). Answers 1 if applied,
# 0 for a replay. Inactive products are not counted.
_POPULARITY_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 3, #ARGV, 2 do
  local p, d = ARGV[i], ARGV[i + 1]
  if redis.call('SISMEMBER', KEYS[3], p) == 0 then
    local s = tonumber(redis.call('ZINCRBY', KEYS[2], d, p))
    if s <= math.abs(tonumber(d)) * 1e-9 then redis.call('ZREM', KEYS[2], p) end
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return 1
"""

# KEYS: pver, sellers, seller:<S>, new, pop, inactive. ARGV: product, event id,
# active (1|0), created ms, seller, newest cap, seller cap. A product event
# carries the whole state, so this is an absolute write; the last applied
# event id (compared as decimal strings: Lua numbers lose 64-bit precision)
# keeps a replayed older event from undoing a newer one.
_PRODUCT_LUA = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen and (#seen > #ARGV[2] or (#seen == #ARGV[2] and seen >= ARGV[2])) then return 'stale' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[5])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[6], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[6]) + 1))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[7]) + 1))
else
  redis.call('SADD', KEYS[6], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
end
return 'applied'
"""


@dataclass(frozen=True)
class EngageOutcome:
    duplicate: bool
    # add: the record stored; remove: the record taken back (None if none).
    record: EngagementRecord | None


@dataclass(frozen=True)
class UserSignals:
    engaged: list[tuple[int, float]]  # product, stored score, best first
    authors: list[tuple[int, float]]  # author, stored score, best first
    sellers: list[int]  # a sample of followed sellers


@dataclass(frozen=True)
class GlobalSignals:
    popular: list[tuple[int, float]]  # product, stored score, best first
    newest: list[tuple[int, int]]  # product, created ms, newest first
    followed: list[tuple[int, int]]  # followed sellers' products, created ms
    inactive: set[int]  # those of the asked-about products that are deactivated


class RecommendationsStore:
    def __init__(self, settings: RecommendationsSettings) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        self._redis: redis.Redis = redis_client.client(settings)
        # Run by EVALSHA; redis-py loads them again if Redis lost its script cache.
        self._engage = self._redis.register_script(_ENGAGE_LUA)
        self._popularity = self._redis.register_script(_POPULARITY_LUA)
        self._product = self._redis.register_script(_PRODUCT_LUA)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    # -- keys --------------------------------------------------------------------------

    def user_key(self, user_id: int, name: str) -> str:
        return f"{self.prefix}:{{u:{user_id}}}:{name}"

    def global_key(self, name: str) -> str:
        return f"{self.prefix}:{{g}}:{name}"

    def seller_key(self, seller_id: int) -> str:
        return self.global_key(f"seller:{seller_id}")

    def post_key(self, post_id: int) -> str:
        return f"{self.prefix}:post:{post_id}"

    # -- post -> products ----------------------------------------------------------------

    async def remember_post(self, post_id: int, product_ids: list[int]) -> None:
        ttl = self.settings.post_products_ttl_seconds if product_ids else self.settings.untagged_post_ttl_seconds
        await self._redis.set(self.post_key(post_id), ",".join(str(p) for p in product_ids), ex=ttl)

    async def post_products(self, post_id: int) -> list[int] | None:
        """The post's tagged products; None when the post is not remembered."""
        raw = cast("bytes | None", await self._redis.get(self.post_key(post_id)))  # the client does not decode
        if raw is None:
            return None
        return [int(p) for p in raw.decode().split(",") if p]

    async def forget_post(self, post_id: int) -> None:
        await self._redis.delete(self.post_key(post_id))

    # -- per-user engagement -------------------------------------------------------------

    async def engage(self, user_id: int, field: str, record: EngagementRecord, marker: str) -> EngageOutcome:
        """Adds an engagement (replacing one under the same field), once per event marker."""
        return await self._run_engage(user_id, field, "add", record.encode(), marker)

    async def disengage(self, user_id: int, field: str, marker: str) -> EngageOutcome:
        """Takes an engagement back exactly, once per event marker."""
        return await self._run_engage(user_id, field, "remove", "", marker)

    async def _run_engage(self, user_id: int, field: str, mode: str, record: str, marker: str) -> EngageOutcome:
        c = self.settings
        keys = [
            self.user_key(user_id, f"ev:{marker}"),
            self.user_key(user_id, "aff"),
            self.user_key(user_id, "auth"),
            self.user_key(user_id, "eng"),
            self.user_key(user_id, "engt"),
        ]
        status, outcome = await self._engage(
            keys=keys,
            args=[
                c.dedup_ttl_seconds,
                field,
                mode,
                record,
                c.max_affinity_products,
                c.max_affinity_authors,
                c.max_engagements,
                c.affinity_ttl_seconds,
            ],
        )
        return EngageOutcome(
            duplicate=status == b"duplicate", record=EngagementRecord.decode(outcome) if outcome else None
        )

    async def follow_seller(self, user_id: int, seller_id: int) -> None:
        await self._redis.sadd(self.user_key(user_id, "sellers"), seller_id)

    async def unfollow_seller(self, user_id: int, seller_id: int) -> None:
        await self._redis.srem(self.user_key(user_id, "sellers"), seller_id)

    async def forget_user(self, user_id: int) -> int:
        """Drops what was kept about the user (affinities, engagements,
        followed sellers, purchases); returns how many keys went. Their event
        markers expire on their own."""
        names = ("aff", "auth", "eng", "engt", "sellers", "bought")
        return int(await self._redis.delete(*(self.user_key(user_id, name) for name in names)))

    async def record_purchase(self, user_id: int, product_ids: list[int]) -> None:
        if product_ids:
            await self._redis.sadd(self.user_key(user_id, "bought"), *product_ids)

    # -- global --------------------------------------------------------------------------

    async def add_popularity(self, marker: str, deltas: list[tuple[int, float]]) -> bool:
        """Adds each (product, delta) once per event marker; False for a replay."""
        if not deltas:
            return False
        args: list = [self.settings.dedup_ttl_seconds, self.settings.max_popular]
        for product, delta in deltas:
            args += [product, repr(delta)]
        keys = [self.global_key(f"ev:{marker}"), self.global_key("pop"), self.global_key("inactive")]
        return bool(await self._popularity(keys=keys, args=args))

    async def upsert_product(
        self, event_id: int, product_id: int, seller_id: int, active: bool, created_ms: int
    ) -> bool:
        """Applies a product's new state; False when a newer event was applied already."""
        keys = [
            self.global_key("pver"),
            self.global_key("sellers"),
            self.seller_key(seller_id),
            self.global_key("new"),
            self.global_key("pop"),
            self.global_key("inactive"),
        ]
        status = await self._product(
            keys=keys,
            args=[
                product_id,
                event_id,
                1 if active else 0,
                created_ms,
                seller_id,
                self.settings.max_newest,
                self.settings.max_seller_products,
            ],
        )
        return status == b"applied"

    async def is_known_seller(self, user_id: int) -> bool:
        return bool(await self._redis.sismember(self.global_key("sellers"), str(user_id)))

    async def add_known_seller(self, user_id: int) -> None:
        await self._redis.sadd(self.global_key("sellers"), user_id)

    # -- reads (the hot path: three round trips, no scripts) -------------------------------

    async def read_user(self, user_id: int, *, engaged: int, authors: int, sellers: int) -> UserSignals:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrevrange(self.user_key(user_id, "aff"), 0, engaged - 1, withscores=True)
        if authors > 0:
            pipe.zrevrange(self.user_key(user_id, "auth"), 0, authors - 1, withscores=True)
        pipe.srandmember(self.user_key(user_id, "sellers"), sellers)
        replies = await pipe.execute()
        aff, followed = replies[0], replies[-1]
        auth = replies[1] if authors > 0 else []
        return UserSignals(engaged=_scored(aff), authors=_scored(auth), sellers=[int(s) for s in followed])

    async def read_global(
        self, *, popular: int, newest: int, sellers: list[int], per_seller: int, check_inactive: list[int]
    ) -> GlobalSignals:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrevrange(self.global_key("pop"), 0, popular - 1, withscores=True)
        pipe.zrevrange(self.global_key("new"), 0, newest - 1, withscores=True)
        for seller in sellers:
            pipe.zrevrange(self.seller_key(seller), 0, per_seller - 1, withscores=True)
        if check_inactive:
            pipe.smismember(self.global_key("inactive"), check_inactive)
        replies = await pipe.execute()
        followed: list[tuple[int, int]] = []
        for reply in replies[2 : 2 + len(sellers)]:
            followed += [(p, int(created)) for p, created in _scored(reply)]
        flags = replies[-1] if check_inactive else []
        return GlobalSignals(
            popular=_scored(replies[0]),
            newest=[(p, int(created)) for p, created in _scored(replies[1])],
            followed=followed,
            inactive={p for p, flag in zip(check_inactive, flags) if flag},
        )

    async def bought_among(self, user_id: int, product_ids: list[int]) -> set[int]:
        if not product_ids:
            return set()
        flags = await self._redis.smismember(self.user_key(user_id, "bought"), product_ids)
        return {p for p, flag in zip(product_ids, flags) if flag}


def _scored(reply) -> list[tuple[int, float]]:
    return [(int(member), float(score)) for member, score in reply]
