"""The gateway's GCRA limiter against the real Redis (no Envoy involved)."""
from __future__ import annotations

import secrets

import pytest

from gateway.ratelimit import Limit, RateLimiter, action_of, bucket_key
from services.kit import redis_client
from services.kit.config import load_settings


@pytest.fixture
async def limiter():
    client = redis_client.client(load_settings())
    yield RateLimiter(client)
    await client.aclose()


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
