"""The cart service's Redis adapter: the only code that talks to Redis.

Every change is one Lua script on keys sharing the user's hash tag, so it is
atomic (two concurrent adds never lose a unit, a limit is never overshot)
and runs unchanged on Redis Cluster. Each script answers with the cart as it
left it, so a change costs one round trip. See model.py for the layout.
"""

from __future__ import annotations

from typing import Sequence

import redis.asyncio as redis

from services.cart.model import (
    CartState,
    ScriptReply,
    cart_key,
    checkout_marker_key,
    decode_script_reply,
)
from services.kit.stores import redis_client
from services.kit.settings import Settings

# Shared by every script: the reply (status, detail, PTTL, the hash's
# fields) and the number of lines (fields other than the two meta fields).
_PRELUDE = """
local function reply(status, detail)
  local out = {status, detail, redis.call('PTTL', KEYS[1])}
  for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
  return out
end
local function line_count()
  local n = redis.call('HLEN', KEYS[1])
  if redis.call('HEXISTS', KEYS[1], '_currency') == 1 then n = n - 1 end
  if redis.call('HEXISTS', KEYS[1], '_seq') == 1 then n = n - 1 end
  return n
end
-- After lines were taken out: an empty cart is deleted, any other renewed.
local function settle(ttl)
  if line_count() == 0 then redis.call('DEL', KEYS[1]) else redis.call('EXPIRE', KEYS[1], ttl) end
end
"""

# KEYS: cart. The cart and its remaining TTL, a consistent pair (a script
# rather than MULTI: redis-py runs a cluster MULTI on a thread and event loop
# of its own, which broke the client's later calls while a failover moved slots).
_READ_LUA = _PRELUDE + "return reply('ok', '')"

# KEYS: cart. ARGV: product, quantity to add, product currency, ttl seconds,
# max lines, max line quantity, product's current unit price. Statuses: ok |
# currency (detail: the cart's currency) | line_full (detail: the line's
# quantity) | too_many (detail: max). Adding records the current price on the
# whole line: adding a product again is agreeing to its price of today.
_ADD_LUA = (
    _PRELUDE
    + """
local cart_currency = redis.call('HGET', KEYS[1], '_currency')
if cart_currency and cart_currency ~= ARGV[3] then return reply('currency', cart_currency) end
local add = tonumber(ARGV[2])
local line = redis.call('HGET', KEYS[1], ARGV[1])
if line then
  local seq, has = string.match(line, '^(%d+):(%d+)')
  has = tonumber(has)
  if has + add > tonumber(ARGV[6]) then return reply('line_full', tostring(has)) end
  redis.call('HSET', KEYS[1], ARGV[1], seq .. ':' .. tostring(has + add) .. ':' .. ARGV[7])
else
  if line_count() >= tonumber(ARGV[5]) then return reply('too_many', ARGV[5]) end
  local seq = redis.call('HINCRBY', KEYS[1], '_seq', 1)
  redis.call('HSET', KEYS[1], ARGV[1], seq .. ':' .. ARGV[2] .. ':' .. ARGV[7], '_currency', ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return reply('ok', '')
"""
)

# KEYS: cart. ARGV: product, new quantity, ttl seconds. Statuses: ok | missing.
# The price the line was added at stays.
_UPDATE_LUA = (
    _PRELUDE
    + """
local line = redis.call('HGET', KEYS[1], ARGV[1])
if not line then return reply('missing', '') end
local seq, price = string.match(line, '^(%d+):%d+(.*)$')
redis.call('HSET', KEYS[1], ARGV[1], seq .. ':' .. ARGV[2] .. price)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return reply('ok', '')
"""
)

# KEYS: cart. ARGV: product, ttl seconds. Statuses: ok | absent (nothing to do;
# the cart is left as it was, expiry included).
_REMOVE_LUA = (
    _PRELUDE
    + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return reply('absent', '') end
settle(ARGV[2])
return reply('ok', '')
"""
)

# KEYS: cart, checkout marker. ARGV: marker ttl, cart ttl, then product and
# quantity pairs. The marker is set in the same step as the lines change, so
# a checkout takes its lines out exactly once. Statuses: ok | repeat.
_CLEAR_LUA = (
    _PRELUDE
    + """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return reply('repeat', '') end
local changed = false
for i = 3, #ARGV, 2 do
  local line = redis.call('HGET', KEYS[1], ARGV[i])
  if line then
    local seq, has, price = string.match(line, '^(%d+):(%d+)(.*)$')
    local left = tonumber(has) - tonumber(ARGV[i + 1])
    if left > 0 then
      redis.call('HSET', KEYS[1], ARGV[i], seq .. ':' .. tostring(left) .. price)
    else
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
    changed = true
  end
end
if changed then settle(ARGV[2]) end
return reply('ok', '')
"""
)


class CartStore:
    def __init__(
        self,
        settings: Settings,
        *,
        ttl_seconds: int,
        max_lines: int,
        max_line_quantity: int,
        checkout_marker_ttl_seconds: int,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_lines = max_lines
        self.max_line_quantity = max_line_quantity
        self.checkout_marker_ttl_seconds = checkout_marker_ttl_seconds
        self._redis: redis.Redis = redis_client.client(settings)
        # Scripts run by EVALSHA, loaded again by redis-py if Redis lost them.
        self._read = self._redis.register_script(_READ_LUA)
        self._add = self._redis.register_script(_ADD_LUA)
        self._update = self._redis.register_script(_UPDATE_LUA)
        self._remove = self._redis.register_script(_REMOVE_LUA)
        self._clear = self._redis.register_script(_CLEAR_LUA)

    async def ping(self) -> None:
        await self._redis.ping()

    @property
    def client(self) -> redis.Redis:
        return self._redis

    async def delete(self, user_id: int) -> bool:
        """Deletes the user's cart; False when there was none. Checkout
        markers are left to expire (they name a checkout id, nothing more)."""
        return bool(await self._redis.delete(cart_key(user_id)))

    async def close(self) -> None:
        await self._redis.aclose()

    async def read(self, user_id: int) -> CartState:
        """The cart and its remaining TTL, read together."""
        return decode_script_reply(await self._read(keys=[cart_key(user_id)])).state

    async def add(
        self, user_id: int, product_id: int, quantity: int, currency: str, unit_price_minor: int
    ) -> ScriptReply:
        reply = await self._add(
            keys=[cart_key(user_id)],
            args=[
                product_id,
                quantity,
                currency,
                self.ttl_seconds,
                self.max_lines,
                self.max_line_quantity,
                unit_price_minor,
            ],
        )
        return decode_script_reply(reply)

    async def update(self, user_id: int, product_id: int, quantity: int) -> ScriptReply:
        reply = await self._update(keys=[cart_key(user_id)], args=[product_id, quantity, self.ttl_seconds])
        return decode_script_reply(reply)

    async def remove(self, user_id: int, product_id: int) -> ScriptReply:
        reply = await self._remove(keys=[cart_key(user_id)], args=[product_id, self.ttl_seconds])
        return decode_script_reply(reply)

    async def clear_checked_out(self, user_id: int, checkout_id: str, bought: Sequence[tuple[int, int]]) -> ScriptReply:
        """Takes each (product, quantity) bought off the cart, once per checkout_id."""
        args: list = [self.checkout_marker_ttl_seconds, self.ttl_seconds]
        for product_id, quantity in bought:
            args += [product_id, quantity]
        reply = await self._clear(keys=[cart_key(user_id), checkout_marker_key(user_id, checkout_id)], args=args)
        return decode_script_reply(reply)
