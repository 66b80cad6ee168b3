"""Live pushes over Redis pub/sub: one subscriber connection per process.

Writers PUBLISH raw messages on per-recipient channels (timeline: new home
entries; notifications: new or grown notices). A reader process opens one
pub/sub connection and the hub multiplexes it: it keeps a reference count per
channel (SUBSCRIBE on the first watcher, UNSUBSCRIBE after the last) and hands
each message, unchanged, to the queues of the watchers that asked for that
channel, so a thousand open streams cost one Redis connection, not a thousand.
A watcher that falls behind loses its oldest messages; the hub never blocks.
On Redis Cluster the channels are sharded (SSUBSCRIBE/SPUBLISH): a message
travels only within its channel's shard instead of to every node, so the
channel names carry the hash tag of the keys written with them (a script that
announces a write publishes on its keys' node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import redis.asyncio as redis
from redis.asyncio.client import PubSub

from services.kit.stores import redis_client

log = logging.getLogger(__name__)

WATCHER_QUEUE = 256  # messages buffered per slow watcher before the oldest are dropped
# On a cluster the hub polls each node's subscription in turn: how long it
# waits on one idle node before looking at the next (adds at most this times
# the number of nodes to a push).
SHARDED_POLL_SECONDS = 0.05


def publish_command(client: redis.Redis) -> str:
    """The command that publishes on a live channel with this client."""
    return "SPUBLISH" if redis_client.is_cluster(client) else "PUBLISH"


async def publish(client: redis.Redis, channel: str, message: bytes) -> int:
    """Publishes a live message where LiveHub listens for it."""
    return int(await client.execute_command(publish_command(client), channel, message))


class LiveHub:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._sharded = redis_client.is_cluster(client)
        self._pubsub: PubSub | None = None
        self._queues: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listen(self, channels: list[str]):
        """A queue receiving the raw messages published on any of `channels`."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=WATCHER_QUEUE)
        await self._add(queue, channels)
        try:
            yield queue
        finally:
            await self._remove(queue, channels)

    async def _add(self, queue: asyncio.Queue, channels: list[str]) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            new = [c for c in channels if not self._queues.get(c)]
            for channel in channels:
                self._queues[channel].add(queue)
            if new:
                await self._subscribe(new)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read_forever(), name="live-hub-reader")

    async def _remove(self, queue: asyncio.Queue, channels: list[str]) -> None:
        async with self._lock:
            idle = []
            for channel in channels:
                listeners = self._queues.get(channel)
                if listeners is None:
                    continue
                listeners.discard(queue)
                if not listeners:
                    del self._queues[channel]
                    idle.append(channel)
            if idle and self._pubsub is not None:
                if self._sharded:
                    await self._pubsub.sunsubscribe(*idle)
                else:
                    await self._pubsub.unsubscribe(*idle)

    async def _subscribe(self, channels: list[str]) -> None:
        assert self._pubsub is not None
        if self._sharded:
            # Which node serves a channel is known once the slot map is read.
            await self._client.initialize()
            await self._pubsub.ssubscribe(*channels)
        else:
            await self._pubsub.subscribe(*channels)

    async def _next_message(self) -> dict | None:
        assert self._pubsub is not None, "the reader starts after the first subscription"
        if self._sharded:
            if not self._queues:
                # Nothing to poll: redis-py would answer at once, forever.
                await asyncio.sleep(SHARDED_POLL_SECONDS)
                return None
            started = asyncio.get_running_loop().time()
            message = await self._pubsub.get_sharded_message(  # type: ignore[attr-defined]
                ignore_subscribe_messages=True, timeout=SHARDED_POLL_SECONDS
            )
            if message is None and asyncio.get_running_loop().time() - started < SHARDED_POLL_SECONDS / 2:
                # No node subscription to wait on (being moved after a
                # failover): yield to the loop instead of spinning.
                await asyncio.sleep(SHARDED_POLL_SECONDS)
            return message
        return await self._pubsub.get_message(timeout=1.0)

    async def _read_forever(self) -> None:
        while True:
            try:
                message = await self._next_message()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live hub lost its Redis subscription; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
                await self._resubscribe()
                continue
            if message is None or message.get("type") not in ("message", "smessage"):
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            for queue in list(self._queues.get(channel, ())):
                _offer(queue, message["data"])

    async def _resubscribe(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            if self._queues:
                await self._subscribe(list(self._queues))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()


def _offer(queue: asyncio.Queue, item) -> None:
    """Never blocks the hub: a watcher that fell behind loses its oldest entries."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
