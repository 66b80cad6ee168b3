"""Which history a Redis deployment's data follows.

A replica promoted in a failover may have missed its master's last writes,
and a restarted Redis may come back with less than it acknowledged: either
way a value read from it (a version, a generation, a count) may be older
than one already read before. A cache that trusts such values keeps the
epoch it was filled under and trusts nothing filled under another.

The epoch names every master's history: its run id (new on each restart)
and its replication id (new when a replica is promoted), from INFO. While a
master cannot be asked (dead, or its slots not yet taken over) the epoch is
unknown: None, and nothing is trusted by it. A master is unreachable for
the cluster's node timeout before a replica takes over, longer than the
watch interval, so a switch is seen as unknown first and then as a new
epoch, never silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import redis.asyncio as redis
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.kit.stores import redis_client
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

CHANGES = Counter("aviary_redis_epoch_changes_total", "Redis epochs seen to change (failovers, restarts)")

WATCH_SECONDS = 0.5


class RedisEpoch:
    def __init__(self, client: redis.Redis, *, interval: float = WATCH_SECONDS) -> None:
        self._client = client
        self._interval = interval
        # None until read, and while some master cannot be asked.
        self.current: bytes | None = None
        # The newest epoch ever read (b"" before any): for writes that must
        # name one even while the current one is unknown.
        self.last_known = b""
        self._read_at = float("-inf")

    async def refresh(self) -> bytes | None:
        """Reads the epoch now; None (and so until the next good read) when some master cannot be asked."""
        self._read_at = time.monotonic()
        try:
            epoch = await read(self._client)
        except (RedisError, OSError) as exc:
            if self.current is not None:
                log.warning("redis epoch unknown: a master cannot be asked", extra={"error": error_text(exc)})
            self.current = None
            return None
        if self.last_known and epoch != self.last_known:
            CHANGES.inc()
            log.warning(
                "redis epoch changed: a failover or restart; state cached under the old one is not trusted",
                extra={"old": self.last_known.decode(), "new": epoch.decode()},
            )
        self.current = self.last_known = epoch
        return epoch

    async def current_within(self, max_age: float) -> bytes | None:
        """The epoch as read at most max_age seconds ago, read now if older:
        for a process that runs no watch. A read is stamped when it starts, so
        callers arriving meanwhile use the epoch they had rather than all asking."""
        if time.monotonic() - self._read_at > max_age:
            await self.refresh()
        return self.current

    async def watch_forever(self) -> None:
        """Background job: keeps `current` up to date."""
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)


async def read(client: redis.Redis) -> bytes:
    """The epoch of the deployment behind `client` (every master of a cluster)."""
    if redis_client.is_cluster(client):
        await client.initialize()  # the slot map (read once)
        primaries = client.get_primaries()  # type: ignore[attr-defined]
        if not primaries:
            raise RedisError("no master known")
        answers = await client.info("server", "replication", target_nodes=primaries)
        infos = list(answers.values())
    else:
        infos = [await client.info("server", "replication")]
    return epoch_of(infos)


def epoch_of(infos: list[dict]) -> bytes:
    """A short name for these masters' histories (INFO server and replication of each)."""
    histories = sorted(f"{info['run_id']}:{info['master_replid']}" for info in infos)
    return hashlib.sha1("|".join(histories).encode()).hexdigest()[:16].encode()
