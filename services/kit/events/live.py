"""Live pushes over Redis pub/sub: one subscriber connection per process.

Writers PUBLISH raw messages on per-recipient channels (timeline: new home
entries; notifications: new or grown notices). A reader process opens one
pub/sub connection and the hub multiplexes it: it keeps a reference count per
channel (SUBSCRIBE on the first watcher, UNSUBSCRIBE after the last) and hands
each message, unchanged, to the queues of the watchers that asked for that
channel, so a thousand open streams cost one Redis connection, not a thousand.
A watcher that falls behind loses its oldest messages; the hub never blocks.
(On Redis Cluster these become sharded channels: SSUBSCRIBE/SPUBLISH with the
same hash tags in the channel names.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import redis.asyncio as redis
from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

WATCHER_QUEUE = 256  # messages buffered per slow watcher before the oldest are dropped


class LiveHub:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
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
                await self._pubsub.subscribe(*new)
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
                await self._pubsub.unsubscribe(*idle)

    async def _read_forever(self) -> None:
        while True:
            try:
                assert self._pubsub is not None, "the reader starts after the first subscription"
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live hub lost its Redis subscription; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
                await self._resubscribe()
                continue
            if message is None or message.get("type") != "message":
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
                await self._pubsub.subscribe(*self._queues)

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
