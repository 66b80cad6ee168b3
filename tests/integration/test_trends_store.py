"""The trends store's Lua scripts against real Redis: each user counted once per
tag in the window (replays, concurrency, moving forward), and the top list
matching the pure reference in services/trends/windows.py; and the servicer's read
path (shared computation, the last list served through a Redis outage).

Every test uses its own key prefix (its own hash tag) and deletes its keys.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time

import pytest

from aviary.trends.v1 import trends_pb2
from services.kit.settings import Settings, load
from services.kit.server.errors import ApiError
from services.trends.servicer import TrendsServicer
from services.trends.settings import TrendsSettings
from services.trends.store import TrendsStore
from services.trends.windows import Decision, Window, decide, rank
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.integration.support import free_port

WINDOW = Window(bucket_seconds=300, buckets=12, decay=0.8, min_users=3)


@pytest.fixture
async def store():
    prefix = f"trends-test-{secrets.token_hex(4)}"
    made = TrendsStore(Settings(redis_url=REDIS_URL), WINDOW, prefix=prefix)
    yield made
    await made.close()
    r = redis_clients.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{{{prefix}}}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def now_bucket() -> int:
    return WINDOW.bucket_of(time.time())


_post_ids = iter(range(10**15, 10**16))


def new_post() -> int:
    """A fresh post id: what every counted post event carries."""
    return next(_post_ids)


async def test_the_same_post_applied_again_counts_nothing(store):
    b = now_bucket()
    first = new_post()
    assert await store.count(1, first, b, ["alpha", "beta"]) == [Decision.COUNT, Decision.COUNT]
    assert await store.count(1, first, b, ["alpha", "beta"]) == [Decision.DUPLICATE, Decision.DUPLICATE]
    assert await store.count(1, new_post(), b, ["beta", "gamma"]) == [Decision.DUPLICATE, Decision.COUNT]
    assert await store.bucket_counts(b) == {"alpha": 1, "beta": 1, "gamma": 1}


async def test_one_user_posting_a_tag_many_times_concurrently_counts_once(store):
    b = now_bucket()
    decisions = await asyncio.gather(*(store.count(7, new_post(), b, ["spam"]) for _ in range(50)))
    assert sorted(d[0] for d in decisions) == [Decision.DUPLICATE] * 49 + [Decision.COUNT]
    assert await store.bucket_counts(b) == {"spam": 1}


async def test_a_later_post_moves_the_users_count_forward_and_an_older_one_changes_nothing(store):
    b = now_bucket()
    await store.count(1, new_post(), b - 5, ["tag"])
    await store.count(2, new_post(), b - 5, ["tag"])
    assert await store.count(1, new_post(), b - 1, ["tag"]) == [Decision.MOVE]
    assert await store.bucket_counts(b - 5) == {"tag": 1}
    assert await store.bucket_counts(b - 1) == {"tag": 1}
    assert await store.count(2, new_post(), b, ["tag"]) == [Decision.MOVE]
    assert await store.bucket_counts(b - 5) == {}  # emptied members are removed
    assert await store.count(2, new_post(), b - 3, ["tag"]) == [Decision.DUPLICATE]  # late, older event
    assert await store.bucket_counts(b) == {"tag": 1}


async def test_a_marker_from_before_the_window_counts_afresh_and_touches_no_old_bucket(store):
    b = now_bucket()
    r = redis_clients.from_url(REDIS_URL)
    try:
        r.zadd(store.bucket_key(b - 12), {"tag": 1})
        r.hset(store.marker_key(1, "tag"), "1", b - 12)
        r.expire(store.marker_key(1, "tag"), 60)
        assert await store.count(1, new_post(), b, ["tag"]) == [Decision.COUNT]
        assert await store.bucket_counts(b - 12) == {"tag": 1}
        assert await store.bucket_counts(b) == {"tag": 1}
    finally:
        r.close()


async def test_buckets_markers_and_post_records_expire_one_bucket_after_leaving_the_window(store):
    b = now_bucket()
    post_id = new_post()
    await store.count(1, post_id, b - 2, ["tag"])
    r = redis_clients.from_url(REDIS_URL)
    try:
        expected = WINDOW.expire_at(b - 2)
        assert r.expiretime(store.bucket_key(b - 2)) == expected
        assert r.expiretime(store.marker_key(1, "tag")) == expected
        assert r.expiretime(store.post_key(post_id)) == expected
        assert r.hgetall(store.marker_key(1, "tag")) == {str(post_id).encode(): str(b - 2).encode()}
    finally:
        r.close()


async def test_the_top_list_matches_the_reference_on_random_traffic(store):
    rng = random.Random(6)
    current = now_bucket()
    tags = [f"t{i}" for i in range(25)]
    model: dict[tuple[int, str], int] = {}  # (user, tag) -> bucket counted in
    buckets: dict[int, dict[str, int]] = {b: {} for b in WINDOW.window_of(current)}
    for _ in range(600):
        user, bucket = rng.randrange(40), current - rng.randrange(12)
        picked = rng.sample(tags, rng.randrange(1, 4))
        got = await store.count(user, new_post(), bucket, picked)
        for tag, decision in zip(picked, got):
            previous = model.get((user, tag))
            assert decision is decide(previous, bucket, WINDOW.buckets)
            if decision is Decision.DUPLICATE:
                continue
            if decision is Decision.MOVE:
                buckets[previous][tag] -= 1
            buckets[bucket][tag] = buckets[bucket].get(tag, 0) + 1
            model[(user, tag)] = bucket
    for b, counts in buckets.items():
        assert await store.bucket_counts(b) == {t: n for t, n in counts.items() if n > 0}
    expected = rank([buckets[b] for b in WINDOW.window_of(current)], WINDOW.weights(), WINDOW.min_users, 10)
    got = await store.top(current, 10)
    assert [(row.hashtag, row.user_count) for row in got] == [(row.hashtag, row.user_count) for row in expected]
    assert [row.score for row in got] == pytest.approx([row.score for row in expected])
    # Each user is counted once per tag: user counts add up to the distinct (user, tag) pairs.
    everything = await store.top(current, 1000)
    assert sum(row.user_count for row in everything) == sum(
        1 for (_, tag) in model if tag in {row.hashtag for row in everything}
    )


async def test_deleting_the_post_that_holds_a_count_moves_it_back_then_away(store):
    b = now_bucket()
    older, newer = new_post(), new_post()
    await store.count(1, older, b - 5, ["tag", "other"])
    await store.count(1, newer, b - 1, ["tag"])
    assert await store.bucket_counts(b - 1) == {"tag": 1}
    assert await store.bucket_counts(b - 5) == {"other": 1}

    assert await store.uncount(1, newer, b) == 1  # back to the older post's bucket
    assert await store.bucket_counts(b - 1) == {}
    assert await store.bucket_counts(b - 5) == {"tag": 1, "other": 1}
    assert await store.uncount(1, older, b) == 2  # nothing of theirs left: away
    assert await store.bucket_counts(b - 5) == {}

    # Replays change nothing: the deletion again, the creations again.
    assert await store.uncount(1, older, b) == 0
    assert await store.count(1, older, b - 5, ["tag", "other"]) == [Decision.DUPLICATE] * 2
    assert await store.count(1, newer, b - 1, ["tag"]) == [Decision.DUPLICATE]
    assert await store.bucket_counts(b - 5) == {} and await store.bucket_counts(b - 1) == {}


async def test_deleting_a_post_that_does_not_hold_the_count_changes_no_count(store):
    b = now_bucket()
    older, twin_a, twin_b = new_post(), new_post(), new_post()
    await store.count(1, older, b - 3, ["tag"])
    await store.count(1, twin_a, b, ["tag"])
    await store.count(1, twin_b, b, ["tag"])
    assert await store.uncount(1, older, b) == 0  # the count sits in b
    assert await store.uncount(1, twin_a, b) == 0  # its twin in b still holds it
    assert await store.bucket_counts(b) == {"tag": 1}
    assert await store.uncount(1, twin_b, b) == 1  # the last one: the older was deleted too
    assert await store.bucket_counts(b) == {} and await store.bucket_counts(b - 3) == {}
    assert await store.uncount(1, new_post(), b) == 0  # never counted (no tags, too old): nothing


async def test_counts_match_the_reference_on_random_posts_and_deletions(store):
    rng = random.Random(11)
    current = now_bucket()
    tags = [f"t{i}" for i in range(6)]
    live: dict[int, tuple[int, int, list[str]]] = {}  # post -> (user, bucket, tags)
    for _ in range(500):
        if live and rng.random() < 0.35:
            post_id = rng.choice(list(live))
            user = live.pop(post_id)[0]
            await store.uncount(user, post_id, current)
        else:
            post_id, user, bucket = new_post(), rng.randrange(8), current - rng.randrange(12)
            picked = rng.sample(tags, rng.randrange(1, 3))
            await store.count(user, post_id, bucket, picked)
            live[post_id] = (user, bucket, picked)
    # Reference: each (user, tag) counts once, in the bucket of its newest live post.
    newest: dict[tuple[int, str], int] = {}
    for user, bucket, picked in live.values():
        for tag in picked:
            newest[(user, tag)] = max(bucket, newest.get((user, tag), bucket))
    expected: dict[int, dict[str, int]] = {b: {} for b in WINDOW.window_of(current)}
    for (_, tag), bucket in newest.items():
        expected[bucket][tag] = expected[bucket].get(tag, 0) + 1
    for b in WINDOW.window_of(current):
        assert await store.bucket_counts(b) == expected[b], b


async def test_tags_with_fewer_than_min_users_never_appear_and_the_scratch_keys_are_gone(store):
    b = now_bucket()
    for user in range(3):
        await store.count(user, new_post(), b, ["crowd"])
    for user in range(2):
        await store.count(100 + user, new_post(), b, ["pair"])
    for _ in range(20):
        await store.count(999, new_post(), b, ["solo"])
    rows = await store.top(b, 50)
    assert [(row.hashtag, row.user_count, row.score) for row in rows] == [("crowd", 3, 3.0)]
    # A bucket that left the window is not read.
    assert await store.top(b + 12, 50) == []
    r = redis_clients.from_url(REDIS_URL)
    try:
        assert not r.exists(*store._scratch_keys())
    finally:
        r.close()


# -- the servicer's read path: one computation per cache period, stale list on an outage ----------


async def test_reads_share_one_computation_and_an_outage_serves_the_last_list_then_fails(store):

    b = now_bucket()
    for user in range(4):
        await store.count(user, new_post(), b, ["popular"])
    servicer = TrendsServicer(load(TrendsSettings, {"AVIARY_REDIS_URL": REDIS_URL}))
    await servicer.store.close()
    servicer.store = store  # this test's keys
    servicer.cache_seconds = 60.0
    first = await servicer.ListTrends(trends_pb2.ListTrendsRequest(), None)
    assert [(t.hashtag, t.user_count) for t in first.trends] == [("popular", 4)]
    computed = servicer._top
    await store.count(99, new_post(), b, ["popular"])  # within the cache period: not seen yet
    responses = await asyncio.gather(*(servicer.ListTrends(trends_pb2.ListTrendsRequest(), None) for _ in range(20)))
    assert servicer._top is computed and {r.trends[0].user_count for r in responses} == {4}

    # Redis stops answering: the last list stands in while it is young enough...
    unreachable = TrendsStore(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"), WINDOW)
    servicer.store = unreachable
    servicer.cache_seconds = 0.0
    try:
        stale = await servicer.ListTrends(trends_pb2.ListTrendsRequest(), None)
        assert [(t.hashtag, t.user_count) for t in stale.trends] == [("popular", 4)]
        # ... and then the answer is UNAVAILABLE.
        servicer.stale_seconds = 0.0
        with pytest.raises(ApiError) as err:
            await servicer.ListTrends(trends_pb2.ListTrendsRequest(), None)
        assert err.value.code.name == "UNAVAILABLE"
    finally:
        await unreachable.close()
