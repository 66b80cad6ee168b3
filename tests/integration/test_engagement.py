"""engagement against the real stack: gRPC, Redis hot counters, Cassandra, Kafka.

The durability tests take counters away from Redis the way a restart without
persistence or a flush would (deleting the keys) and check that no count is
lost: counts come back from the Cassandra snapshot or, when the snapshot may
be missing recent changes, from the like/repost/reply edges.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import secrets
import time

import grpc
import pytest
import redis.asyncio as aioredis
from kafka import KafkaConsumer, TopicPartition

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.engagement.counters import DIRTY_SETS, HotCounters, counter_key, dirty_key, dirty_set
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch
from services.engagement.by_me import LIKED, ByMeCache, liked_key
from services.kit.peers.engagement_reads import FLOOR
from services.engagement.store import EngagementStore
from services.kit.settings import load_settings
from services.kit.events.kafka import ENGAGEMENT_TOPIC, TOPICS, ensure_topics
from tests import redis_clients
from tests.conftest import REDIS_URL
from devstack.mesh_channels import open_channel

PASSWORD = "correct horse battery"
RPC_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def channels():
    opened = {name: open_channel(name) for name in ("identity", "posts", "engagement")}
    for channel in opened.values():
        grpc.channel_ready_future(channel).result(timeout=15)
    yield opened
    for channel in opened.values():
        channel.close()


@pytest.fixture(scope="module")
def identity(channels):
    return identity_pb2_grpc.IdentityServiceStub(channels["identity"])


@pytest.fixture(scope="module")
def posts(channels):
    return posts_pb2_grpc.PostsServiceStub(channels["posts"])


@pytest.fixture(scope="module")
def engagement(channels):
    return engagement_pb2_grpc.EngagementServiceStub(channels["engagement"])


@pytest.fixture(scope="module")
def rdb():
    client = redis_clients.from_url(REDIS_URL)
    yield client
    client.close()


class Account:
    def __init__(self, user: identity_pb2.User, token: str) -> None:
        self.id = user.id
        self.auth = (("authorization", f"Bearer {token}"),)


def sign_up(identity) -> Account:
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password=PASSWORD),
        timeout=RPC_TIMEOUT,
    )
    return Account(resp.user, resp.access_token)


def create(posts, author: Account, text: str = "hello", **fields) -> posts_pb2.Post:
    return posts.CreatePost(posts_pb2.CreatePostRequest(text=text, **fields), metadata=author.auth, timeout=RPC_TIMEOUT)


def like(engagement, who: Account, post_id: str) -> engagement_pb2.PostEngagement:
    return engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT)


def counts(engagement, post_id: str, viewer: str = "") -> engagement_pb2.PostEngagement:
    reply = engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id], viewer_id=viewer), timeout=RPC_TIMEOUT
    )
    return reply.engagements[0]


def wait_for(predicate, deadline_s: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def drop_from_redis(rdb, post_ids: list[str]) -> None:
    """What Redis losing its data does to these posts' counters."""
    rdb.delete(*(counter_key(int(p)) for p in post_ids))
    for post_id in post_ids:
        rdb.srem(dirty_key(dirty_set(int(post_id))), post_id)


def cassandra_execute(query: str, params: tuple):
    from cassandra.cluster import Cluster

    settings = load_settings()
    cluster = Cluster(list(settings.cassandra_hosts), port=settings.cassandra_port, protocol_version=4)
    try:
        return cluster.connect().execute(query, params).one()
    finally:
        cluster.shutdown()


def cassandra_snapshot(post_id: str):
    return cassandra_execute(
        "SELECT likes, reposts, replies, flushed_at, last_change FROM aviary_engagement.post_counts WHERE post_id = %s",
        (int(post_id),),
    )


# -- tests ----------------------------------------------------------------------------


