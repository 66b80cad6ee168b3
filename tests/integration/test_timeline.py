"""Timeline service against real Redis, through the running process over gRPC.

Needs the timeline service on its port (AVIARY_TIMELINE_ADDR overrides). Every
test works on fresh random user / author / post ids and deletes its keys.
"""
from __future__ import annotations

import os
import secrets

import grpc
import pytest
import redis

from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.config import service_addr

REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
TIMELINE_MAX = int(os.environ.get("AVIARY_TIMELINE_MAX_ENTRIES", "800"))
ADD = timeline_pb2.DELIVERY_OP_ADD
REMOVE = timeline_pb2.DELIVERY_OP_REMOVE


def random_id() -> int:
    # Far above real Snowflake ids of today, so never a real user or post.
    return (1 << 62) + secrets.randbits(56)


def member(post_id: int, author_id: int) -> bytes:
    return f"{post_id:020d}:{author_id}".encode()


@pytest.fixture(scope="module")
def stub():
    channel = grpc.insecure_channel(service_addr("timeline"))
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
    except grpc.FutureTimeoutError:
        pytest.fail(f"timeline service is not reachable at {service_addr('timeline')}")
    yield timeline_pb2_grpc.TimelineServiceStub(channel)
    channel.close()


@pytest.fixture
def r():
    client = redis.Redis.from_url(REDIS_URL)
    created: list[str] = []
    client.track = created.append  # tests register keys to delete afterwards
    yield client
    if created:
        client.delete(*created)
    client.close()


def users(r, n: int) -> list[int]:
    ids = [random_id() for _ in range(n)]
    for user_id in ids:
        r.track(f"tl:{{{user_id}}}")
    return ids


def deliver(stub, *requests) -> timeline_pb2.DeliverEntriesResponse:
    return stub.DeliverEntries(iter(requests), timeout=30)


def request(op, post_id, author_id, user_ids):
    return timeline_pb2.DeliverEntriesRequest(
        op=op, entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author_id), user_ids=user_ids
    )


def test_deliver_add_is_idempotent_and_remove_too(stub, r):
    readers = users(r, 3)
    post_id, author = random_id(), random_id()

    first = deliver(stub, request(ADD, post_id, author, readers))
    again = deliver(stub, request(ADD, post_id, author, readers), request(ADD, post_id, author, readers[:1]))
    assert (first.batches, first.timelines) == (1, 3)
    assert (again.batches, again.timelines) == (2, 4)
    for reader in readers:
        assert r.zrange(f"tl:{{{reader}}}", 0, -1) == [member(post_id, author)]
        assert r.zscore(f"tl:{{{reader}}}", member(post_id, author)) == 0.0

    deliver(stub, request(REMOVE, post_id, author, readers))
    deliver(stub, request(REMOVE, post_id, author, readers))
    for reader in readers:
        assert r.zcard(f"tl:{{{reader}}}") == 0


def test_deliver_orders_by_id_even_across_digit_counts(stub, r):
    (reader,) = users(r, 1)
    author = random_id()
    for post_id in (10, 999_999_999, 1_000_000_000, 9):
        deliver(stub, request(ADD, post_id, author, [reader]))
    newest_first = r.zrange(f"tl:{{{reader}}}", b"+", b"-", desc=True, bylex=True)
    assert [int(m.split(b":")[0]) for m in newest_first] == [1_000_000_000, 999_999_999, 10, 9]


def test_home_timeline_is_trimmed_to_the_newest_800(stub, r):
    (reader,) = users(r, 1)
    author = random_id()
    base = random_id()
    post_ids = [base + i for i in range(TIMELINE_MAX + 50)]
    # Delivered out of order, as concurrent fanouts would.
    shuffled = post_ids[1::2] + post_ids[0::2]
    reply = deliver(stub, *(request(ADD, p, author, [reader]) for p in shuffled))
    assert reply.batches == TIMELINE_MAX + 50

    key = f"tl:{{{reader}}}"
    assert r.zcard(key) == TIMELINE_MAX
    kept = [int(m.split(b":")[0]) for m in r.zrange(key, 0, -1)]
    assert kept == post_ids[50:]


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
    assert r.zcard(f"tl:{{{reader}}}") == 0

    with pytest.raises(grpc.RpcError) as err:
        stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
            entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("op:")
    with pytest.raises(grpc.RpcError) as err:
        stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=0))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("author_id")


