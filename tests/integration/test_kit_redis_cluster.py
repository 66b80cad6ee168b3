"""The kit's Redis clients on a Redis Cluster (3 masters with a replica each,
started here): the pooled client's scripts and one-slot transactions, the bulk
path routing each command to its slot's master and following MOVED, live
pushes on sharded channels, and reads that carry on after a master is killed
and its replica takes over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from services.kit.events.live import LiveHub, publish
from services.kit.settings import Settings, load
from services.kit.stores import redis_client
from services.kit.stores.redis_bulk import BulkRedis, NotReplicated, ReplyError
from tests.integration.redis_cluster import LocalCluster, local_cluster

# Keys whose hash tags land on every master of a three-master cluster.
KEYS = [f"cluster:test:{{{i}}}" for i in range(64)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


def _client(cluster: LocalCluster):
    return redis_client.client(load(Settings, {"AVIARY_REDIS_URL": cluster.url}))


async def test_the_pooled_client_runs_scripts_and_one_slot_transactions(cluster):
    client = _client(cluster)
    try:
        assert len({key_slot(k.encode()) for k in KEYS}) == len(KEYS)
        increment = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1]) + #KEYS")
        assert [await increment(keys=[key, key + ":other"], args=[2]) for key in KEYS[:3]] == [4, 4, 4]
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(KEYS[0])
            pipe.pexpire(KEYS[0], 60_000, nx=True)
            assert await pipe.execute() == [3, True]
        assert await client.delete(*KEYS) == 3  # keys of many slots: sent to each slot's master
    finally:
        await client.aclose()


async def test_a_fresh_client_takes_many_first_script_calls_at_once(cluster):
    client = _client(cluster)
    try:
        increment = client.register_script("return redis.call('INCR', KEYS[1])")
        replies = await asyncio.gather(*(increment(keys=["cluster:first:{1}"]) for _ in range(50)))
        assert sorted(replies) == list(range(1, 51))
    finally:
        await client.delete("cluster:first:{1}")
        await client.aclose()


async def test_the_bulk_path_sends_each_command_to_its_slots_master(cluster):
    bulk = BulkRedis(cluster.url)
    try:
        replies = await bulk.execute(
            [*(("SET", key, i) for i, key in enumerate(KEYS)), ("INCR", KEYS[5]), ("HSET", KEYS[6], "f", 1)]
        )
        assert replies[: len(KEYS)] == [b"OK"] * len(KEYS)
        assert replies[len(KEYS)] == 6
        assert isinstance(replies[-1], ReplyError) and "WRONGTYPE" in str(replies[-1])  # errors stay values
        expected = [str(i if i != 5 else 6).encode() for i in range(len(KEYS))]
        assert await bulk.read([("GET", key) for key in KEYS]) == expected
        # Nodes never asked before: each answers NOSCRIPT once, then runs it.
        script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
        assert await bulk.eval_each(script, [(1, key, 10) for key in KEYS[:8]], idempotent=True) == [
            10 + (i if i != 5 else 6) for i in range(8)
        ]
        assert await bulk.execute([("UNLINK", *KEYS[:1])]) == [1]
        # Writes each master's replica acknowledged (WAIT at the end of each node's batch).
        assert await bulk.execute([("SET", key, "kept") for key in KEYS], replicas=1) == [b"OK"] * len(KEYS)
    finally:
        await bulk.close()


async def test_batched_script_calls_group_items_by_slot(cluster):
    bulk = BulkRedis(cluster.url)
    try:
        # Two items per slot, interleaved, over slots on every master: a call
        # carries only items of one slot (Redis refuses keys of several).
        items = [((f"cluster:batched:{{{i}}}:{half}",), (i,)) for half in "ab" for i in range(32)]
        script = """
        local out = {}
        for i = 1, #KEYS do
          out[i] = {#KEYS, redis.call('INCRBY', KEYS[i], ARGV[i])}
        end
        return out
        """
        replies = await bulk.eval_batched(script, items, idempotent=True)
        assert replies == [[2, i] for _ in "ab" for i in range(32)]
        assert await bulk.eval_batched(script, items[:3], idempotent=True, batch_size=1) == [
            [1, 2 * i] for i in range(3)
        ]
    finally:
        await bulk.close()


async def test_a_stale_slot_map_is_corrected_by_the_moved_replies(cluster):
    bulk = BulkRedis(cluster.url)
    try:
        await bulk.execute([("SET", key, "v") for key in KEYS])
        router = bulk._cluster
        assert router is not None
        # As if every slot had moved to the first master since the map was read.
        router._slots = [(cluster_host(cluster), cluster.ports[0])] * 16384
        assert await bulk.read([("GET", key) for key in KEYS]) == [b"v"] * len(KEYS)
        assert len(set(router._slots or [])) == 3  # read again after MOVED
    finally:
        await bulk.close()


def cluster_host(cluster: LocalCluster) -> str:
    return cluster.url.split("//")[1].split(":")[0]


async def test_live_pushes_travel_on_sharded_channels(cluster):
    client = _client(cluster)
    hub = LiveHub(client)
    channels = [f"live:test:{{{i}}}" for i in range(12)]
    try:
        async with hub.listen(channels) as queue, hub.listen(channels[:1]) as first_only:
            for channel in channels:
                # SPUBLISH reaches the one subscriber on the channel's shard.
                assert await publish(client, channel, channel.encode()) == 1
            received = [await asyncio.wait_for(queue.get(), 5) for _ in channels]
            assert sorted(received) == sorted(c.encode() for c in channels)
            assert await asyncio.wait_for(first_only.get(), 5) == channels[0].encode()
        for _ in range(50):
            if await publish(client, channels[0], b"late") == 0:
                break
            await asyncio.sleep(0.05)
        assert await publish(client, channels[0], b"late") == 0  # the last watcher gone: unsubscribed
    finally:
        await hub.close()
        await client.aclose()


async def test_reads_carry_on_after_a_master_is_killed_and_its_replica_takes_over(cluster):
    """Last in the module: it leaves the cluster with a promoted replica."""
    bulk, client = BulkRedis(cluster.url), _client(cluster)
    try:
        await bulk.execute([("SET", key, "before") for key in KEYS])
        await client.initialize()
        # Acknowledged by a replica before the master dies: a promoted replica
        # has it (what WAIT does not cover is what a failover may lose).
        for key in KEYS:
            await client.execute_command("WAIT", 1, 1000, target_nodes=client.get_node_from_key(key))
        victim = next(p for p in cluster.ports if cluster.role(p) == "master")
        cluster.kill(victim)
        started, failures, recovered_at = time.monotonic(), 0, None
        while time.monotonic() - started < 30:
            try:
                values = await bulk.read([("GET", key) for key in KEYS])
                pooled = await client.get(KEYS[0])
            except (OSError, ConnectionError, Exception) as exc:  # noqa: BLE001 - the switch, counted
                failures += 1
                last_error = exc
                await asyncio.sleep(0.2)
                continue
            assert values == [b"before"] * len(KEYS) and pooled == b"before"
            recovered_at = time.monotonic()
            if failures:
                break
            await asyncio.sleep(0.05)
        assert recovered_at is not None and failures, f"no failover seen ({failures} failures)"
        assert recovered_at - started < 20, last_error
        await bulk.execute([("SET", key, "after") for key in KEYS])
        assert await client.get(KEYS[-1]) == b"after"
        # The promoted replica has no replica of its own: writes to it cannot
        # be acknowledged, and a caller that needs them kept is told.
        with pytest.raises(NotReplicated, match="0 of 1 replicas acknowledged"):
            await bulk.execute([("SET", key, "unreplicated") for key in KEYS], replicas=1)
    finally:
        await bulk.close()
        await client.aclose()
