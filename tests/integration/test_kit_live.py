"""services.kit.events.live.LiveHub on the real Redis: one subscription per channel
shared by every watcher of a process, raw messages fanned out to each."""

from __future__ import annotations

import asyncio
import secrets

from services.kit.settings import load_settings
from services.kit.events.live import LiveHub, publish
from services.kit.stores import redis_client
from tests import redis_clients


async def _drain(queue: asyncio.Queue, count: int, timeout: float = 3.0) -> list:
    out = []
    for _ in range(count):
        out.append(await asyncio.wait_for(queue.get(), timeout))
    return out


async def subscribers(client, channel: str) -> int:
    """Subscriptions to a live channel (sharded ones on a cluster, on the channel's node)."""
    if redis_client.is_cluster(client):
        await client.initialize()
        reply = await client.execute_command(
            "PUBSUB", "SHARDNUMSUB", channel, target_nodes=client.get_node_from_key(channel)
        )
        return int(reply[1])
    return (await client.pubsub_numsub(channel))[0][1]


async def test_watchers_share_a_channel_and_each_gets_every_message():
    client = redis_clients.async_from_url(load_settings().redis_url)
    hub = LiveHub(client)
    shared, other = f"live:test:{{{secrets.token_hex(4)}}}", f"live:test:{{{secrets.token_hex(4)}}}"
    try:
        async with hub.listen([shared]) as first, hub.listen([shared, other]) as second:
            await publish(client, shared, b"one")
            await publish(client, other, b"two")
            assert await _drain(first, 1) == [b"one"]
            assert sorted(await _drain(second, 2)) == [b"one", b"two"]
            assert first.empty()
            # One subscription per channel for the whole process.
            assert await subscribers(client, shared) == 1
        # The last watcher gone: unsubscribed.
        for _ in range(50):
            if await subscribers(client, shared) == 0:
                break
            await asyncio.sleep(0.05)
        assert await subscribers(client, shared) == 0
    finally:
        await hub.close()
        await client.aclose()