def test_counts_survive_redis_losing_them_right_after_the_change(identity, posts, engagement, rdb):
    author = sign_up(identity)
    fans = [sign_up(identity) for _ in range(4)]
    target = create(posts, author, "remember my likes")
    for fan in fans:
        like(engagement, fan, target.id)
    reply = create(posts, fans[0], "a reply", reply_to_id=target.id)
    repost = posts.RepostPost(
        posts_pb2.RepostPostRequest(post_id=target.id), metadata=fans[1].auth, timeout=RPC_TIMEOUT
    )
    assert wait_for(
        lambda: counts(engagement, target.id).reply_count == 1 and counts(engagement, target.id).repost_count == 1
    )
    # Lost before (or just after) a flush: the snapshot cannot be trusted for
    # changes this recent, so the counts are recounted from the edges.
    drop_from_redis(rdb, [target.id])
    after = counts(engagement, target.id, viewer=fans[2].id)
    assert (after.like_count, after.repost_count, after.reply_count) == (4, 1, 1)
    assert after.liked_by_me
    assert rdb.hmget(counter_key(int(target.id)), "l", "r", "p") == [b"4", b"1", b"1"]  # reloaded
    # And increments after the reload land on the reloaded counts.
    like(engagement, author, target.id)
    assert counts(engagement, target.id).like_count == 5
    assert reply.id and repost.id


def test_hot_counters_are_flushed_to_cassandra(identity, posts, engagement):
    author, fan, other = sign_up(identity), sign_up(identity), sign_up(identity)
    target = create(posts, author, "flush me")
    like(engagement, fan, target.id)
    like(engagement, other, target.id)
    row = wait_for(lambda: (r := cassandra_snapshot(target.id)) is not None and r.likes == 2 and r)
    assert row, "the like count never reached Cassandra"
    assert row.flushed_at is not None and row.last_change is not None


def test_a_snapshot_taken_well_after_the_last_change_is_loaded_as_is(identity, posts, engagement, rdb):
    """Cold posts reload from the snapshot without scanning their edges."""
    author, fan = sign_up(identity), sign_up(identity)
    target = create(posts, author, "old news")
    like(engagement, fan, target.id)
    assert wait_for(lambda: (r := cassandra_snapshot(target.id)) is not None and r.likes == 1)
    # Age the change mark by an hour and plant a marker count in the snapshot:
    # if the reload trusts the snapshot (as it should), the marker shows.
    cassandra_execute(
        "UPDATE aviary_engagement.post_counts SET likes = 7, last_change = %s WHERE post_id = %s",
        (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1), int(target.id)),
    )
    drop_from_redis(rdb, [target.id])
    assert counts(engagement, target.id).like_count == 7
    # Whereas a recent change makes the same reload recount the edges.
    cassandra_execute(
        "UPDATE aviary_engagement.post_counts SET last_change = %s WHERE post_id = %s",
        (datetime.datetime.now(datetime.timezone.utc), int(target.id)),
    )
    drop_from_redis(rdb, [target.id])
    assert counts(engagement, target.id).like_count == 1


def test_like_events_reach_kafka(identity, posts, engagement):
    bootstrap = load_settings().kafka_bootstrap
    ensure_topics(bootstrap, {ENGAGEMENT_TOPIC: TOPICS[ENGAGEMENT_TOPIC]})
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"t_eng_{secrets.token_hex(4)}", enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(ENGAGEMENT_TOPIC, p) for p in sorted(consumer.partitions_for_topic(ENGAGEMENT_TOPIC))]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)
        author, fan = sign_up(identity), sign_up(identity)
        target = create(posts, author, "tell kafka")
        like(engagement, fan, target.id)
        like(engagement, fan, target.id)  # idempotent: no second event
        engagement.UnlikePost(
            engagement_pb2.UnlikePostRequest(post_id=target.id), metadata=fan.auth, timeout=RPC_TIMEOUT
        )
        seen: list[events_pb2.EngagementEvent] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(seen) < 2:
            for batch in consumer.poll(timeout_ms=250).values():
                for record in batch:
                    event = events_pb2.EngagementEvent()
                    event.ParseFromString(record.value)
                    kind = event.WhichOneof("kind")
                    body = getattr(event, kind)
                    if body.post_id == int(target.id):
                        assert record.key == target.id.encode()
                        seen.append(event)
        # A moment more, to catch a duplicate like event if there were one.
        for batch in consumer.poll(timeout_ms=1000).values():
            for record in batch:
                event = events_pb2.EngagementEvent()
                event.ParseFromString(record.value)
                if getattr(event, event.WhichOneof("kind")).post_id == int(target.id):
                    seen.append(event)
    finally:
        consumer.close(autocommit=False)
    assert [e.WhichOneof("kind") for e in seen] == ["like_created", "like_removed"]
    created = seen[0].like_created
    assert (created.user_id, created.post_author_id) == (int(fan.id), int(author.id))


