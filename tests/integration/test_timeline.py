"""Timeline service against real Redis, through the running process over gRPC.

Needs the timeline service on its port (AVIARY_TIMELINE_ADDR overrides). Every
test works on fresh random user / author / post ids and deletes its keys.

Adds are delivered only to active users (those whose `seen:{user}` key
exists), so tests mark their random readers active the way a read would.
"""

from __future__ import annotations

import os
import random
import secrets

import grpc
import pytest

from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.settings import Settings, service_addr
from services.timeline.entries import (
    MEMBER_BYTES,
    author_fingerprint,
    author_key,
    celebrity_cache_key,
    celebrity_generation_key,
    decode_member,
    encode_member,
    home_key,
    seen_key,
    unfollowed_key,
)
from services.timeline.store import UNFOLLOW_MARK_SECONDS, TimelineStore
from tests import redis_clients
from tests.integration.support import wait_serving

REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
TIMELINE_MAX = int(os.environ.get("AVIARY_TIMELINE_MAX_ENTRIES", "800"))
ADD = timeline_pb2.DELIVERY_OP_ADD
REMOVE = timeline_pb2.DELIVERY_OP_REMOVE
ACTIVE_FOR_SECONDS = 3600

# CRC-32 is affine over GF(2) for inputs of one length, so two 8-byte author
# ids whose XOR is this value always share a fingerprint (found by search).
FINGERPRINT_COLLIDING_XOR = 0x93F38161077B5A


def random_id() -> int:
    # Far above real Snowflake ids of today, so never a real user or post.
    return (1 << 62) + secrets.randbits(56)


def post_ids(members: list[bytes]) -> list[int]:
    return [decode_member(m).post_id for m in members]


@pytest.fixture(scope="module")
def stub():
    channel = wait_serving(service_addr("timeline"))
    yield timeline_pb2_grpc.TimelineServiceStub(channel)
    channel.close()


@pytest.fixture
def r():
    client = redis_clients.from_url(REDIS_URL)
    created: list[str] = []
    client.track = created.append  # tests register keys to delete afterwards
    yield client
    if created:
        client.delete(*created)
    client.close()


def mark_active(r, user_id: int) -> None:
    """What a read does for the delivery path: the user's activity marker."""
    r.set(seen_key(user_id), b"1", ex=ACTIVE_FOR_SECONDS)


def users(r, n: int, *, active: bool = True) -> list[int]:
    """Fresh random users, active (deliveries reach them) unless told otherwise."""
    ids = [random_id() for _ in range(n)]
    for user_id in ids:
        for key in (
            home_key(user_id),
            seen_key(user_id),
            celebrity_cache_key(user_id),
            celebrity_generation_key(user_id),
        ):
            r.track(key)
        if active:
            mark_active(r, user_id)
    return ids


def deliver(stub, *requests) -> timeline_pb2.DeliverEntriesResponse:
    return stub.DeliverEntries(iter(requests), timeout=30)


def request(op, post_id, author_id, user_ids):
    return timeline_pb2.DeliverEntriesRequest(
        op=op, entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author_id), user_ids=user_ids
    )


def index(stub, op, post_id, author_id) -> None:
    stub.IndexAuthorPost(
        timeline_pb2.IndexAuthorPostRequest(
            op=op, entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author_id)
        )
    )


def purge(stub, user_id, author_id) -> int:
    return stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=user_id, author_id=author_id)).removed


def test_deliver_add_is_idempotent_and_remove_too(stub, r):
    readers = users(r, 3)
    post_id, author = random_id(), random_id()
    member = encode_member(post_id, author)
    assert len(member) == MEMBER_BYTES

    first = deliver(stub, request(ADD, post_id, author, readers))
    again = deliver(stub, request(ADD, post_id, author, readers), request(ADD, post_id, author, readers[:1]))
    assert (first.batches, first.timelines, first.skipped_inactive) == (1, 3, 0)
    assert (again.batches, again.timelines, again.skipped_inactive) == (2, 4, 0)
    for reader in readers:
        assert r.zrange(home_key(reader), 0, -1) == [member]
        assert r.zscore(home_key(reader), member) == 0.0

    deliver(stub, request(REMOVE, post_id, author, readers))
    deliver(stub, request(REMOVE, post_id, author, readers))
    for reader in readers:
        assert r.zcard(home_key(reader)) == 0


