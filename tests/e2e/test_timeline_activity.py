"""Timelines at scale: only active readers' timelines are materialized, a
returning reader's is rebuilt on first read, a full timeline is small in
Redis, and the home timeline is still served (from the posts store) while
Redis is down. Through Envoy against the real stack, except where the test
must look at or take away Redis state itself."""

from __future__ import annotations

import secrets

import pytest
import redis

from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.timeline.entries import decode_member, home_key, seen_key
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.e2e.edge import follow, home_ids, post, sign_up, wait_until
from tests.e2e.fanout_support import devstack
from devstack import redis_cluster
from devstack.mesh_channels import open_channel

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

ACTIVE_SECONDS = 7 * 86_400
TIMELINE_MAX = 800
MEMORY_LIMIT_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def rdb():
    client = redis_clients.from_url(REDIS_URL)
    yield client
    client.close()


def go_inactive(rdb, reader) -> None:
    """What seven days without a read do: the marker and the timeline expire."""
    rdb.delete(seen_key(int(reader.id)), home_key(int(reader.id)))


def test_a_follower_who_never_read_has_no_materialized_timeline_until_the_first_read(http, rdb):
    author, active, idle = sign_up(http, "ac"), sign_up(http, "ac"), sign_up(http, "ac")
    follow(http, active, author)
    follow(http, idle, author)
    home_ids(http, active)  # `active` reads, so fanout delivers to them
    created = post(http, author, "who gets this")
    assert wait_until(lambda: created["id"] in home_ids(http, active), timeout=10.0)
    # Fanout has been through this post; the idle follower got nothing stored.
    assert not rdb.exists(home_key(int(idle.id)))
    assert not rdb.exists(seen_key(int(idle.id)))
    # Their first read rebuilds the timeline from the posts store.
    assert home_ids(http, idle) == [created["id"]]
    assert rdb.exists(seen_key(int(idle.id)))
    assert rdb.zcard(home_key(int(idle.id))) == 1


def test_a_returning_reader_gets_the_right_posts_rebuilt_on_first_read(http, rdb):
    first, second, reader, other = (sign_up(http, "rt") for _ in range(4))
    for author in (first, second):
        follow(http, reader, author)
        follow(http, other, author)
    home_ids(http, reader)
    home_ids(http, other)
    before = [post(http, first, "old one"), post(http, second, "old two")]
    assert wait_until(lambda: {p["id"] for p in before} <= set(home_ids(http, reader)), timeout=10.0)

    go_inactive(rdb, reader)
    while_away = [post(http, second, "while away 1"), post(http, first, "while away 2"), post(http, second, "3")]
    # `other` (active) got them: fanout is past them, and skipped the reader.
    assert wait_until(lambda: {p["id"] for p in while_away} <= set(home_ids(http, other)), timeout=10.0)
    assert not rdb.exists(home_key(int(reader.id)))

    expected = [p["id"] for p in reversed(before + while_away)]
    assert home_ids(http, reader) == expected  # newest first, nothing missing, nothing twice
    # And from now on fanout delivers to the reader again.
    later = post(http, first, "after the return")
    assert wait_until(lambda: home_ids(http, reader)[:1] == [later["id"]], timeout=10.0)
    assert home_ids(http, reader) == [later["id"], *expected]


def test_a_rebuild_stores_each_pure_repost_with_its_original(http, rdb):
    author, reposter, reader = (sign_up(http, "rr") for _ in range(3))
    follow(http, reader, author)
    follow(http, reader, reposter)
    original = post(http, author, "worth reposting")
    r = http.post(f"/v1/posts/{original['id']}:repost", headers=reposter.auth)
    assert r.status_code == 200, r.text
    repost = r.json()
    quote = http.post("/v1/posts", json={"text": "quoting", "repostOfId": original["id"]}, headers=reposter.auth)
    assert quote.status_code == 200, quote.text

    go_inactive(rdb, reader)
    # The original once, under its repost's place; the quote apart.
    assert home_ids(http, reader) == [quote.json()["id"], original["id"]]
    stored = {
        entry.post_id: entry.original_id for entry in map(decode_member, rdb.zrange(home_key(int(reader.id)), 0, -1))
    }
    assert stored == {int(quote.json()["id"]): 0, int(repost["id"]): int(original["id"]), int(original["id"]): 0}