def unlike(engagement, who: Account, post_id: str) -> engagement_pb2.PostEngagement:
    return engagement.UnlikePost(
        engagement_pb2.UnlikePostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT
    )


def liked_by(engagement, viewer: Account, post_ids: list[str]) -> list[bool]:
    reply = engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids, viewer_id=viewer.id), timeout=RPC_TIMEOUT
    )
    return [e.liked_by_me for e in reply.engagements]


def test_liked_by_me_is_reloaded_from_cassandra_after_redis_loses_it(identity, posts, engagement, rdb):
    author, fan = sign_up(identity), sign_up(identity)
    kept, dropped, never = (create(posts, author, f"post {i}").id for i in range(3))
    like(engagement, fan, kept)
    like(engagement, fan, dropped)
    unlike(engagement, fan, dropped)
    assert liked_by(engagement, fan, [kept, dropped, never]) == [True, False, False]
    assert rdb.hget(liked_key(int(fan.id)), FLOOR) == b"0"  # loaded: the fan's every like is in it
    rdb.delete(liked_key(int(fan.id)))
    assert liked_by(engagement, fan, [kept, dropped, never]) == [True, False, False]
    assert rdb.hget(liked_key(int(fan.id)), kept) == b"1"


@pytest.fixture
async def liked_cache_parts():
    """A ByMeCache's parts, in this process, on the real Redis and Cassandra."""

    store = EngagementStore(load_settings())
    client, bulk = redis_clients.async_from_url(REDIS_URL), BulkRedis(REDIS_URL)
    await store.start(producer=None)
    yield client, store, bulk
    await bulk.close()
    await client.aclose()
    await store.stop()


async def _epoch(client) -> RedisEpoch:
    epoch = RedisEpoch(client)
    assert await epoch.refresh()
    return epoch


async def read_liked(cache: ByMeCache, client, user_id: int, asked: list[int]) -> set[int]:
    name, *args = cache.read_command(user_id, asked)
    row = await client.execute_command(name.decode(), *args)  # a cluster client routes by a str name
    return await cache.finish_read(user_id, asked, row)


async def test_likes_older_than_the_cached_window_are_asked_of_cassandra(
    identity, posts, engagement, liked_cache_parts
):
    client, store, bulk = liked_cache_parts
    author, fan = sign_up(identity), sign_up(identity)
    post_ids = [int(create(posts, author, f"liked {i}").id) for i in range(4)]
    unliked = int(create(posts, author, "not liked").id)
    for post_id in post_ids:
        like(engagement, fan, str(post_id))
    # A window of the newest two likes: the two older ones lie below its floor.
    cache = ByMeCache(client, store, await _epoch(client), LIKED, bulk=bulk, load_size=2, ttl_seconds=60)
    await client.delete(liked_key(int(fan.id)))
    assert await read_liked(cache, client, int(fan.id), [*post_ids, unliked]) == set(post_ids)
    assert int(await client.hget(liked_key(int(fan.id)), FLOOR)) == post_ids[2]
    assert await client.hlen(liked_key(int(fan.id))) == 4  # the floor, the epoch and the two newest


