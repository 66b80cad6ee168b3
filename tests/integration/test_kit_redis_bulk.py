"""services.kit.redis_bulk.BulkRedis on the real Redis: many commands in one
round trip, replies in order, errors as values, its connections reused and a
broken one discarded; reads sent again on a fresh connection."""
from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from services.kit.config import load_settings
from services.kit.redis_bulk import BulkRedis, ReplyError, pack_command


def _url_with_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


async def test_replies_come_back_in_order_with_errors_as_values():
    url = load_settings().redis_url
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    key, hash_key = f"bulk:test:{{{secrets.token_hex(4)}}}", f"bulk:test:{{{secrets.token_hex(4)}}}"
    try:
        commands = [("SET", key, "v1"), ("GET", key), ("HSET", hash_key, "f", 1),
                    ("INCR", key),  # not an integer: an error reply, not an exception
                    *(("RPUSH", hash_key + "l", i) for i in range(2000)), ("GET", key)]
        replies = await bulk.execute(commands)
        assert len(replies) == len(commands)
        assert replies[:3] == [b"OK", b"v1", 1]
        assert isinstance(replies[3], ReplyError) and "not an integer" in str(replies[3])
        assert replies[4:-1] == list(range(1, 2001))
        assert replies[-1] == b"v1"
        assert await client.llen(hash_key + "l") == 2000
    finally:
        await client.delete(key, hash_key, hash_key + "l")
        await client.aclose()
        await bulk.close()


async def test_prepacked_payloads_and_the_database_of_the_url():
    url = _url_with_db(load_settings().redis_url, 14)
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    key = f"bulk:test:{{{secrets.token_hex(4)}}}"
    try:
        payload = b"".join(pack_command(("ZADD", key, 0, member)) for member in (b"a", b"b", b"a"))
        assert await bulk.execute_packed(payload, 3) == [1, 1, 0]
        # SELECT ran on the bulk connection: the set is in database 14.
        assert await client.zrange(key, 0, -1) == [b"a", b"b"]
    finally:
        await client.delete(key)
        await client.aclose()
        await bulk.close()


async def test_a_connection_is_reused_and_a_killed_one_is_replaced():
    url = load_settings().redis_url
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    try:
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
    finally:
        await client.aclose()
        await bulk.close()


async def test_reads_are_sent_again_on_a_killed_connection_and_error_replies_raise():
    url = load_settings().redis_url
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    key = f"bulk:test:{{{secrets.token_hex(4)}}}"
    try:
        await client.set(key, b"v")
        (client_id,) = await bulk.read([("CLIENT", "ID")])
        await client.execute_command("CLIENT", "KILL", "ID", client_id)
        # The idle connection is dead; a read is harmless to repeat, so the
        # caller sees its answer, not the broken connection.
        assert await bulk.read([("GET", key), ("EXISTS", key)]) == [b"v", 1]

        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await bulk.read([("GET", key), ("HGET", key, "field")])
    finally:
        await client.delete(key)
        await client.aclose()
        await bulk.close()


async def test_scripts_redis_does_not_know_are_loaded_and_each_call_runs_once():
    url = load_settings().redis_url
    bulk, client = BulkRedis(url), redis.Redis.from_url(url)
    key = f"bulk:test:{{{secrets.token_hex(4)}}}"
    script = f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"  # never loaded yet
    try:
        # NOSCRIPT for every call: nothing ran, so loading and sending again
        # runs each exactly once (not idempotent, and still counted right).
        assert await bulk.eval_each(script, [(1, key, 1), (1, key, 10), (1, key, 100)], idempotent=False) == [1, 11, 111]
        assert await client.get(key) == b"111"
        assert await bulk.eval_each(script, [(1, key, 1)], idempotent=False) == [112]

        with pytest.raises(ResponseError, match="not an integer"):
            await bulk.eval_each(script, [(1, key, 1), (1, key, "x")], idempotent=True)
    finally:
        await client.delete(key)
        await client.aclose()
        await bulk.close()
