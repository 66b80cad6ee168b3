"""Per-subject rate limits in Redis (GCRA), shared by every gateway and Envoy replica.

GCRA keeps one timestamp per key (the "theoretical arrival time"), so a limit
costs one small key and one atomic script call per request. The script reads
Redis's own clock, so gateway replicas with skewed clocks still agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.kit.stores.redis_bulk import BulkRedis

# KEYS[1]: bucket key. ARGV[1]: emission interval (µs), ARGV[2]: burst.
# Returns {allowed (0/1), retry_after_us, remaining}.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now, 0}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0, math.floor((now - allow_at) / interval)}
"""


@dataclass(frozen=True)
class Limit:
    """`rate` requests per second sustained, up to `burst` at once."""

    rate: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, int(1_000_000 / self.rate))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int
    remaining: int


class RateLimiter:
    """One EVALSHA per decision, packed and parsed by hiredis (the gateway
    pays it on every public request). Not retried on a dropped connection:
    the script may have run, and the gateway fails open anyway."""

    def __init__(self, client: BulkRedis) -> None:
        self._client = client

    async def check(self, key: str, limit: Limit) -> Decision:
        (reply,) = await self._client.eval_each(_GCRA, [(1, key, limit.interval_us, limit.burst)], idempotent=False)
        allowed, retry_after_us, remaining = reply
        return Decision(bool(allowed), math.ceil(int(retry_after_us) / 1_000_000), int(remaining))


def bucket_key(subject: str, action: str) -> str:
    # Hash tag on the subject: all of one subject's buckets share a cluster slot.
    return f"rl:{{{subject}}}:{action}"


def action_of(method: str) -> str:
    return "read" if method.upper() in ("GET", "HEAD", "OPTIONS") else "write"