def test_delivery_to_an_inactive_user_writes_nothing_and_is_counted_as_skipped(stub, r):
    (idle,) = users(r, 1, active=False)
    post_id, author = random_id(), random_id()

    reply = deliver(stub, request(ADD, post_id, author, [idle]))
    assert (reply.batches, reply.timelines, reply.skipped_inactive) == (1, 0, 1)
    assert r.exists(home_key(idle)) == 0
    assert r.exists(seen_key(idle)) == 0  # a delivery does not make anyone active


def test_deliveries_reach_only_active_users_of_a_batch(stub, r):
    active = users(r, 2)
    idle = users(r, 3, active=False)
    author = random_id()
    first, second = random_id(), random_id()
    mixed = [idle[0], active[0], idle[1], active[1], idle[2]]

    reply = deliver(stub, request(ADD, first, author, mixed), request(ADD, second, author, [idle[0], active[0]]))
    assert (reply.batches, reply.timelines, reply.skipped_inactive) == (2, 3, 4)
    assert r.zrange(home_key(active[0]), 0, -1) == sorted([encode_member(first, author), encode_member(second, author)])
    assert r.zrange(home_key(active[1]), 0, -1) == [encode_member(first, author)]
    for user_id in idle:
        assert r.exists(home_key(user_id)) == 0

    # Activity is looked at on every delivery: a user who becomes active gets
    # the next one (what they missed comes from the rebuild on their read).
    mark_active(r, idle[0])
    third = random_id()
    reply = deliver(stub, request(ADD, third, author, [idle[0], idle[1]]))
    assert (reply.timelines, reply.skipped_inactive) == (1, 1)
    assert r.zrange(home_key(idle[0]), 0, -1) == [encode_member(third, author)]
    assert r.exists(home_key(idle[1])) == 0


def test_a_batch_skips_exactly_the_users_who_just_unfollowed_its_author(stub, r):
    # One script call reads every user's two marks at once: each answer must
    # stay with its own user, whatever its neighbours' marks say. A: active,
    # I: inactive, U: active but just unfollowed the author.
    states = "AUIAAUIIAUUAIAUA"
    author = random_id()
    batch = []
    for state in states:
        (user_id,) = users(r, 1, active=state != "I")
        if state == "U":
            purge(stub, user_id, author)
        batch.append(user_id)
    post_id = random_id()

    reply = deliver(stub, request(ADD, post_id, author, batch))
    assert (reply.timelines, reply.skipped_inactive) == (states.count("A"), len(states) - states.count("A"))
    for user_id, state in zip(batch, states):
        assert r.zrange(home_key(user_id), 0, -1) == ([encode_member(post_id, author)] if state == "A" else [])


def test_large_batches_are_delivered_whole_across_overlapped_chunks(stub, r):
    # Batches bigger than the service's write chunk (250), several of them in
    # one stream, so writes overlap; every active user gets the post once,
    # and the counts add up across chunks.
    active = users(r, 1100)
    idle = users(r, 300, active=False)
    author, post_id = random_id(), random_id()
    everyone = active + idle
    random.shuffle(everyone)
    batches = [everyone[i : i + 700] for i in range(0, len(everyone), 700)]

    reply = deliver(stub, *(request(ADD, post_id, author, batch) for batch in batches))
    assert (reply.batches, reply.timelines, reply.skipped_inactive) == (2, 1100, 300)
    member = encode_member(post_id, author)
    pipe = r.pipeline(transaction=False)
    for user_id in everyone:
        pipe.zrange(home_key(user_id), 0, -1)
    homes = dict(zip(everyone, pipe.execute()))
    assert all(homes[user_id] == [member] for user_id in active)
    assert all(homes[user_id] == [] for user_id in idle)