def test_reading_marks_the_reader_active_for_the_configured_period(http, rdb):
    author, reader = sign_up(http, "tt"), sign_up(http, "tt")
    follow(http, reader, author)
    post(http, author, "something to materialize")
    home_ids(http, reader)
    for key in (seen_key(int(reader.id)), home_key(int(reader.id))):
        ttl = rdb.ttl(key)
        assert ACTIVE_SECONDS - 60 <= ttl <= ACTIVE_SECONDS, (key, ttl)


def test_a_full_timeline_costs_at_most_16_kb_in_redis(rdb):
    """800 entries through the real delivery path; MEMORY USAGE is reported."""
    user_id = (1 << 62) + secrets.randbits(56)
    rdb.set(seen_key(user_id), b"1", ex=600)
    channel = open_channel("timeline")
    try:
        stub = timeline_pb2_grpc.TimelineServiceStub(channel)
        first_post = (1 << 61) + secrets.randbits(40)
        requests = (
            timeline_pb2.DeliverEntriesRequest(
                op=timeline_pb2.DELIVERY_OP_ADD,
                entry=timeline_pb2.TimelineEntry(post_id=first_post + i, author_id=(1 << 60) + i % 50),
                user_ids=[user_id],
            )
            for i in range(TIMELINE_MAX + 100)
        )
        reply = stub.DeliverEntries(requests, timeout=60)
        assert reply.timelines == TIMELINE_MAX + 100
        assert rdb.zcard(home_key(user_id)) == TIMELINE_MAX  # trimmed to the newest 800
        used = rdb.memory_usage(home_key(user_id), samples=0)
        print(f"\nMEMORY USAGE of a full {TIMELINE_MAX}-entry home timeline: {used} bytes")
        assert used <= MEMORY_LIMIT_BYTES, f"{used} bytes > {MEMORY_LIMIT_BYTES}"
        assert rdb.object("encoding", home_key(user_id)) == b"listpack"
    finally:
        channel.close()
        rdb.delete(seen_key(user_id), home_key(user_id))


@pytest.fixture
def redis_restored():
    yield
    devstack("up", "redis")
    assert wait_until(_redis_answers, timeout=30.0, interval=0.25)
    # Later tests get services with fresh Redis connections and subscriptions.
    users = ["gateway", "graph", "timeline", "engagement", "notifications"]
    devstack("down", *users)
    devstack("up", *users)


def _redis_answers() -> bool:
    try:
        return redis_clients.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.mark.skipif(
    redis_cluster.ENABLED, reason="stops the single Redis; a cluster master going away is test_redis_failover.py's"
)
def test_with_redis_down_home_is_served_from_the_posts_store_and_posting_works(http, redis_restored):
    author, reader = sign_up(http, "rd"), sign_up(http, "rd")
    follow(http, reader, author)
    earlier = post(http, author, "before redis went away")
    assert wait_until(lambda: home_ids(http, reader)[:1] == [earlier["id"]], timeout=10.0)

    devstack("down", "redis")
    # Posting is acknowledged (posts lives in Cassandra; fanout waits for Redis).
    r = http.post("/v1/posts", json={"text": "while redis is down"}, headers=author.auth)
    assert r.status_code == 200, r.text
    during = r.json()
    # The home timeline still answers, degraded: pulled from the posts store.
    r = http.get("/v1/timelines/home", params={"pageSize": 10}, headers=reader.auth)
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["posts"]] == [during["id"], earlier["id"]]
    # Paging works in the degraded mode too.
    r = http.get("/v1/timelines/home", params={"pageSize": 1}, headers=reader.auth)
    assert r.status_code == 200 and r.json()["nextPageToken"], r.text
    r = http.get(
        "/v1/timelines/home", params={"pageSize": 1, "pageToken": r.json()["nextPageToken"]}, headers=reader.auth
    )
    assert [p["id"] for p in r.json()["posts"]] == [earlier["id"]]

    devstack("up", "redis")
    # Fanout catches up once Redis is back: the post is materialized too.
    assert wait_until(lambda: home_ids(http, reader)[:2] == [during["id"], earlier["id"]], timeout=30.0)
