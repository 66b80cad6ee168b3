"""Per-subject rate limits in Redis (GCRA), shared by every gateway and Envoy replica.

GCRA keeps one timestamp per key (the "theoretical arrival time"), so a limit
costs one small key and one atomic script call per take. The script reads
Redis's own clock, so gateway replicas with skewed clocks still agree.

A gateway takes a subject's allowances a few at a time (a lease) and spends
them locally, so most requests cost no Redis call. Every request it lets
through was taken from the shared bucket first, so replicas together never
admit more than the limit. A lease is at most a quarter of what the bucket
still holds: a subject near its limit is decided one request at a time. What
a lease leaves unspent when it lapses is lost to the subject, at most a few
requests. A refusal is remembered until the bucket would admit again: until
then no replica can be granted anything.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Callable

from prometheus_client import Counter

from services.kit.stores.redis_bulk import BulkRedis

TAKES = Counter("aviary_gateway_bucket_takes_total", "Calls that took allowances from a shared bucket in Redis")

# KEYS[1]: bucket key. ARGV[1]: emission interval (µs), ARGV[2]: burst,
# ARGV[3]: most allowances to take. Takes up to ARGV[3], at most a quarter of
# what the bucket holds and at least one. Returns {taken (0: refused),
# retry_after_us, what the bucket still holds}.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local most = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local holds = math.floor((now + burst * interval - tat) / interval)
if holds < 1 then
  return {0, tat + interval - burst * interval - now, 0}
end
local take = math.min(most, math.max(1, math.floor(holds / 4)))
local new_tat = tat + take * interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {take, 0, holds - take}
"""
# Leases of lapsed subjects are swept after this many takes.
_SWEEP_EVERY = 4096


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


@dataclass
class _Lease:
    """Allowances taken for one bucket and not yet spent, or its refusal."""

    allowances: int = 0
    # What the bucket held after the take: with the lease, what the subject has left.
    bucket_holds: int = 0
    lapses_at: float = 0.0
    refused_until: float = 0.0


class RateLimiter:
    """Decides from a subject's lease, and takes a new one from Redis when it
    is spent or lapsed (one take per bucket at a time; concurrent requests
    wait for it). A take is not retried on a dropped connection: the script
    may have run, and the gateway fails open anyway."""

    def __init__(
        self,
        client: BulkRedis,
        lease_most: int = 1,
        lease_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._lease_most = max(1, lease_most)
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._taking: dict[str, asyncio.Future] = {}
        self._takes = 0

    async def check(self, key: str, limit: Limit) -> Decision:
        while (decision := self._from_lease(key)) is None:
            taking = self._taking.get(key)
            if taking is None:
                return await self._take(key, limit)
            await taking
        return decision

    def _from_lease(self, key: str) -> Decision | None:
        lease = self._leases.get(key)
        if lease is None:
            return None
        now = self._clock()
        if lease.refused_until > now:
            return Decision(False, math.ceil(lease.refused_until - now), 0)
        if lease.allowances > 0 and lease.lapses_at > now:
            lease.allowances -= 1
            return Decision(True, 0, lease.bucket_holds + lease.allowances)
        return None

    async def _take(self, key: str, limit: Limit) -> Decision:
        """Takes a new lease: the decision for the request that takes it.
        Requests for the same bucket meanwhile wait, then spend from it."""
        taking = self._taking[key] = asyncio.get_running_loop().create_future()
        try:
            (reply,) = await self._client.eval_each(
                _GCRA, [(1, key, limit.interval_us, limit.burst, self._lease_most)], idempotent=False
            )
            TAKES.inc()
            return self._lease(key, *(int(value) for value in reply))
        finally:
            del self._taking[key]
            taking.set_result(None)

    def _lease(self, key: str, taken: int, retry_after_us: int, holds: int) -> Decision:
        """Keeps what a take got, and decides the request that took it."""
        now = self._clock()
        self._sweep_now_and_then(now)
        if not taken:
            self._leases[key] = _Lease(refused_until=now + retry_after_us / 1_000_000)
            return Decision(False, math.ceil(retry_after_us / 1_000_000), 0)
        # This request spends one; the rest wait in the lease.
        self._leases[key] = _Lease(taken - 1, holds, now + self._lease_seconds)
        return Decision(True, 0, holds + taken - 1)

    def _sweep_now_and_then(self, now: float) -> None:
        """Forgets lapsed leases every so many takes: memory stays bounded by
        the subjects active within a lease's lifetime."""
        self._takes += 1
        if self._takes % _SWEEP_EVERY:
            return
        for key in [k for k, lease in self._leases.items() if max(lease.lapses_at, lease.refused_until) <= now]:
            del self._leases[key]


def bucket_key(subject: str, action: str) -> str:
    # Hash tag on the subject: all of one subject's buckets share a cluster slot.
    return f"rl:{{{subject}}}:{action}"


def action_of(method: str) -> str:
    return "read" if method.upper() in ("GET", "HEAD", "OPTIONS") else "write"