def test_removals_reach_every_listed_user_active_or_not(stub, r):
    (reader,) = users(r, 1)
    author = random_id()
    keep, gone = sorted([random_id(), random_id()])
    deliver(stub, request(ADD, keep, author, [reader]), request(ADD, gone, author, [reader]))
    # The reader goes inactive, their timeline still stored: a deleted post
    # must still leave it (only adds are skipped for inactive users).
    r.delete(seen_key(reader))
    (never,) = users(r, 1, active=False)

    reply = deliver(stub, request(REMOVE, gone, author, [reader, never]))
    assert (reply.batches, reply.timelines, reply.skipped_inactive) == (1, 2, 0)
    assert r.zrange(home_key(reader), 0, -1) == [encode_member(keep, author)]
    assert r.exists(home_key(never)) == 0


def test_deliver_orders_by_id_across_magnitudes(stub, r):
    (reader,) = users(r, 1)
    author = random_id()
    ids = [
        9,
        10,
        255,
        256,
        65_535,
        65_536,
        999_999_999,
        1_000_000_000,
        (1 << 32) - 1,
        1 << 32,
        (1 << 56) - 1,
        1 << 56,
        random_id(),
        (1 << 63) - 1,
    ]
    shuffled = ids[:]
    random.shuffle(shuffled)
    for post_id in shuffled:
        deliver(stub, request(ADD, post_id, author, [reader]))
    newest_first = r.zrange(home_key(reader), b"-", b"+", bylex=True)
    assert post_ids(newest_first) == sorted(ids, reverse=True)
    assert r.zrange(home_key(reader), 0, -1) == sorted(encode_member(p, author) for p in ids)


def test_deliver_orders_by_id_whatever_the_authors(stub, r):
    (reader,) = users(r, 1)
    authors = [random_id() for _ in range(6)]
    base = random_id()
    # Newer posts by authors whose fingerprints sort lower.
    by_fingerprint = sorted(authors, key=author_fingerprint, reverse=True)
    deliver(stub, *(request(ADD, base + i, a, [reader]) for i, a in enumerate(by_fingerprint)))
    newest_first = r.zrange(home_key(reader), b"-", b"+", bylex=True)
    assert post_ids(newest_first) == [base + i for i in reversed(range(6))]


def test_home_timeline_is_trimmed_to_the_newest_800(stub, r):
    (reader,) = users(r, 1)
    author = random_id()
    base = random_id()
    ids = [base + i for i in range(TIMELINE_MAX + 50)]
    # Delivered out of order, as concurrent fanouts would.
    shuffled = ids[1::2] + ids[0::2]
    reply = deliver(stub, *(request(ADD, p, author, [reader]) for p in shuffled))
    assert reply.batches == TIMELINE_MAX + 50
    assert (reply.timelines, reply.skipped_inactive) == (TIMELINE_MAX + 50, 0)

    key = home_key(reader)
    assert r.zcard(key) == TIMELINE_MAX
    assert post_ids(r.zrange(key, 0, -1)) == ids[50:][::-1]


def test_bad_batches_are_rejected_naming_the_field_and_write_nothing(stub, r):
    (reader,) = users(r, 1)
    post_id, author = random_id(), random_id()
    cases = [
        (request(timeline_pb2.DELIVERY_OP_UNSPECIFIED, post_id, author, [reader]), "op:"),
        (request(ADD, 0, author, [reader]), "entry.post_id"),
        (request(ADD, post_id, -1, [reader]), "entry.author_id"),
        (request(ADD, post_id, author, [reader] * 5001), "user_ids"),
        (request(ADD, post_id, author, [reader, 0]), "user_ids[1]"),
    ]
    for bad, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            deliver(stub, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field), err.value.details()
    assert r.exists(home_key(reader)) == 0

    with pytest.raises(grpc.RpcError) as err:
        stub.IndexAuthorPost(
            timeline_pb2.IndexAuthorPostRequest(entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("op:")
    with pytest.raises(grpc.RpcError) as err:
        stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=0))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("author_id")
    with pytest.raises(grpc.RpcError) as err:
        stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=0, author_id=author))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("user_id")