async def test_a_load_does_not_undo_an_unlike_that_landed_during_it(identity, posts, engagement, liked_cache_parts):
    client, store, bulk = liked_cache_parts
    author, fan = sign_up(identity), sign_up(identity)
    first, second = int(create(posts, author, "first").id), int(create(posts, author, "second").id)
    like(engagement, fan, str(first))
    like(engagement, fan, str(second))
    cache = ByMeCache(client, store, await _epoch(client), LIKED, bulk=bulk, load_size=100, ttl_seconds=60)
    await client.delete(liked_key(int(fan.id)))
    # The load below reads Cassandra with both likes in it, as if it had read
    # just before an unlike of `first` that then reached Redis ahead of it.
    await cache.record(int(fan.id), first, False)
    assert await read_liked(cache, client, int(fan.id), [first, second]) == {second}
    assert await client.hget(liked_key(int(fan.id)), FLOOR) == b"0"


async def test_likes_held_from_before_a_redis_failover_are_reloaded(identity, posts, engagement, liked_cache_parts):
    """A promoted replica may lack a like and an unlike its master
    acknowledged: a reader's hash of another Redis epoch is reloaded whole
    from Cassandra, and a writer drops it."""
    client, store, bulk = liked_cache_parts
    author, fan = sign_up(identity), sign_up(identity)
    liked, unliked = int(create(posts, author, "liked").id), int(create(posts, author, "unliked").id)
    like(engagement, fan, str(liked))
    cache = ByMeCache(client, store, await _epoch(client), LIKED, bulk=bulk, load_size=100, ttl_seconds=60)
    key = liked_key(int(fan.id))
    # The fan's hash as the promoted replica holds it: the like lost, and an
    # unlike of `unliked` lost too.
    held = cache.epoch.last_known
    await client.delete(key)
    await client.hset(key, mapping={FLOOR: 0, "_ep": held, unliked: "1"})
    assert await read_liked(cache, client, int(fan.id), [liked, unliked]) == {unliked}  # trusted in its epoch

    cache.epoch.last_known = b"0123456789abcdef"
    assert await read_liked(cache, client, int(fan.id), [liked, unliked]) == {liked}
    assert await client.hget(key, "_ep") == b"0123456789abcdef"

    # A writer in a newer epoch drops the hash (the next reader loads it whole).
    cache.epoch.last_known = b"fedcba9876543210"
    await cache.record(int(fan.id), unliked, False)
    assert await client.hgetall(key) == {str(unliked).encode(): b"0", b"_ep": b"fedcba9876543210"}


