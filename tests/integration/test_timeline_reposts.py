"""Timeline against real Redis: pure reposts stored with their original, the
earlier-occurrence lookup a home read uses to show each original once, a
deleted account's keys dropped on identity's AccountDeleted, and the keys
kept before members sorted newest first moved or dropped.

Works on fresh random ids (no real posts: hydration is covered end to end in
tests/e2e/test_reposts_once.py) and deletes its keys.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import grpc
import pytest

from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.settings import Settings, service_addr
from services.timeline.entries import (
    Stored,
    author_fingerprint,
    author_key,
    celebrity_cache_key,
    celebrity_generation_key,
    decode_member,
    encode_member,
    home_key,
    legacy_author_key,
    seen_key,
)
from services.timeline.store import TimelineStore
from tests import redis_clients
from tests.integration.account_events import account_deleted, publish, wait_until
from tests.integration.support import wait_serving

REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
ADD = timeline_pb2.DELIVERY_OP_ADD
REMOVE = timeline_pb2.DELIVERY_OP_REMOVE


def random_id() -> int:
    # Far above real Snowflake ids of today, so never a real user or post.
    return (1 << 62) + secrets.randbits(56)


@pytest.fixture(scope="module")
def stub():
    channel = wait_serving(service_addr("timeline"))
    yield timeline_pb2_grpc.TimelineServiceStub(channel)
    channel.close()


@pytest.fixture
def r():
    client = redis_clients.from_url(REDIS_URL)
    created: list[str] = []
    client.track = created.extend  # tests register keys to delete afterwards
    yield client
    if created:
        client.delete(*created)
    client.close()


def reader(r) -> int:
    user_id = random_id()
    r.track([home_key(user_id), seen_key(user_id), celebrity_cache_key(user_id), celebrity_generation_key(user_id)])
    r.set(seen_key(user_id), b"1", ex=3600)
    return user_id


def entry(post_id: int, author_id: int, repost_of_id: int = 0) -> timeline_pb2.TimelineEntry:
    return timeline_pb2.TimelineEntry(post_id=post_id, author_id=author_id, repost_of_id=repost_of_id)


def deliver(stub, op, e: timeline_pb2.TimelineEntry, user_ids: list[int]) -> None:
    stub.DeliverEntries(iter([timeline_pb2.DeliverEntriesRequest(op=op, entry=e, user_ids=user_ids)]), timeout=30)


def run(coro_of_store):
    async def go():
        store = TimelineStore(Settings(redis_url=REDIS_URL))
        try:
            return await coro_of_store(store)
        finally:
            await store.close()

    return asyncio.run(go())


def test_a_pure_repost_is_stored_with_its_original_and_removed_in_either_form(stub, r):
    user = reader(r)
    original, repost, quote, author = random_id(), random_id(), random_id(), random_id()
    deliver(stub, ADD, entry(repost, author, original), [user])
    assert r.zrange(home_key(user), 0, -1) == [encode_member(repost, author, original)]

    # A member stored plain (before originals were stored, or a quote, which
    # the delete event cannot tell from a repost) goes with the same delete.
    r.zadd(home_key(user), {encode_member(quote, author): 0})
    deliver(stub, REMOVE, entry(repost, author, original), [user])
    deliver(stub, REMOVE, entry(quote, author, original), [user])
    assert r.zcard(home_key(user)) == 0


def test_the_author_index_keeps_the_original_and_a_follow_backfill_copies_it(stub, r):
    user = reader(r)
    original, repost, author = random_id(), random_id(), random_id()
    r.track([author_key(author)])
    stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(op=ADD, entry=entry(repost, author, original)))
    member = encode_member(repost, author, original)
    assert r.zrange(author_key(author), 0, -1) == [member]

    run(lambda store: store.backfill(user, author))
    assert r.zrange(home_key(user), 0, -1) == [member]

    # An unfollow finds the repost by the fingerprint after its post id.
    assert stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=user, author_id=author)).removed == 1
    assert r.zcard(home_key(user)) == 0

    stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(op=REMOVE, entry=entry(repost, author, original)))
    assert r.zcard(author_key(author)) == 0


def test_a_repost_with_itself_as_original_is_refused(stub):
    post_id = random_id()
    with pytest.raises(grpc.RpcError) as err:
        deliver(stub, ADD, entry(post_id, random_id(), post_id), [random_id()])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "entry.repost_of_id" in err.value.details()


def test_earlier_occurrences_are_found_in_every_source_oldest_first(r):
    user, celebrity = reader(r), random_id()
    r.track([author_key(celebrity)])
    a, b, c, d = (random_id() for _ in range(4))
    x = random_id() >> 1  # older than every repost of it
    other = x + 1  # another original
    by_b, by_c, by_d = x + 10, x + 20, x + 30
    # A repost of another original, newer than c's: the range looked through
    # spans c's repost, which is still not before b's.
    unrelated = x + 25
    r.zadd(
        home_key(user),
        {
            encode_member(x, a): 0,
            encode_member(by_b, b, x): 0,
            encode_member(unrelated, b, other): 0,
            encode_member(by_c, c, x): 0,
        },
    )
    r.zadd(author_key(celebrity), {encode_member(by_d, d, x): 0})

    def stored(post_id: int, author: int, original: int) -> Stored:
        return decode_member(encode_member(post_id, author, original))

    reposts = [stored(by_d, d, x), stored(by_c, c, x), stored(by_b, b, x), stored(unrelated, b, other)]
    found = run(lambda store: store.earlier_occurrences([home_key(user), author_key(celebrity)], reposts))
    ids = {post_id: [e.post_id for e in members] for post_id, members in found.items()}
    # Oldest first per source (the timeline's, then the celebrity's); the
    # repost of another original is not held anywhere as an occurrence of it.
    assert ids == {by_d: [x, by_b, by_c], by_c: [x, by_b], by_b: [x]}

    # No reposts among the candidates: no round trip, nothing found.
    assert run(lambda store: store.earlier_occurrences([home_key(user)], [stored(x, a, 0)])) == {}


def test_ids_are_compared_whole_across_their_32_bit_halves(r):
    user = reader(r)
    original = ((random_id() >> 32) << 32) | 0xFFFF_FFF0  # the low half about to carry
    earlier, repost, later = original + 0x08, original + 0x20, original + 0x30
    r.zadd(
        home_key(user),
        {encode_member(original, 1): 0, encode_member(earlier, 2, original): 0, encode_member(later, 3, original): 0},
    )
    looked_up = decode_member(encode_member(repost, 4, original))
    found = run(lambda store: store.earlier_occurrences([home_key(user)], [looked_up]))
    assert {k: [e.post_id for e in v] for k, v in found.items()} == {repost: [original, earlier]}


def test_an_account_deletion_drops_its_timeline_keys_and_author_index(stub, r):
    user, other = reader(r), reader(r)
    r.track([author_key(user)])
    deliver(stub, ADD, entry(random_id(), random_id()), [user, other])
    stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(op=ADD, entry=entry(random_id(), user)))
    r.set(celebrity_cache_key(user), b"1,2")
    r.set(celebrity_generation_key(user), b"3")
    keys = [home_key(user), seen_key(user), celebrity_cache_key(user), celebrity_generation_key(user), author_key(user)]
    assert r.exists(*keys) == 5

    event = account_deleted(user)
    publish(event)
    wait_until(lambda: r.exists(*keys) == 0, timeout=30)
    publish(event)  # redelivery is harmless
    wait_until(lambda: r.exists(*keys) == 0, timeout=30)
    assert r.zcard(home_key(other)) == 1  # only the deleted account's keys went


def legacy_member(post_id: int, author_id: int, original_id: int = 0) -> bytes:
    """A member as kept before they sorted newest first: the ids themselves lead."""
    member = post_id.to_bytes(8, "big") + author_fingerprint(author_id)
    return member + original_id.to_bytes(8, "big") if original_id else member


def test_author_indexes_kept_oldest_first_move_to_their_current_keys(r):
    author, base = random_id(), random_id()
    legacy = legacy_author_key(author)
    r.track([legacy, author_key(author)])
    r.zadd(legacy, {legacy_member(base + i, author): 0 for i in range(3)})
    r.zadd(legacy, {legacy_member(base + 3, author, base): 0, b"junk": 0})
    # A post indexed under the current key before the move (a new replica's).
    r.zadd(author_key(author), {encode_member(base + 4, author): 0})

    indexes, moved = run(lambda store: store.move_legacy_author_indexes())
    assert indexes >= 1 and moved >= 4  # this index, and any other left in this Redis
    assert r.exists(legacy) == 0
    held = [decode_member(m) for m in r.zrange(author_key(author), 0, -1)]
    assert [(e.post_id, e.original_id) for e in held] == [
        (base + 4, 0),
        (base + 3, base),
        (base + 2, 0),
        (base + 1, 0),
        (base, 0),
    ]
    assert r.zrange(author_key(author), 0, -1) == [
        encode_member(base + 4, author),
        encode_member(base + 3, author, base),
    ] + [encode_member(base + i, author) for i in (2, 1, 0)]

    # Again: nothing left to move, nothing changed.
    run(lambda store: store.move_legacy_author_indexes())
    assert r.zcard(author_key(author)) == 5 and r.exists(legacy) == 0


def test_a_moved_author_index_keeps_only_the_newest(r):
    author, base = random_id(), random_id()
    legacy = legacy_author_key(author)
    r.track([legacy, author_key(author)])
    limit = Settings(redis_url=REDIS_URL).author_index_max_entries
    r.zadd(legacy, {legacy_member(base + i, author): 0 for i in range(limit + 10)})
    run(lambda store: store.move_legacy_author_indexes())
    held = [decode_member(m).post_id for m in r.zrange(author_key(author), 0, -1)]
    assert held == [base + i for i in reversed(range(10, limit + 10))]


def test_timelines_kept_oldest_first_are_dropped_and_their_readers_rebuilt_under_the_current_keys(r):
    user = random_id()
    legacy_home, legacy_seen = f"home:{{{user}}}", f"seen:{{{user}}}"
    r.track([legacy_home, legacy_seen])
    r.zadd(legacy_home, {legacy_member(random_id(), random_id()): 0})
    r.set(legacy_seen, b"1", ex=3600)
    unrelated = reader(r)  # a current reader's keys stay
    r.zadd(home_key(unrelated), {encode_member(random_id(), random_id()): 0})

    assert run(lambda store: store.forget_legacy_timelines()) >= 2
    assert r.exists(legacy_home, legacy_seen) == 0
    assert r.exists(home_key(unrelated), seen_key(unrelated)) == 2
