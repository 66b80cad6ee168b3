"""Fanout record decoding and request shaping (pure logic)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.timeline.v1 import timeline_pb2
from services.fanout.events import (
    FollowChange,
    Ignored,
    PostChange,
    decode,
    delivery_request,
    event_age_seconds,
    timeline_entry,
)
from services.kit.events.consumer import PoisonRecord
from services.kit.events.kafka import GRAPH_TOPIC, POSTS_TOPIC


def ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def test_post_created_decodes():
    event = events_pb2.PostEvent(
        event_id=1, occur_time=ts(100), created=events_pb2.PostCreated(post_id=11, author_id=22, text="hi")
    )
    change = decode(POSTS_TOPIC, event.SerializeToString())
    assert change == PostChange("post_created", 11, 22, ts(100))


def test_post_deleted_decodes():
    event = events_pb2.PostEvent(event_id=2, deleted=events_pb2.PostDeleted(post_id=11, author_id=22))
    change = decode(POSTS_TOPIC, event.SerializeToString())
    assert isinstance(change, PostChange) and change.kind == "post_deleted"
    assert (change.post_id, change.author_id) == (11, 22)


def test_follow_events_decode():
    created = events_pb2.GraphEvent(follow_created=events_pb2.FollowCreated(follower_id=1, followee_id=2))
    removed = events_pb2.GraphEvent(follow_removed=events_pb2.FollowRemoved(follower_id=3, followee_id=4))
    assert decode(GRAPH_TOPIC, created.SerializeToString()) == FollowChange("follow_created", 1, 2, ts(0))
    change = decode(GRAPH_TOPIC, removed.SerializeToString())
    assert (change.kind, change.follower_id, change.followee_id) == ("follow_removed", 3, 4)


@pytest.mark.parametrize("value", [None, b"", b"\xff\xff\xff\xff", b"\x0a\x05abc"])
def test_undecodable_records_are_poison(value):
    with pytest.raises(PoisonRecord):
        decode(POSTS_TOPIC, value)


def test_events_with_missing_ids_are_poison():
    event = events_pb2.PostEvent(created=events_pb2.PostCreated(post_id=0, author_id=22))
    with pytest.raises(PoisonRecord, match="post_id"):
        decode(POSTS_TOPIC, event.SerializeToString())
    follow = events_pb2.GraphEvent(follow_created=events_pb2.FollowCreated(follower_id=5))
    with pytest.raises(PoisonRecord, match="followee_id"):
        decode(GRAPH_TOPIC, follow.SerializeToString())


def test_event_without_kind_is_ignored_not_poison():
    # e.g. a kind added by a newer producer (unknown field): skip, do not wedge.
    event = events_pb2.PostEvent(event_id=9)
    assert isinstance(decode(POSTS_TOPIC, event.SerializeToString()), Ignored)


def test_other_topics_are_ignored():
    assert isinstance(decode("something.else", b"\x08\x01"), Ignored)


def test_event_age():
    assert event_age_seconds(ts(0), 1000.0) is None
    assert event_age_seconds(ts(990, 500_000_000), 1000.0) == pytest.approx(9.5)
    assert event_age_seconds(ts(2000), 1000.0) == 0.0  # clock skew never goes negative


def test_delivery_request_shape():
    req = delivery_request(timeline_pb2.DELIVERY_OP_ADD, 7, 8, [1, 2, 3])
    assert req.op == timeline_pb2.DELIVERY_OP_ADD
    assert (req.entry.post_id, req.entry.author_id) == (7, 8)
    assert list(req.user_ids) == [1, 2, 3]


def test_a_pure_repost_carries_its_original_and_a_quote_does_not():
    repost = events_pb2.PostEvent(created=events_pb2.PostCreated(post_id=11, author_id=22, repost_of_id=5))
    quote = events_pb2.PostEvent(
        created=events_pb2.PostCreated(post_id=12, author_id=22, repost_of_id=5, text="look at this")
    )
    pure = decode(POSTS_TOPIC, repost.SerializeToString())
    assert pure.repost_of_id == 5
    assert timeline_entry(pure) == timeline_pb2.TimelineEntry(post_id=11, author_id=22, repost_of_id=5)
    assert decode(POSTS_TOPIC, quote.SerializeToString()).repost_of_id == 0


def test_a_deleted_repost_names_its_original_so_either_stored_form_goes():
    event = events_pb2.PostEvent(deleted=events_pb2.PostDeleted(post_id=11, author_id=22, repost_of_id=5))
    change = decode(POSTS_TOPIC, event.SerializeToString())
    assert timeline_entry(change).repost_of_id == 5
    assert delivery_request(timeline_pb2.DELIVERY_OP_REMOVE, 11, 22, [1], 5).entry.repost_of_id == 5