def test_author_index_add_remove_and_trim(stub, r):
    author = random_id()
    key = author_key(author)
    r.track(key)
    base = random_id()
    for i in range(3):
        index(stub, ADD, base + i, author)
    index(stub, ADD, base + 1, author)
    assert r.zrange(key, 0, -1) == [encode_member(base + i, author) for i in reversed(range(3))]

    index(stub, REMOVE, base + 1, author)
    assert r.zrange(key, 0, -1) == [encode_member(base + 2, author), encode_member(base, author)]


def test_a_delivery_stream_may_index_the_post_before_its_timelines(stub, r):
    readers = users(r, 2)
    post_id, author = random_id(), random_id()
    r.track(author_key(author))
    member = encode_member(post_id, author)
    opening = request(ADD, post_id, author, [])
    opening.index_author_post = True

    reply = deliver(stub, opening, request(ADD, post_id, author, readers))
    assert (reply.batches, reply.timelines) == (2, 2)
    assert r.zrange(author_key(author), 0, -1) == [member]
    assert all(r.zrange(home_key(reader), 0, -1) == [member] for reader in readers)

    # Without the flag a stream leaves the index alone, and a removal with it empties it.
    other = random_id()
    deliver(stub, request(ADD, other, author, readers))
    assert r.zrange(author_key(author), 0, -1) == [member]
    closing = request(REMOVE, post_id, author, readers)
    closing.index_author_post = True
    deliver(stub, closing)
    assert r.zrange(author_key(author), 0, -1) == []
    assert all(r.zrange(home_key(reader), 0, -1) == [encode_member(other, author)] for reader in readers)


def test_one_batch_call_indexes_and_delivers_as_a_stream_message_does(stub, r):
    active = users(r, 600)
    (idle,) = users(r, 1, active=False)
    post_id, author = random_id(), random_id()
    r.track(author_key(author))
    member = encode_member(post_id, author)

    def batch(op, user_ids):
        return stub.DeliverEntryBatch(
            timeline_pb2.DeliverEntryBatchRequest(
                op=op,
                entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author),
                user_ids=user_ids,
                index_author_post=True,
            ),
            timeout=30,
        )

    # More than one write chunk (250), so its writes overlap.
    reply = batch(ADD, [idle, *active])
    again = batch(ADD, active[:1])
    assert (reply.timelines, reply.skipped_inactive, again.timelines) == (600, 1, 1)
    assert r.zrange(author_key(author), 0, -1) == [member]
    pipe = r.pipeline(transaction=False)
    for user_id in active:
        pipe.zrange(home_key(user_id), 0, -1)
    assert all(home == [member] for home in pipe.execute())
    assert r.exists(home_key(idle)) == 0

    removed = batch(REMOVE, active)
    assert removed.timelines == 600
    assert r.zrange(author_key(author), 0, -1) == []
    assert all(r.zrange(home_key(user_id), 0, -1) == [] for user_id in active[:5])

    # Validated whole before anything is written.
    with pytest.raises(grpc.RpcError) as err:
        batch(ADD, [active[0], 0])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("user_ids[1]"), err.value.details()
    assert r.zrange(author_key(author), 0, -1) == []
    assert r.zrange(home_key(active[0]), 0, -1) == []


def test_author_index_is_trimmed(stub, r):
    author = random_id()
    key = author_key(author)
    r.track(key)
    limit = int(os.environ.get("AVIARY_AUTHOR_INDEX_MAX_ENTRIES", "200"))
    base = random_id()
    for i in range(limit + 5):
        index(stub, ADD, base + i, author)
    assert r.zcard(key) == limit
    assert r.zrange(key, -1, -1) == [encode_member(base + 5, author)]  # the oldest kept


