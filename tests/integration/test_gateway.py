"""The gateway against the real Redis: its GCRA limiter, and the running
gateway's HTTP server spoken to directly (no Envoy involved)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets

import pytest

from gateway.ratelimit import Limit, RateLimiter, action_of, bucket_key
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.settings import load_settings


@pytest.fixture
async def limiter():
    client = BulkRedis(load_settings().redis_url)
    yield RateLimiter(client)
    await client.close()


async def test_burst_then_denied_with_retry_after(limiter):
    key = bucket_key(f"user:{secrets.token_hex(6)}", "write")
    limit = Limit(rate=1, burst=3)
    decisions = [await limiter.check(key, limit) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_seconds == 1


async def test_buckets_are_per_subject_and_action(limiter):
    subject = f"user:{secrets.token_hex(6)}"
    limit = Limit(rate=1, burst=1)
    assert (await limiter.check(bucket_key(subject, "write"), limit)).allowed
    assert not (await limiter.check(bucket_key(subject, "write"), limit)).allowed
    assert (await limiter.check(bucket_key(subject, "read"), limit)).allowed
    assert (await limiter.check(bucket_key(f"user:{secrets.token_hex(6)}", "write"), limit)).allowed


def test_actions_and_keys():
    assert action_of("GET") == "read" and action_of("head") == "read"
    assert action_of("POST") == "write" and action_of("DELETE") == "write"
    # One hash tag per subject: a subject's buckets share a Redis Cluster slot.
    assert bucket_key("user:42", "read") == "rl:{user:42}:read"


async def test_the_script_is_loaded_again_after_redis_forgets_it(limiter):
    await limiter.check(bucket_key(f"user:{secrets.token_hex(6)}", "read"), Limit(rate=1, burst=2))
    assert await limiter._client.execute([("SCRIPT", "FLUSH")]) == [b"OK"]  # as a Redis restart would
    decision = await limiter.check(bucket_key(f"user:{secrets.token_hex(6)}", "read"), Limit(rate=1, burst=2))
    assert decision.allowed and decision.remaining == 1


async def _arrival_time(limiter: RateLimiter, key: str) -> int:
    """The bucket's GCRA timestamp in Redis: it moves only when allowances are taken."""
    (value,) = await limiter._client.execute([("GET", key)])
    return int(value)


def _leasing(limiter: RateLimiter, clock=None, most: int = 10, seconds: float = 60.0) -> RateLimiter:
    return RateLimiter(limiter._client, lease_most=most, lease_seconds=seconds, **({"clock": clock} if clock else {}))


async def test_a_lease_spends_allowances_without_asking_redis(limiter):
    leasing = _leasing(limiter)
    key = bucket_key(f"user:{secrets.token_hex(6)}", "read")
    limit = Limit(rate=1, burst=100)
    first = await leasing.check(key, limit)
    taken_at = await _arrival_time(leasing, key)
    rest = [await leasing.check(key, limit) for _ in range(9)]
    # Ten taken at once (a quarter of 100 is more): Redis is not asked again
    # until they are spent, and each answer says what the subject has left.
    assert await _arrival_time(leasing, key) == taken_at
    assert [d.remaining for d in [first, *rest]] == list(range(99, 89, -1))
    assert all(d.allowed for d in [first, *rest])
    assert (await leasing.check(key, limit)).allowed
    assert await _arrival_time(leasing, key) > taken_at


async def test_replicas_sharing_a_bucket_never_admit_more_than_its_burst(limiter):
    replicas = [_leasing(limiter), _leasing(limiter)]
    key = bucket_key(f"user:{secrets.token_hex(6)}", "write")
    limit = Limit(rate=0.001, burst=40)  # nothing refills during the test
    decisions = await asyncio.gather(*(replica.check(key, limit) for replica in replicas for _ in range(100)))
    # Every allowance either replica spent was taken from the shared bucket,
    # and near the end leases shrink to one: all 40 are spent, no more.
    assert sum(d.allowed for d in decisions) == 40
    assert all(d.retry_after_seconds >= 1 for d in decisions if not d.allowed)


async def test_leases_shrink_as_the_bucket_empties(limiter):
    leasing = _leasing(limiter)
    key = bucket_key(f"user:{secrets.token_hex(6)}", "write")
    limit = Limit(rate=0.001, burst=8)
    decisions = [await leasing.check(key, limit) for _ in range(9)]
    # A quarter of 8 is 2, then of 6 is 1, ...: a subject near its limit is
    # decided by Redis request by request, as without leases.
    assert [d.remaining for d in decisions[:8]] == [7, 6, 5, 4, 3, 2, 1, 0]
    assert [d.allowed for d in decisions] == [True] * 8 + [False]


