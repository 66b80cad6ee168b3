"""Decoding Kafka records and shaping delivery requests: pure, unit-testable."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.timeline.v1 import timeline_pb2
from services.kit.events.consumer import PoisonRecord
from services.kit.events.kafka import GRAPH_TOPIC, POSTS_TOPIC


@dataclass(frozen=True)
class PostChange:
    """A post created or deleted, as the worker acts on it."""

    kind: str  # "post_created" | "post_deleted"
    post_id: int
    author_id: int
    occur_time: Timestamp
    # Created: the original of a pure repost (no text of its own), else 0.
    # Deleted: the original of any repost (a quote too; the event does not
    # say which), else 0: timeline removes the entry in either form.
    repost_of_id: int = 0


@dataclass(frozen=True)
class FollowChange:
    kind: str  # "follow_created" | "follow_removed"
    follower_id: int
    followee_id: int
    occur_time: Timestamp


@dataclass(frozen=True)
class AuthorStatusChange:
    """An author crossed the celebrity threshold."""

    kind: str  # "celebrity_changed"
    author_id: int
    celebrity: bool
    occur_time: Timestamp


@dataclass(frozen=True)
class Ignored:
    """A well-formed event of a kind this worker has nothing to do for."""

    topic: str
    reason: str


def decode(topic: str, value: bytes | None) -> PostChange | FollowChange | AuthorStatusChange | Ignored:
    """One Kafka record -> what to do; PoisonRecord when it can never be applied."""
    if topic == POSTS_TOPIC:
        return _post_change(_parse(events_pb2.PostEvent, value, topic))
    if topic == GRAPH_TOPIC:
        return _follow_change(_parse(events_pb2.GraphEvent, value, topic))
    return Ignored(topic, "not a topic fanout consumes")


def _parse(message_type, value: bytes | None, topic: str):
    if not value:
        raise PoisonRecord(f"empty record on {topic}")
    try:
        return message_type.FromString(value)
    except DecodeError as exc:
        raise PoisonRecord(f"not a {message_type.DESCRIPTOR.full_name}: {exc}") from exc


def _post_change(event: events_pb2.PostEvent) -> PostChange | Ignored:
    kind = event.WhichOneof("kind")
    body: events_pb2.PostCreated | events_pb2.PostDeleted
    if kind == "created":
        body, name = event.created, "post_created"
        repost_of_id = event.created.repost_of_id if not event.created.text else 0
    elif kind == "deleted":
        body, name = event.deleted, "post_deleted"
        repost_of_id = event.deleted.repost_of_id
    else:
        # A kind added after this worker was built: newer producers must not
        # wedge older consumers.
        return Ignored(POSTS_TOPIC, f"post event kind {kind!r}")
    _require_positive(body.post_id, "post_id")
    _require_positive(body.author_id, "author_id")
    return PostChange(name, body.post_id, body.author_id, event.occur_time, max(0, repost_of_id))


def _follow_change(event: events_pb2.GraphEvent) -> FollowChange | AuthorStatusChange | Ignored:
    kind = event.WhichOneof("kind")
    if kind == "celebrity_changed":
        status = event.celebrity_changed
        _require_positive(status.user_id, "user_id")
        return AuthorStatusChange(kind, status.user_id, status.celebrity, event.occur_time)
    body: events_pb2.FollowCreated | events_pb2.FollowRemoved
    if kind == "follow_created":
        body = event.follow_created
    elif kind == "follow_removed":
        body = event.follow_removed
    else:
        return Ignored(GRAPH_TOPIC, f"graph event kind {kind!r}")
    _require_positive(body.follower_id, "follower_id")
    _require_positive(body.followee_id, "followee_id")
    return FollowChange(kind, body.follower_id, body.followee_id, event.occur_time)


def _require_positive(value: int, field: str) -> None:
    if value <= 0:
        raise PoisonRecord(f"{field} must be a positive id, got {value}")


def event_age_seconds(occur_time: Timestamp, now_unix: float) -> float | None:
    """Seconds since the event happened, or None when the producer left it unset."""
    if occur_time.seconds == 0 and occur_time.nanos == 0:
        return None
    return max(0.0, now_unix - (occur_time.seconds + occur_time.nanos / 1e9))


def timeline_entry(change: PostChange) -> timeline_pb2.TimelineEntry:
    """The entry a post change writes: a pure repost carries its original."""
    repost_of_id = change.repost_of_id if change.repost_of_id != change.post_id else 0
    return timeline_pb2.TimelineEntry(post_id=change.post_id, author_id=change.author_id, repost_of_id=repost_of_id)


def delivery_request(
    op: timeline_pb2.DeliveryOp.ValueType,
    post_id: int,
    author_id: int,
    follower_ids,
    repost_of_id: int = 0,
    *,
    message: type[timeline_pb2.DeliverEntriesRequest | timeline_pb2.DeliverEntryBatchRequest] = (
        timeline_pb2.DeliverEntriesRequest
    ),
) -> timeline_pb2.DeliverEntriesRequest | timeline_pb2.DeliverEntryBatchRequest:
    """A delivery of the post to these followers' homes: a message of a
    DeliverEntries stream, or a DeliverEntryBatch call's request."""
    return message(
        op=op,
        entry=timeline_pb2.TimelineEntry(post_id=post_id, author_id=author_id, repost_of_id=repost_of_id),
        user_ids=follower_ids,
    )
