"""services.kit.stores.redis_bulk.BulkRedis on the real Redis: many commands in one
round trip, replies in order, errors as values, its connections reused and a
broken one discarded; reads, and writes said to be idempotent, sent again on a
fresh connection."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from services.kit.peers import accounts
from services.kit.settings import load_settings
from services.kit.stores.redis_bulk import BulkRedis, ReplyError, pack_command


@contextlib.asynccontextmanager
async def bulk_and_client(db: int | None = None):
    """A BulkRedis and a plain client on the devstack's Redis (database `db`
    when given, else the URL's), and a maker of fresh keys that are deleted
    afterwards."""
    url = load_settings().redis_url
    if db is not None:
        url = url.rsplit("/", 1)[0] + f"/{db}"
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    made: list[str] = []

    def new_key() -> str:
        made.append(f"bulk:test:{{{secrets.token_hex(4)}}}")
        return made[-1]

    try:
        yield bulk, client, new_key
    finally:
        if made:
            await client.delete(*made)
        await client.aclose()
        await bulk.close()


async def test_replies_come_back_in_order_with_errors_as_values():
    async with bulk_and_client() as (bulk, client, new_key):
        key, hash_key, list_key = new_key(), new_key(), new_key()
        commands = [
            ("SET", key, "v1"),
            ("GET", key),
            ("HSET", hash_key, "f", 1),
            ("INCR", key),  # not an integer: an error reply, not an exception
            *(("RPUSH", list_key, i) for i in range(2000)),
            ("GET", key),
        ]
        replies = await bulk.execute(commands)
        assert len(replies) == len(commands)
        assert replies[:3] == [b"OK", b"v1", 1]
        assert isinstance(replies[3], ReplyError) and "not an integer" in str(replies[3])
        assert replies[4:-1] == list(range(1, 2001))
        assert replies[-1] == b"v1"
        assert await client.llen(list_key) == 2000


async def test_prepacked_payloads_and_the_database_of_the_url():
    async with bulk_and_client(db=14) as (bulk, client, new_key):
        key = new_key()
        payload = b"".join(pack_command(("ZADD", key, 0, member)) for member in (b"a", b"b", b"a"))
        assert await bulk.execute_packed(payload, 3) == [1, 1, 0]
        # SELECT ran on the bulk connection: the set is in database 14.
        assert await client.zrange(key, 0, -1) == [b"a", b"b"]


async def test_a_connection_is_reused_and_a_killed_one_is_replaced():
    async with bulk_and_client() as (bulk, client, _):
        (first_id,) = await bulk.execute([("CLIENT", "ID")])
        (again_id,) = await bulk.execute([("CLIENT", "ID")])
        assert again_id == first_id
        # Two more idle connections, as concurrent calls leave behind.
        ids = await asyncio.gather(*(bulk.execute([("CLIENT", "ID")]) for _ in range(3)))
        idle_ids = {reply[0] for reply in ids}
        assert len(idle_ids) == 3

        for client_id in idle_ids:
            await client.execute_command("CLIENT", "KILL", "ID", client_id)
        # The call that finds a connection dead fails (the caller decides
        # whether a retry is safe), and the other idle ones are dropped with
        # it: the very next call gets a fresh connection, not another corpse.
        with pytest.raises(ConnectionError):
            await bulk.execute([("CLIENT", "ID")])
        (fresh_id,) = await bulk.execute([("CLIENT", "ID")])
        assert fresh_id not in idle_ids


async def test_a_bursts_connections_are_kept_for_the_next_burst():
    size = 32  # more calls at once than the pool kept before (8)
    async with bulk_and_client() as (bulk, _, _):

        async def burst() -> set[int]:
            # The calls start together, so none finds another's connection released.
            together = asyncio.Barrier(size)

            async def call() -> int:
                await together.wait()
                (client_id,) = await bulk.execute([("CLIENT", "ID")])
                return client_id

            return set(await asyncio.gather(*(call() for _ in range(size))))

        first = await burst()
        assert len(first) == size
        assert await burst() == first


async def test_reads_are_sent_again_on_a_killed_connection_and_error_replies_raise():
    async with bulk_and_client() as (bulk, client, new_key):
        key = new_key()
        await client.set(key, b"v")
        (client_id,) = await bulk.read([("CLIENT", "ID")])
        await client.execute_command("CLIENT", "KILL", "ID", client_id)
        # The idle connection is dead; a read is harmless to repeat, so the
        # caller sees its answer, not the broken connection.
        assert await bulk.read([("GET", key), ("EXISTS", key)]) == [b"v", 1]

        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await bulk.read([("GET", key), ("HGET", key, "field")])


async def test_idempotent_writes_are_sent_again_on_a_killed_connection_and_others_are_not():
    async with bulk_and_client() as (bulk, client, new_key):
        key = new_key()
        (client_id,) = await bulk.execute([("CLIENT", "ID")])
        await client.execute_command("CLIENT", "KILL", "ID", client_id)
        # A SET of the same value may run twice: the caller sees it done.
        assert await bulk.execute([("SET", key, "v", "EX", 60)], idempotent=True) == [b"OK"]
        assert await client.get(key) == b"v"

        (client_id,) = await bulk.execute([("CLIENT", "ID")])
        await client.execute_command("CLIENT", "KILL", "ID", client_id)
        # An INCR may not: the broken connection is the caller's to judge.
        with pytest.raises(ConnectionError):
            await bulk.execute([("INCR", new_key())])


async def test_batched_script_calls_answer_each_item_in_order():
    async with bulk_and_client() as (bulk, client, new_key):
        keys = [new_key() for _ in range(5)]
        # Each item adds its own amount times the shared factor, and says
        # how many keys the call it ran in carried.
        script = """
        local out = {}
        for i = 1, #KEYS do
          out[i] = {#KEYS, redis.call('INCRBY', KEYS[i], ARGV[1] * ARGV[i + 1])}
        end
        return out
        """
        items = [((key,), (i + 1,)) for i, key in enumerate(keys)]
        replies = await bulk.eval_batched(script, items, (10,), idempotent=False, batch_size=2)
        assert replies == [[2, 10], [2, 20], [2, 30], [2, 40], [1, 50]]
        assert await client.mget(keys) == [b"10", b"20", b"30", b"40", b"50"]
        assert await bulk.eval_batched(script, [], (10,), idempotent=False) == []


async def test_scripts_redis_does_not_know_are_loaded_and_each_call_runs_once():
    async with bulk_and_client() as (bulk, client, new_key):
        key = new_key()
        script = f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"  # never loaded yet
        # NOSCRIPT for every call: nothing ran, so loading and sending again
        # runs each exactly once (not idempotent, and still counted right).
        assert await bulk.eval_each(script, [(1, key, 1), (1, key, 10), (1, key, 100)], idempotent=False) == [
            1,
            11,
            111,
        ]
        assert await client.get(key) == b"111"
        assert await bulk.eval_each(script, [(1, key, 1)], idempotent=False) == [112]

        with pytest.raises(ResponseError, match="not an integer"):
            await bulk.eval_each(script, [(1, key, 1), (1, key, "x")], idempotent=True)


async def test_a_write_paths_gone_check_is_asked_through_the_bulk_connections():
    # The plain client reads another database: only the bulk connections see the mark.
    async with bulk_and_client() as (bulk, client, _), bulk_and_client(db=15) as (_, elsewhere, _):
        user = str(secrets.randbits(60))
        gone = accounts.GoneAccounts(elsewhere, refresh_seconds=3600, bulk=bulk)
        assert not await gone.contains(int(user))
        await client.sadd(accounts.GONE_KEY, user)
        try:
            assert await gone.contains(int(user))
        finally:
            await client.srem(accounts.GONE_KEY, user)
        assert not await gone.contains(int(user))