def test_batch_get_engagement_validates_its_input(engagement):
    with pytest.raises(grpc.RpcError) as err:
        engagement.BatchGetEngagement(
            engagement_pb2.BatchGetEngagementRequest(post_ids=[str(i + 1) for i in range(201)]), timeout=RPC_TIMEOUT
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "post_ids" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        engagement.BatchGetEngagement(engagement_pb2.BatchGetEngagementRequest(post_ids=["x"]), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "post_ids[0]" in err.value.details()


def test_like_needs_a_caller(engagement):
    with pytest.raises(grpc.RpcError) as err:
        engagement.LikePost(engagement_pb2.LikePostRequest(post_id="1"), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_stream_engagement_answers_each_batch_by_id_and_a_bad_batch_does_not_end_it(identity, posts, engagement):
    author, fan = sign_up(identity), sign_up(identity)
    first, second = create(posts, author, "streamed one").id, create(posts, author, "streamed two").id
    like(engagement, fan, first)
    batches = [
        (7, engagement_pb2.BatchGetEngagementRequest(post_ids=[first, second], viewer_id=fan.id)),
        (3, engagement_pb2.BatchGetEngagementRequest(post_ids=["x"])),  # fails alone
        (9, engagement_pb2.BatchGetEngagementRequest(post_ids=[second, first])),
    ]
    requests = (engagement_pb2.StreamEngagementRequest(request_id=i, batch=b) for i, b in batches)
    answers = {r.request_id: r for r in engagement.StreamEngagement(requests, timeout=RPC_TIMEOUT)}

    assert set(answers) == {7, 3, 9}  # every batch answered, then the stream ended cleanly
    assert answers[3].status_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answers[3].status_message.startswith("post_ids[0]")
    for request_id, batch in batches[::2]:
        assert answers[request_id].status_code == 0
        # The same answer as the unary call.
        assert answers[request_id].batch == engagement.BatchGetEngagement(batch, timeout=RPC_TIMEOUT)
    assert [(e.like_count, e.liked_by_me) for e in answers[7].batch.engagements] == [(1, True), (0, False)]


async def _a_reply_begun(counters: HotCounters, store: EngagementStore, client) -> tuple[int, int]:
    """A new post and a reply to it as the consumer applies one, up to its
    count: the change mark, then the edge. Returns the post and when the
    edge write began."""
    post_id = secrets.randbits(60)
    await client.delete(counter_key(post_id))
    began = await counters.clock(post_id)
    await store.mark_changed(post_id, datetime.datetime.now(datetime.timezone.utc))
    assert await store.add_reply(post_id, secrets.randbits(60))
    return post_id, began


async def _counters(client, store, bulk, trust_margin: float = 2.0) -> HotCounters:
    epoch = RedisEpoch(client)
    assert await epoch.refresh()
    return HotCounters(client, store, epoch, bulk=bulk, ttl_seconds=60, flush_interval=1.0, trust_margin=trust_margin)


async def test_a_cold_page_loads_its_counts_and_likes_without_the_redis_pool(
    identity, posts, engagement, liked_cache_parts
):
    """After a cold start every page loads counters and its reader's likes
    at once; loads that each held a connection of the service's redis-py
    pool ran it dry ("No connection available"), and a failed load cached
    nothing for the next page. They go in bulk, as the reads do."""
    client, store, bulk = liked_cache_parts
    author, fan = sign_up(identity), sign_up(identity)
    liked, unliked = int(create(posts, author, "liked").id), int(create(posts, author, "unliked").id)
    like(engagement, fan, str(liked))
    epoch = await _epoch(client)
    # Nothing listens there: any command on this pool fails.
    no_pool = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    # No margin: the like's snapshot is trusted once engagement has flushed it.
    counters = HotCounters(no_pool, store, epoch, bulk=bulk, ttl_seconds=60, flush_interval=1.0, trust_margin=0.0)
    cache = ByMeCache(no_pool, store, epoch, LIKED, bulk=bulk, load_size=100, ttl_seconds=60)
    deadline = time.monotonic() + 10
    while not counters._trusts((await store.snapshots([liked]))[0]):
        assert time.monotonic() < deadline, "engagement never flushed the like's count"
        await asyncio.sleep(0.2)
    await client.delete(counter_key(liked), counter_key(unliked), liked_key(int(fan.id)))

    cold = [None] * 5
    counts = await counters.finish_reads([liked, unliked], [cold, cold])
    assert (counts[liked].likes, counts[unliked].likes) == (1, 0)
    assert await read_liked(cache, client, int(fan.id), [liked, unliked]) == {liked}
    # Installed for the next page.
    assert await client.hmget(counter_key(liked), "l", "ep") == [b"1", epoch.last_known]
    assert await client.hget(liked_key(int(fan.id)), str(liked)) == b"1"
    await no_pool.aclose()


async def test_pages_reading_the_same_cold_counter_at_once_load_it_once(liked_cache_parts):
    """A celebrity's post is on every reader's page: on a cold cache each
    page loading it again swamped Cassandra and the Redis pool."""
    client, store, bulk = liked_cache_parts
    counters = await _counters(client, store, bulk)
    post_id, _ = await _a_reply_begun(counters, store, client)
    loads: list[list[int]] = []
    load_many = counters._load_many

    async def counted(asked: list[int]):
        loads.append(list(asked))
        return await load_many(asked)

    counters._load_many = counted  # type: ignore[method-assign]
    cold = [None] * 5
    answers = await asyncio.gather(*(counters.finish_reads([post_id], [cold]) for _ in range(20)))
    assert loads == [[post_id]]
    assert {a[post_id].replies for a in answers} == {1}

    # A page's cold counters load in one batch; a page after it loads only
    # those not already in flight.
    other, _ = await _a_reply_begun(counters, store, client)
    third, _ = await _a_reply_begun(counters, store, client)
    await client.delete(counter_key(post_id))
    first_page = asyncio.ensure_future(counters.finish_reads([post_id, other], [cold, cold]))
    await asyncio.sleep(0)
    second_page = await counters.finish_reads([other, third], [cold, cold])
    assert loads[1:] == [[post_id, other], [third]]
    assert {p: c.replies for p, c in (await first_page).items()} == {post_id: 1, other: 1}
    assert {p: c.replies for p, c in second_page.items()} == {other: 1, third: 1}

    # A page that stops waiting leaves the load to the others; a later cold read loads again.
    await client.delete(counter_key(post_id))
    impatient = asyncio.ensure_future(counters.finish_reads([post_id], [cold]))
    patient = asyncio.ensure_future(counters.finish_reads([post_id], [cold]))
    await asyncio.sleep(0)
    impatient.cancel()
    assert (await patient)[post_id].replies == 1 and loads[3:] == [[post_id]]


async def test_a_flush_round_asks_for_the_sets_this_process_marked_and_now_and_then_for_all(liked_cache_parts):
    """An idle flusher asks Redis nothing; a change's dirty set is popped in
    the next round; a mark this process did not note (another engagement
    process's, or its own before a restart) waits for the next full round."""
    client, store, bulk = liked_cache_parts
    counters = await _counters(client, store, bulk, trust_margin=600.0)
    asked: list[list[int]] = []
    pop_dirty = counters._pop_dirty

    async def recording(sets: list[int]):
        asked.append(list(sets))
        return await pop_dirty(sets)

    counters._pop_dirty = recording  # type: ignore[method-assign]
    await counters.flush_once()
    assert asked == [list(range(DIRTY_SETS))]  # a process's first round is a full one
    await counters.flush_once()
    assert asked[1:] == []  # idle: nothing asked

    post_id, began = await _a_reply_begun(counters, store, client)
    await counters.add(post_id, "replies", +1, began)
    await counters.flush_once()
    assert asked[1:] == [[dirty_set(post_id)]]
    assert ((await store.snapshots([post_id]))[0]).flushed_at is not None

    elsewhere = next(p for p in iter(lambda: secrets.randbits(60), None) if dirty_set(p) != dirty_set(post_id))
    await client.sadd(dirty_key(dirty_set(elsewhere)), elsewhere)
    await counters.flush_once()
    assert asked[2:] == []
    counters._full_flush_at = 0.0  # FULL_FLUSH_SECONDS have passed
    await counters.flush_once()
    assert asked[2:] == [list(range(DIRTY_SETS))]


async def test_counts_held_from_before_a_redis_failover_are_reloaded_and_never_flushed(liked_cache_parts):
    """A promoted replica may hold a post's hash without its last
    increments: the flusher copies a hash to Cassandra only in the epoch it
    confirmed after reading it, and a hash of another Redis epoch is
    reloaded (recounted, as the change is recent) on its next read."""
    client, store, bulk = liked_cache_parts
    # However slow this test runs, the reply counts as recent (no snapshot is trusted).
    counters = await _counters(client, store, bulk, trust_margin=600.0)
    held = counters.epoch.last_known
    post_id, _ = await _a_reply_begun(counters, store, client)
    # The hash as the promoted replica holds it: the reply's increment lost.
    await _install_no_counts(client, post_id, held)

    # The epoch is unknown when confirmed (a master cannot be asked): nothing is flushed.
    counters.epoch.refresh = _unknown_epoch(counters.epoch)  # type: ignore[method-assign]
    await counters._flush([post_id])
    assert ((await store.snapshots([post_id]))[0]).flushed_at is None
    del counters.epoch.refresh
    await counters._flush([post_id])
    assert ((await store.snapshots([post_id]))[0]).flushed_at is not None  # confirmed: flushed

    # The watcher read a new epoch: the old hash is reloaded, by a recount.
    counters.epoch.last_known = b"0123456789abcdef"
    row = await client.hmget(counter_key(post_id), "l", "r", "p", "q", "ep")
    assert row[4] == held
    assert (await counters.finish_reads([post_id], [row]))[post_id].replies == 1
    assert await client.hmget(counter_key(post_id), "p", "ep") == [b"1", b"0123456789abcdef"]


async def _install_no_counts(client, post_id: int, epoch: bytes) -> None:
    """A counter hash of the epoch as a load of a snapshot without counts installs it."""
    await client.hset(counter_key(post_id), mapping={"l": 0, "r": 0, "p": 0, "q": 0, "rs": 0, "re": 0, "ep": epoch})


def _unknown_epoch(epoch: RedisEpoch):
    async def refresh():
        epoch.current = None
        return None

    return refresh


async def test_a_count_change_is_kept_when_a_reader_installs_an_older_snapshot_during_its_load(liked_cache_parts):
    client, store, bulk = liked_cache_parts
    counters = await _counters(client, store, bulk)
    post_id, began = await _a_reply_begun(counters, store, client)
    load_as_usual = counters._load_one

    async def reader_first(pid: int):
        # Between this change's miss and its load, a reader installs the
        # snapshot it read before the change (no reply in it).
        counters._load_one = load_as_usual  # type: ignore[method-assign]
        await _install_no_counts(client, pid, counters.epoch.last_known)
        return await load_as_usual(pid)

    counters._load_one = reader_first  # type: ignore[method-assign]
    await counters.add(post_id, "replies", +1, began)
    assert await client.hget(counter_key(post_id), "p") == b"1"

    # A recount installed after the miss already holds the change: not counted twice.
    other, began = await _a_reply_begun(counters, store, client)
    await counters.add(other, "replies", +1, began)
    assert await client.hget(counter_key(other), "p") == b"1"


async def test_a_readers_recount_during_the_edge_write_is_not_counted_on_twice(liked_cache_parts):
    client, store, bulk = liked_cache_parts
    counters = await _counters(client, store, bulk)
    # A reader recounts between the edge write and its count (the change mark
    # is recent, so no snapshot is trusted): its recount holds the reply.
    post_id, began = await _a_reply_begun(counters, store, client)
    assert (await counters.finish_reads([post_id], [[None] * 5]))[post_id].replies == 1
    await counters.add(post_id, "replies", +1, began)
    assert await client.hget(counter_key(post_id), "p") == b"1"

    # A recount that ended before the edge write began lacks it: counted on top.
    later = secrets.randbits(60)
    await client.delete(counter_key(later))
    await store.mark_changed(later, datetime.datetime.now(datetime.timezone.utc))
    assert (await counters.finish_reads([later], [[None] * 5]))[later].replies == 0
    began = await counters.clock(later)
    assert await store.add_reply(later, secrets.randbits(60))
    await counters.add(later, "replies", +1, began)
    assert await client.hget(counter_key(later), "p") == b"1"

    # An increment that lands while an unsure change recounts is not replaced over.
    raced, began = await _a_reply_begun(counters, store, client)
    await counters.finish_reads([raced], [[None] * 5])
    recount_as_usual = store.recount

    async def another_change_meanwhile(pid: int):
        # A like written after this recount read the edges, and counted on
        # the hash before the recount replaces it.
        store.recount = recount_as_usual  # type: ignore[method-assign]
        counts = await recount_as_usual(pid)
        began_like = await counters.clock(pid)
        assert await store.claim_like(pid, secrets.randbits(60), datetime.datetime.now(datetime.timezone.utc))
        await counters.add(pid, "likes", +1, began_like)
        return counts

    store.recount = another_change_meanwhile  # type: ignore[method-assign]
    await counters.add(raced, "replies", +1, began)
    assert await client.hmget(counter_key(raced), "l", "p") == [b"1", b"1"]


def test_many_likes_at_once_on_a_new_post_all_succeed_and_all_count(identity, posts, engagement):
    """A post liked by many at the same moment: each change may find the
    counter being recounted by another; none fails, and none is lost."""
    author = sign_up(identity)
    fans = [sign_up(identity) for _ in range(32)]
    target = create(posts, author, "everyone at once")
    with concurrent.futures.ThreadPoolExecutor(len(fans)) as pool:
        answers = list(pool.map(lambda fan: like(engagement, fan, target.id), fans))
    assert len(answers) == len(fans)
    assert wait_for(lambda: counts(engagement, target.id).like_count == len(fans))