def test_backfill_copies_the_newest_50_and_purge_removes_only_that_author(stub, r):
    (reader,) = users(r, 1)
    author, other = random_id(), random_id()
    r.track(author_key(author))
    base = random_id()
    for i in range(60):
        index(stub, ADD, base + i, author)
    # The reader already has a post of someone else, newer than the author's.
    deliver(stub, request(ADD, base + 100, other, [reader]))
    r.set(celebrity_cache_key(reader), b"")  # "follows no celebrity", cached

    copied = stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=author)).copied
    assert copied == 50
    assert r.exists(celebrity_cache_key(reader)) == 0  # the new followee may be a celebrity
    assert r.get(celebrity_generation_key(reader)) == b"1"  # and a graph answer read before is stale
    key = home_key(reader)
    assert r.zcard(key) == 51
    assert r.zrange(key, -1, -1) == [encode_member(base + 10, author)]  # the 50 newest: base+10 .. base+59
    assert r.zrange(key, 0, -1) == [encode_member(base + 100, other)] + [
        encode_member(base + i, author) for i in reversed(range(10, 60))
    ]
    # Again: idempotent.
    stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=author))
    assert r.zcard(key) == 51

    r.set(celebrity_cache_key(reader), b"")
    assert purge(stub, reader, author) == 50
    assert r.exists(celebrity_cache_key(reader)) == 0
    assert r.get(celebrity_generation_key(reader)) == b"3"  # two backfills, one purge
    assert 0 < r.ttl(celebrity_generation_key(reader)) <= 86_400
    assert r.zrange(key, 0, -1) == [encode_member(base + 100, other)]
    assert purge(stub, reader, author) == 0
    # The author's own index is not the reader's to purge.
    assert r.zcard(author_key(author)) == 60


def test_backfill_into_an_inactive_users_timeline_copies_nothing(stub, r):
    (idle,) = users(r, 1, active=False)
    author = random_id()
    r.track(author_key(author))
    base = random_id()
    for i in range(3):
        index(stub, ADD, base + i, author)
    r.set(celebrity_cache_key(idle), b"")

    reply = stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=idle, author_id=author))
    assert reply.copied == 0
    assert r.exists(home_key(idle)) == 0  # rebuilt from the posts store when they return
    assert r.exists(celebrity_cache_key(idle)) == 0  # still forgotten: they follow someone new


def test_two_authors_entries_are_purged_independently(stub, r):
    (reader,) = users(r, 1)
    first, second = random_id(), random_id()
    assert author_fingerprint(first) != author_fingerprint(second)  # 2**-32 odds otherwise
    base = random_id()
    # Interleaved: first has even offsets, second odd ones.
    firsts = [base + i for i in range(0, 10, 2)]
    seconds = [base + i for i in range(1, 10, 2)]
    deliver(
        stub, *(request(ADD, p, first, [reader]) for p in firsts), *(request(ADD, p, second, [reader]) for p in seconds)
    )
    key = home_key(reader)
    assert r.zcard(key) == 10

    assert purge(stub, reader, first) == len(firsts)
    assert r.zrange(key, 0, -1) == [encode_member(p, second) for p in reversed(seconds)]
    assert purge(stub, reader, first) == 0  # idempotent
    assert r.zrange(key, 0, -1) == [encode_member(p, second) for p in reversed(seconds)]

    assert purge(stub, reader, second) == len(seconds)
    assert r.zcard(key) == 0
    # An author never followed: nothing to remove.
    assert purge(stub, reader, random_id()) == 0


