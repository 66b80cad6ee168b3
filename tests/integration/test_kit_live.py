"""services.kit.events.live.LiveHub on the real Redis: one subscription per channel
shared by every watcher of a process, raw messages fanned out to each."""

from __future__ import annotations

import asyncio
import secrets

from services.kit.settings import load_settings
from services.kit.events.live import LiveHub
from tests import redis_clients


async def _drain(queue: asyncio.Queue, count: int, timeout: float = 3.0) -> list:
    out = []
    for _ in range(count):
        out.append(await asyncio.wait_for(queue.get(), timeout))
    return out


async def test_watchers_share_a_channel_and_each_gets_every_message():
    client = redis_clients.async_from_url(load_settings().redis_url)
    hub = LiveHub(client)
    shared, other = f"live:test:{{{secrets.token_hex(4)}}}", f"live:test:{{{secrets.token_hex(4)}}}"
    try:
        async with hub.listen([shared]) as first, hub.listen([shared, other]) as second:
            await client.publish(shared, b"one")
            await client.publish(other, b"two")
            assert await _drain(first, 1) == [b"one"]
            assert sorted(await _drain(second, 2)) == [b"one", b"two"]
            assert first.empty()
            # One subscription per channel for the whole process.
            assert (await client.pubsub_numsub(shared))[0][1] == 1
        # The last watcher gone: unsubscribed.
        for _ in range(50):
            if (await client.pubsub_numsub(shared))[0][1] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await client.pubsub_numsub(shared))[0][1] == 0
    finally:
        await hub.close()
        await client.aclose()