async def test_a_refusal_is_answered_without_redis_until_the_bucket_would_admit(limiter):
    now = [1000.0]
    leasing = _leasing(limiter, clock=lambda: now[0])
    key = bucket_key(f"user:{secrets.token_hex(6)}", "write")
    limit = Limit(rate=0.5, burst=1)
    assert (await leasing.check(key, limit)).allowed
    refused = await leasing.check(key, limit)
    assert not refused.allowed and refused.retry_after_seconds == 2
    # The bucket is emptied behind the gateway's back: the refusal stands
    # (it is not asked) until its retry time has passed on the gateway's clock.
    assert await limiter._client.execute([("DEL", key)]) == [1]
    now[0] += 1.5
    again = await leasing.check(key, limit)
    assert not again.allowed and again.retry_after_seconds == 1
    now[0] += 0.6
    assert (await leasing.check(key, limit)).allowed


async def test_a_lapsed_lease_is_not_spent(limiter):
    now = [1000.0]
    leasing = _leasing(limiter, clock=lambda: now[0], seconds=5.0)
    key = bucket_key(f"user:{secrets.token_hex(6)}", "read")
    limit = Limit(rate=1, burst=100)
    assert (await leasing.check(key, limit)).allowed
    taken_at = await _arrival_time(leasing, key)
    now[0] += 5.0
    assert (await leasing.check(key, limit)).allowed
    # Its nine left lapsed with it: ten more were taken.
    assert await _arrival_time(leasing, key) == taken_at + 10 * limit.interval_us


# -- the running gateway over raw HTTP/1.1 ------------------------------------------------------

GATEWAY = ("127.0.0.1", int(os.environ.get("AVIARY_GATEWAY_PORT", "8081")))


async def exchange(payload: bytes, answers: int) -> list[tuple[str, dict[str, str], bytes]]:
    """Sends raw bytes on one connection; reads `answers` responses (or until it closes)."""
    reader, writer = await asyncio.open_connection(*GATEWAY)
    writer.write(payload)
    await writer.drain()
    out = []
    try:
        for _ in range(answers):
            status = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
            if not status:
                break
            headers = {}
            while line := (await reader.readline()).decode().strip():
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            out.append((status, headers, body))
    finally:
        writer.close()
    return out


async def test_pipelined_requests_are_answered_in_order_on_one_connection():
    ip = f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(3)}"  # a subject of its own
    ask = (
        f"GET /check/v1/posts/1 HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: {ip}\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n"
        f"POST /check/v1/posts HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: {ip}\r\ncontent-length: 13\r\n\r\n"
        '{"text":"hi"}'
        "GET /v1/nothing-here HTTP/1.1\r\nhost: gw\r\n\r\n"
    ).encode()
    answers = await exchange(ask, 4)
    assert [a[0] for a in answers] == [
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 404 Not Found",
    ]
    assert int(answers[0][1]["x-ratelimit-remaining"]) == 399  # the anonymous read burst, less this one
    assert json.loads(answers[1][2]) == {"status": "ok"}
    assert int(answers[2][1]["x-ratelimit-remaining"]) == 299  # writes are a bucket of their own
    assert json.loads(answers[3][2]) == {"code": 5, "message": "no such endpoint: GET /v1/nothing-here"}


async def test_over_the_limit_is_429_with_retry_after():
    ip = f"203.0.113.{secrets.randbelow(250) + 1}-{secrets.token_hex(3)}"
    one = f"DELETE /check/v1/posts/1 HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: {ip}\r\n\r\n"
    # The anonymous write burst is 300; the rate (100/s) refills a few while
    # they are sent, so some more pass. The gateway runs a connection's
    # requests concurrently (answering in order), and their limit checks may
    # reach Redis in another order (a node that first answers NOSCRIPT), so
    # which requests pass is not positional: how many is.
    answers = await exchange((one * 340).encode(), 340)
    assert sum(a[0] == "HTTP/1.1 200 OK" for a in answers) >= 300
    refused = [a for a in answers if a[0] != "HTTP/1.1 200 OK"]
    assert refused, "no request was refused"
    status, headers, body = refused[0]
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert int(headers["retry-after"]) >= 1 and b"rate limit exceeded" in body
    error = json.loads(body)
    assert error["code"] == 8
    assert error["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{headers['retry-after']}s"}
    ]


async def test_connection_close_and_garbage_end_the_connection():
    closing = await exchange(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n", 2)
    assert len(closing) == 1 and closing[0][1]["connection"] == "close"
    garbage = await exchange(b"\x16\x03\x01 not http at all\r\n\r\n", 2)
    assert len(garbage) == 1 and garbage[0][0] == "HTTP/1.1 400 Bad Request"