def test_purge_goes_by_fingerprint_and_keeps_nothing_whose_post_does_not_exist(stub, r):
    """Authors sharing a fingerprint: the purge takes both's entries, then puts
    back those whose post is by someone else. A post that does not exist (as
    with these random ids) is treated as removable, so nothing comes back."""
    (reader,) = users(r, 1)
    author = random_id()
    twin = author ^ FINGERPRINT_COLLIDING_XOR
    assert twin != author and author_fingerprint(twin) == author_fingerprint(author)
    bystander = random_id()
    base = random_id()
    deliver(
        stub,
        request(ADD, base, author, [reader]),
        request(ADD, base + 1, twin, [reader]),
        request(ADD, base + 2, bystander, [reader]),
    )

    assert purge(stub, reader, author) == 2
    assert r.zrange(home_key(reader), 0, -1) == [encode_member(base + 2, bystander)]


def test_backfill_of_an_author_without_posts_copies_nothing(stub, r):
    (reader,) = users(r, 1)
    reply = stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=random_id()))
    assert reply.copied == 0
    assert r.exists(home_key(reader)) == 0


def test_a_timeline_created_by_a_delivery_expires_with_the_activity_marker(stub, r):
    # The state after a first read of an empty timeline: marked active, no
    # home key (mark_active's EXPIRE of a missing key does nothing).
    (reader,) = users(r, 1)
    deliver(stub, request(ADD, random_id(), random_id(), [reader]))
    ttl = r.ttl(home_key(reader))
    assert 0 < ttl <= r.ttl(seen_key(reader)) + 1, ttl