def test_author_index_add_remove_and_trim(stub, r):
    author = random_id()
    key = f"ai:{{{author}}}"
    r.track(key)
    base = random_id()
    for i in range(3):
        stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
            op=ADD, entry=timeline_pb2.TimelineEntry(post_id=base + i, author_id=author)))
    stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
        op=ADD, entry=timeline_pb2.TimelineEntry(post_id=base + 1, author_id=author)))
    assert r.zrange(key, 0, -1) == [member(base + i, author) for i in range(3)]

    stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
        op=REMOVE, entry=timeline_pb2.TimelineEntry(post_id=base + 1, author_id=author)))
    assert r.zrange(key, 0, -1) == [member(base, author), member(base + 2, author)]


def test_author_index_is_trimmed(stub, r):
    author = random_id()
    key = f"ai:{{{author}}}"
    r.track(key)
    limit = int(os.environ.get("AVIARY_AUTHOR_INDEX_MAX_ENTRIES", "200"))
    base = random_id()
    for i in range(limit + 5):
        stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
            op=ADD, entry=timeline_pb2.TimelineEntry(post_id=base + i, author_id=author)))
    assert r.zcard(key) == limit
    assert r.zrange(key, 0, 0) == [member(base + 5, author)]


def test_backfill_copies_the_newest_50_and_purge_removes_only_that_author(stub, r):
    (reader,) = users(r, 1)
    author, other = random_id(), random_id()
    r.track(f"ai:{{{author}}}")
    base = random_id()
    for i in range(60):
        stub.IndexAuthorPost(timeline_pb2.IndexAuthorPostRequest(
            op=ADD, entry=timeline_pb2.TimelineEntry(post_id=base + i, author_id=author)))
    # The reader already has a post of someone else, newer than the author's.
    deliver(stub, request(ADD, base + 100, other, [reader]))

    copied = stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=author)).copied
    assert copied == 50
    key = f"tl:{{{reader}}}"
    assert r.zcard(key) == 51
    assert r.zrange(key, 0, 0) == [member(base + 10, author)]  # the 50 newest: base+10 .. base+59
    # Again: idempotent.
    stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=author))
    assert r.zcard(key) == 51

    removed = stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=reader, author_id=author)).removed
    assert removed == 50
    assert r.zrange(key, 0, -1) == [member(base + 100, other)]
    assert stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=reader, author_id=author)).removed == 0


def test_purge_does_not_confuse_authors_sharing_digits(stub, r):
    (reader,) = users(r, 1)
    author = (1 << 40) + secrets.randbits(32)
    lookalike = int("1" + str(author))  # ends with the same digits
    base = random_id()
    deliver(stub, request(ADD, base, author, [reader]), request(ADD, base + 1, lookalike, [reader]))
    assert stub.PurgeAuthor(timeline_pb2.PurgeAuthorRequest(user_id=reader, author_id=author)).removed == 1
    assert r.zrange(f"tl:{{{reader}}}", 0, -1) == [member(base + 1, lookalike)]


def test_backfill_of_an_author_without_posts_copies_nothing(stub, r):
    (reader,) = users(r, 1)
    reply = stub.BackfillAuthor(timeline_pb2.BackfillAuthorRequest(user_id=reader, author_id=random_id()))
    assert reply.copied == 0
    assert r.exists(f"tl:{{{reader}}}") == 0


def test_home_timeline_needs_a_token(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetHomeTimeline(timeline_pb2.GetHomeTimelineRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        stub.GetHomeTimeline(timeline_pb2.GetHomeTimelineRequest(), metadata=(("authorization", "Bearer nope"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
