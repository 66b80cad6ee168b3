"""The stored shape of a post and its conversion to the public message."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2
from aviary.posts.v1 import posts_pb2


@dataclass(frozen=True)
class PostRecord:
    """One row of aviary_posts.posts; 0 means "not set" for the optional refs."""

    post_id: int
    author_id: int
    text: str
    created_at_ms: int
    media_ids: tuple[int, ...] = ()
    product_ids: tuple[int, ...] = ()
    reply_to_id: int = 0
    repost_of_id: int = 0
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    deleted: bool = False

    @property
    def pure_repost_of(self) -> int:
        """The original a pure repost (no text of its own) shows; 0 for any other post."""
        return self.repost_of_id if self.repost_of_id and not self.text else 0


def timestamp_from_ms(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def to_proto(record: PostRecord, author: identity_pb2.User | None) -> posts_pb2.Post:
    """The public Post; engagement fields stay at zero until engagement exists."""
    post = posts_pb2.Post(
        id=str(record.post_id),
        author_id=str(record.author_id),
        text=record.text,
        media_ids=[str(i) for i in record.media_ids],
        product_ids=[str(i) for i in record.product_ids],
        reply_to_id=str(record.reply_to_id) if record.reply_to_id else "",
        repost_of_id=str(record.repost_of_id) if record.repost_of_id else "",
        hashtags=list(record.hashtags),
        mentions=list(record.mentions),
        created_at=timestamp_from_ms(record.created_at_ms),
    )
    if author is not None:
        post.author.CopyFrom(author)
    return post


class PostProtos:
    """to_proto for the records a read path sees again and again: each
    record's Post without its author is built once, and a page copies it (a
    copy in C, a tenth of building one field by field). Kept by post id with
    the record object it was built from, and used for that object only: a
    row read again is a new object, and is built anew."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._built: dict[int, tuple[PostRecord, posts_pb2.Post]] = {}

    def to_proto(self, record: PostRecord, author: identity_pb2.User | None) -> posts_pb2.Post:
        kept = self._built.get(record.post_id)
        if kept is None or kept[0] is not record:
            if len(self._built) >= self._max:
                self._built.clear()
            kept = self._built[record.post_id] = (record, to_proto(record, None))
        post = posts_pb2.Post()
        post.CopyFrom(kept[1])
        if author is not None:
            post.author.CopyFrom(author)
        return post


def to_created_event(
    record: PostRecord, *, reply_to_author_id: int = 0, repost_of_author_id: int = 0
) -> events_pb2.PostCreated:
    """The post in the shape of its PostCreated event. The parent's and the
    original's author ids are not stored with the post: creation passes them
    in; an export from the stored row alone (ExportPosts) leaves them 0."""
    return events_pb2.PostCreated(
        post_id=record.post_id,
        author_id=record.author_id,
        text=record.text,
        reply_to_id=record.reply_to_id,
        repost_of_id=record.repost_of_id,
        hashtags=record.hashtags,
        mentions=record.mentions,
        product_ids=record.product_ids,
        media_ids=record.media_ids,
        created_at=timestamp_from_ms(record.created_at_ms),
        reply_to_author_id=reply_to_author_id,
        repost_of_author_id=repost_of_author_id,
    )
