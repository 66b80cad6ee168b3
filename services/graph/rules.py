"""Pure decisions of the graph service: paging, batch sizes, events. No I/O."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Iterable, Mapping, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2
from services.kit.server.errors import invalid_argument

DEFAULT_STREAM_BATCH = 1000
MAX_STREAM_BATCH = 5000
INT32_MAX = 2**31 - 1


def split_page(ids_after_cursor: list[int], size: int) -> tuple[list[int], int | None]:
    """Given up to size+1 ids read after the cursor: (this page, last id when more follow).

    Reading one extra row tells whether a next page exists without a second query.
    """
    page = ids_after_cursor[:size]
    has_more = len(ids_after_cursor) > size and bool(page)
    return page, (page[-1] if has_more else None)


def stream_batch_size(value: int, field: str = "batch_size") -> int:
    """Follower ids per batch (or page) for fanout: 0 means the default."""
    if value < 0:
        raise invalid_argument(field, f"must be between 0 and {MAX_STREAM_BATCH}, got {value}")
    return DEFAULT_STREAM_BATCH if value == 0 else min(value, MAX_STREAM_BATCH)


_Item = TypeVar("_Item")


def in_id_order(items_by_id: Mapping[int, _Item], ids: Iterable[int]) -> list[_Item]:
    """Items in the order of `ids`, skipping ids without an item."""
    return [items_by_id[i] for i in ids if i in items_by_id]


def is_celebrity(follower_count: int, threshold: int) -> bool:
    return follower_count > threshold


def as_int32(count: int) -> int:
    # Counters can dip below zero after a crash mid-unfollow; never show that.
    return max(0, min(count, INT32_MAX))


def follow_event(
    event_id: int, follower: int, followee: int, created: bool, now: datetime.datetime
) -> tuple[int, bytes, bytes]:
    """(event id, Kafka key, payload) of a GraphEvent; keyed by follower so one user's changes stay ordered."""
    occur = Timestamp()
    occur.FromDatetime(now)
    event = events_pb2.GraphEvent(event_id=event_id, occur_time=occur)
    if created:
        event.follow_created.follower_id = follower
        event.follow_created.followee_id = followee
    else:
        event.follow_removed.follower_id = follower
        event.follow_removed.followee_id = followee
    return event_id, str(follower).encode(), event.SerializeToString()


def celebrity_event(
    event_id: int, user_id: int, celebrity: bool, followers: int, now: datetime.datetime
) -> tuple[int, bytes, bytes]:
    """(event id, Kafka key, payload) of a threshold crossing; keyed by the user."""
    occur = Timestamp()
    occur.FromDatetime(now)
    event = events_pb2.GraphEvent(event_id=event_id, occur_time=occur)
    event.celebrity_changed.user_id = user_id
    event.celebrity_changed.celebrity = celebrity
    event.celebrity_changed.follower_count = followers
    return event_id, str(user_id).encode(), event.SerializeToString()


def followee_of_edge_change(payload: bytes) -> int | None:
    """The user whose follower list a GraphEvent changes (a follow or
    unfollow of them); None for anything else."""
    event = events_pb2.GraphEvent.FromString(payload)
    kind = event.WhichOneof("kind")
    if kind == "follow_created":
        return event.follow_created.followee_id
    if kind == "follow_removed":
        return event.follow_removed.followee_id
    return None


def mute_end(expires_at: Timestamp | None, now: datetime.datetime) -> datetime.datetime | None:
    """When a requested mute ends (None: never); a time not in the future is refused."""
    if expires_at is None:
        return None
    end = expires_at.ToDatetime(datetime.timezone.utc)
    if end <= now:
        raise invalid_argument("expires_at", f"must be in the future, got {expires_at.ToJsonString()}")
    return end


def mute_is_active(end: datetime.datetime | None, now: datetime.datetime) -> bool:
    """An expired mute is as if absent."""
    return end is None or end > now


@dataclass(frozen=True)
class RelationshipRows:
    """The viewer's rows about some other users: whom the viewer follows, who
    follows the viewer, whom the viewer blocks, and the viewer's mutes with
    their end times (None: never; expired ones included)."""

    following: set[int]
    followers: set[int]
    blocking: set[int]
    mutes: dict[int, datetime.datetime | None]


def relationship(user_id: int, rows: RelationshipRows, now: datetime.datetime) -> graph_pb2.Relationship:
    """How the viewer stands with one user; a mute past its end is no mute."""
    return graph_pb2.Relationship(
        user_id=str(user_id),
        followed_by_viewer=user_id in rows.following,
        follows_viewer=user_id in rows.followers,
        blocked_by_viewer=user_id in rows.blocking,
        muted_by_viewer=user_id in rows.mutes and mute_is_active(rows.mutes[user_id], now),
    )