def test_home_timeline_needs_a_token(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetHomeTimeline(timeline_pb2.GetHomeTimelineRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.GetHomeTimeline(timeline_pb2.GetHomeTimelineRequest(), metadata=(("authorization", "Bearer nope"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_celebrity_list_read_before_it_was_forgotten_is_not_cached(r):
    """The race a long cache TTL would otherwise keep for minutes: a reader
    asks graph, the reader follows someone (forgetting the cache) before the
    answer is cached, and the old answer must not then be cached."""
    (reader,) = users(r, 1)
    store = TimelineStore(Settings(redis_url=REDIS_URL))
    try:
        epoch = await store.redis_epoch.refresh()
        assert epoch
        cached, generation = await store.cached_celebrities(reader)
        assert cached is None and generation == epoch + b"|"
        celebrity, author = random_id(), random_id()
        r.track(author_key(author))
        # ... graph is asked here; meanwhile the reader follows an author:
        await store.backfill(reader, author)
        assert not await store.cache_celebrities(reader, [], 600, generation)
        assert r.exists(celebrity_cache_key(reader)) == 0

        # Asked again under the new generation, the answer is cached.
        cached, generation = await store.cached_celebrities(reader)
        assert cached is None and generation == epoch + b"|1"
        assert await store.cache_celebrities(reader, [celebrity], 600, generation)
        assert await store.cached_celebrities(reader) == ([celebrity], epoch + b"|1")
        assert 590_000 < r.pttl(celebrity_cache_key(reader)) <= 600_000

        # A threshold crossing forgets it (and bumps the generation) too.
        await store.apply_author_status(random_id(), [reader], [])
        assert await store.cached_celebrities(reader) == (None, epoch + b"|2")
    finally:
        await store.close()


async def test_a_celebrity_list_cached_before_a_redis_failover_is_not_trusted_after_it(r):
    """A promoted replica may lack the forgetting of a list (and the bump of
    its generation) that its master acknowledged: a list cached in another
    Redis epoch is never served, and none is cached while the epoch is
    unknown or after it moved since the generation was read."""
    (reader,) = users(r, 1)
    store = TimelineStore(Settings(redis_url=REDIS_URL))
    try:
        assert await store.redis_epoch.refresh()
        _, generation = await store.cached_celebrities(reader)
        assert await store.cache_celebrities(reader, [random_id()], 600, generation)
        assert (await store.cached_celebrities(reader))[0] is not None

        # Redis failed over: the watcher sees the masters' histories change.
        store.redis_epoch.current = None
        assert await store.cached_celebrities(reader) == (None, b"")
        assert not await store.cache_celebrities(reader, [], 600, b"")
        store.redis_epoch.current = b"0123456789abcdef"
        assert (await store.cached_celebrities(reader))[0] is None
        assert not await store.cache_celebrities(reader, [], 600, generation)  # read in the old epoch

        _, generation = await store.cached_celebrities(reader)
        assert await store.cache_celebrities(reader, [], 600, generation)
        assert await store.cached_celebrities(reader) == ([], generation)
    finally:
        await store.close()


def follow_changes(stub, *changes: tuple[int, int, bool]) -> timeline_pb2.ApplyFollowChangesResponse:
    return stub.ApplyFollowChanges(
        timeline_pb2.ApplyFollowChangesRequest(
            changes=[timeline_pb2.FollowChange(user_id=u, author_id=a, following=f) for u, a, f in changes]
        )
    )


@pytest.mark.parametrize("unfollow", ["ApplyFollowChanges", "PurgeAuthor"])
def test_a_delivery_computed_before_an_unfollow_and_arriving_after_its_purge_is_dropped(stub, r, unfollow):
    """The race fanout no longer orders away: a post's follower list is read
    while the reader still follows its author, the reader unfollows and the
    purge is applied, and only then does the delivery arrive. Without the
    purge's mark the unfollowed author's post would stay in the timeline."""
    (reader,) = users(r, 1)
    author, other = random_id(), random_id()
    r.track(author_key(author))
    base = random_id()
    deliver(stub, request(ADD, base, author, [reader]))
    stale = request(ADD, base + 1, author, [reader])  # its follower list: read before the unfollow

    if unfollow == "PurgeAuthor":
        assert purge(stub, reader, author) == 1
    else:
        assert follow_changes(stub, (reader, author, False)).removed == 1
    assert deliver(stub, stale, request(ADD, base + 2, other, [reader])).timelines == 1
    assert r.zrange(home_key(reader), 0, -1) == [encode_member(base + 2, other)]
    # Deliveries of other authors, and the mark only for a while.
    assert 0 < r.pttl(unfollowed_key(reader, author)) <= UNFOLLOW_MARK_SECONDS * 1000

    # Following again lifts the mark: the author's posts arrive again.
    follow_changes(stub, (reader, author, True))
    assert r.exists(unfollowed_key(reader, author)) == 0
    assert deliver(stub, request(ADD, base + 3, author, [reader])).timelines == 1
    assert encode_member(base + 3, author) in r.zrange(home_key(reader), 0, -1)


def test_follow_changes_in_one_call_backfill_purge_and_keep_each_pairs_last_change(stub, r):
    first, second = users(r, 2)
    author, gone = random_id(), random_id()
    r.track(author_key(author))
    base = random_id()
    for i in range(3):
        index(stub, ADD, base + i, author)
    deliver(stub, request(ADD, base + 10, gone, [first, second]))
    r.set(celebrity_cache_key(first), b"")

    reply = follow_changes(
        stub,
        (first, author, True),
        (first, gone, False),
        # Unfollowed, then followed again within the batch: followed.
        (second, author, False),
        (second, author, True),
        # Followed, then unfollowed: unfollowed.
        (second, gone, True),
        (second, gone, False),
    )
    assert (reply.copied, reply.removed) == (6, 2)
    expected = [encode_member(base + i, author) for i in reversed(range(3))]
    assert r.zrange(home_key(first), 0, -1) == expected
    assert r.zrange(home_key(second), 0, -1) == expected
    assert r.exists(celebrity_cache_key(first)) == 0
    assert r.exists(unfollowed_key(second, author)) == 0
    assert r.exists(unfollowed_key(second, gone)) == 1
    # Again: the same state.
    assert follow_changes(stub, (first, author, True), (first, gone, False)).removed == 0
    assert r.zrange(home_key(first), 0, -1) == expected


def test_follow_changes_are_validated_whole(stub, r):
    (reader,) = users(r, 1)
    with pytest.raises(grpc.RpcError) as err:
        follow_changes(stub, (reader, random_id(), False), (reader, 0, True))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "changes[1].author_id" in err.value.details()
    assert r.exists(celebrity_generation_key(reader)) == 0  # nothing applied
