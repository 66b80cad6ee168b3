"""Accounts nobody may see: suspended by an operator, or deleted by their owner.

Identity owns the list (its PostgreSQL rows are the truth) and keeps this
Redis set as their projection: it adds an account in the transaction's
wake, removes it on reinstatement, and writes the whole set again at start-up
(so a Redis restart loses nothing for long). Every read path that hides
authors (peers.safety) and every write path that must refuse a suspended
author reads it through `GoneAccounts`, which keeps a process-wide copy
refreshed at most every few seconds: the set is small (suspensions are rare,
deleted accounts leave it once their data is gone) and one SMEMBERS per
refresh costs less than a lookup per post.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Awaitable, Callable, cast

import redis.asyncio as redis

from services.kit.stores.redis_bulk import BulkRedis
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

# One key (a Redis Cluster hash tag of its own): suspended and deleted accounts.
GONE_KEY = "identity:{gone-accounts}"
# How stale a process's copy may be: a suspension shows everywhere within this.
REFRESH_SECONDS = 2.0


async def mark_gone(client: redis.Redis, user_id: int) -> None:
    """Identity only: the account is suspended or deleted."""
    await client.sadd(GONE_KEY, str(user_id))


async def mark_back(client: redis.Redis, user_id: int) -> None:
    """Identity only: the account is reinstated (or a deleted one's data is gone)."""
    await client.srem(GONE_KEY, str(user_id))


async def replace_all(client: redis.Redis, user_ids: list[int]) -> None:
    """Identity only, at start-up: the set becomes exactly these accounts.

    Built under a key of its own (the same hash tag) and renamed over the set
    in one step, so readers see the old set or the new one; no MULTI, which
    redis-py's cluster client runs by blocking the event loop."""
    if not user_ids:
        await client.delete(GONE_KEY)
        return
    building = f"{GONE_KEY}:next:{secrets.token_hex(8)}"
    async with client.pipeline(transaction=False) as pipe:
        pipe.sadd(building, *[str(u) for u in user_ids])
        pipe.rename(building, GONE_KEY)
        await pipe.execute()


class GoneAccounts:
    """A process's copy of the gone accounts, refreshed when older than REFRESH_SECONDS.

    While Redis cannot be read the last copy is kept (a page is served, not
    failed) and a warning is logged once per failed refresh.
    """

    def __init__(
        self, client: redis.Redis | None, *, refresh_seconds: float = REFRESH_SECONDS, bulk: BulkRedis | None = None
    ) -> None:
        self._redis = client
        # The process's hiredis connections to the same Redis, if it keeps
        # some: a write's check (`contains`) costs a fraction through them.
        self._bulk = bulk
        self._refresh_seconds = refresh_seconds
        self._ids: frozenset[int] = frozenset()
        self._read_at = float("-inf")
        self._refreshing: asyncio.Lock | None = None

    async def ids(self) -> frozenset[int]:
        """Every suspended or deleted account, as of at most REFRESH_SECONDS ago."""
        if self._redis is None or time.monotonic() - self._read_at < self._refresh_seconds:
            return self._ids
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            # Whoever waited for the lock finds the copy a concurrent call just read.
            if time.monotonic() - self._read_at >= self._refresh_seconds:
                await self._refresh()
        return self._ids

    async def contains(self, user_id: int) -> bool:
        """Whether the account is gone now: asked of Redis itself (one
        SISMEMBER), for write paths that must refuse a deleted or suspended
        account at once; the process's copy answers while Redis cannot."""
        if self._redis is None:
            return user_id in self._ids
        try:
            if self._bulk is not None:
                return bool((await self._bulk.read([(b"SISMEMBER", GONE_KEY, str(user_id))]))[0])
            return bool(await self._redis.sismember(GONE_KEY, str(user_id)))
        except (redis.RedisError, OSError) as exc:
            log.warning("gone accounts unreadable; using the last copy", extra={"error": error_text(exc)})
            return user_id in await self.ids()

    async def _refresh(self) -> None:
        assert self._redis is not None
        try:
            members = cast("set[bytes]", await self._redis.smembers(GONE_KEY))
        except (redis.RedisError, OSError) as exc:
            log.warning("gone accounts unreadable; keeping the last copy", extra={"error": error_text(exc)})
        else:
            self._ids = frozenset(int(m) for m in members)
        # Tried either way: an unreadable Redis is asked again only after the interval.
        self._read_at = time.monotonic()


# Every process's copy has a gone account this long after Redis had it.
SETTLE_SECONDS = REFRESH_SECONDS + 1.0
# How long a second sweep waits for Redis to have the account at all.
GONE_WAIT_SECONDS = 30.0


class SecondSweeps:
    """Runs a deleted account's removal once more, once every process sees the
    account gone: a write that passed its check just before the deletion (a
    follow, an upload, a conversation) is swept then. Not awaited by the
    consumer, which goes on; a sweep lost with the process only matters for
    such a racing write."""

    def __init__(self, gone: GoneAccounts, remove: Callable[[int], Awaitable[None]]) -> None:
        self._gone = gone
        self._remove = remove
        self._pending: set[asyncio.Task] = set()

    def schedule(self, user_id: int) -> None:
        task = asyncio.create_task(self._again(user_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _again(self, user_id: int) -> None:
        try:
            await self._until_gone_everywhere(user_id)
            await self._remove(user_id)
        except Exception:
            log.warning("second sweep of a deleted account failed", extra={"user_id": user_id}, exc_info=True)

    async def _until_gone_everywhere(self, user_id: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GONE_WAIT_SECONDS
        while not await self._gone.contains(user_id) and loop.time() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(SETTLE_SECONDS)
