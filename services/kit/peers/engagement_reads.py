"""Engagement's counts and a reader's likes and reposts, read straight from
the Redis hashes engagement keeps.

Engagement alone writes these hashes (services/engagement/README.md,
"Counters" and "likedByMe and repostedByMe"); their keys and the fields a
reader needs are defined here, for it and for the services that show posts.
A page reads its posts' counters and the viewer's two hashes in one bulk
round trip instead of a call to engagement, whose hop costs more than the
reads. A page the hashes cannot vouch for whole (a counter never loaded or
of another Redis epoch, a reader's hash not loaded, a post below its floor,
or the epoch unknown) is asked of engagement, which loads what is missing.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

from prometheus_client import Counter
from redis.exceptions import RedisError

from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch

# Enough sets to spread the counters' dirty marks (and so the counters, which
# share their set's hash tag) over a cluster's masters.
DIRTY_SETS = 256
# The counter hash's fields: likes, reposts, replies, quotes, and the Redis
# epoch it was loaded in.
COUNT_FIELDS = (b"l", b"r", b"p", b"q")
COUNT_EPOCH = b"ep"
# A reader's hash of one kind: post id -> b"1" (yes) or b"0" (no longer), the
# floor below which it is incomplete, and its epoch.
FLOOR = "_floor"
MARKS_EPOCH = "_ep"
LIKED_TAG, REPOSTED_TAG = "lk", "rp"
# An epoch read this long ago still vouches for the hashes (a process that
# watches its epoch reads it more often than this).
EPOCH_MAX_AGE_SECONDS = 1.0

READS = Counter("aviary_engagement_reads_total", "Pages' engagement, by where it was read from", ["source"])


def dirty_set(post_id: int) -> int:
    """Which dirty set marks the post (by a hash: ids' low bits are a sequence, often 0)."""
    return zlib.crc32(str(post_id).encode()) % DIRTY_SETS


def counter_key(post_id: int) -> str:
    return f"eng:c:{{eng{dirty_set(post_id)}}}:{post_id}"


def marks_key(tag: str, user_id: int) -> str:
    """A reader's hash of liked (LIKED_TAG) or reposted (REPOSTED_TAG) posts."""
    return f"eng:{tag}:{{{user_id}}}"


def count_read(post_id: int) -> tuple:
    """The read of a post's counter: its four counts, then its epoch."""
    return (b"HMGET", counter_key(post_id), *COUNT_FIELDS, COUNT_EPOCH)


def marks_read(tag: str, user_id: int, post_ids: list[int]) -> tuple:
    """The read of a reader's hash: its floor, its epoch, then each post's mark."""
    return (b"HMGET", marks_key(tag, user_id), FLOOR, MARKS_EPOCH, *post_ids)


def count_value(value: bytes | None) -> int:
    """A counter field (a hash loaded before quotes were counted has no q)."""
    return max(0, int(value)) if value is not None else 0


class Engagement(NamedTuple):
    """One post's engagement, with PostEngagement's field names: a tuple is
    built in a tenth of a message's time, and a page builds twenty."""

    post_id: str
    like_count: int
    repost_count: int
    reply_count: int
    quote_count: int
    liked_by_me: bool
    reposted_by_me: bool


class EngagementReads:
    """Reads pages' engagement from the process's Redis (see the module docstring)."""

    def __init__(self, bulk: BulkRedis, epoch: RedisEpoch) -> None:
        self._bulk = bulk
        self._epoch = epoch

    async def read(self, post_ids: list[str], viewer_id: int) -> list[Engagement] | None:
        """Each post's engagement as engagement would answer it, in order; None
        when the hashes cannot vouch for all of it (ask engagement)."""
        if not all(p.isdigit() for p in post_ids):
            return None
        epoch = await self._epoch.current_within(EPOCH_MAX_AGE_SECONDS)
        if epoch is None:
            READS.labels("engagement").inc()
            return None
        ids = [int(p) for p in post_ids]
        commands = [count_read(p) for p in ids]
        if viewer_id:
            commands += [marks_read(tag, viewer_id, ids) for tag in (LIKED_TAG, REPOSTED_TAG)]
        try:
            rows = await self._bulk.read(commands)
        except (RedisError, OSError):
            # Engagement may still answer: its hashes are not the only way in.
            READS.labels("engagement").inc()
            return None
        answer = _answer(ids, rows, viewer_id, epoch)
        READS.labels("redis" if answer is not None else "engagement").inc()
        return answer


def _answer(ids: list[int], rows: list, viewer_id: int, epoch: bytes) -> list[Engagement] | None:
    counts = rows[: len(ids)]
    if any(row[4] != epoch for row in counts):
        return None
    liked: set[int] | None = set()
    reposted: set[int] | None = set()
    if viewer_id:
        liked, reposted = (_marked(ids, row, epoch) for row in rows[len(ids) :])
    if liked is None or reposted is None:
        return None
    return [
        Engagement(
            str(post_id),
            count_value(row[0]),
            count_value(row[1]),
            count_value(row[2]),
            count_value(row[3]),
            post_id in liked,
            post_id in reposted,
        )
        for post_id, row in zip(ids, counts)
    ]


def _marked(ids: list[int], row: list, epoch: bytes) -> set[int] | None:
    """The posts a reader's hash marks yes; None when it cannot say for all of them."""
    floor, hash_epoch, values = row[0], row[1], row[2:]
    if floor is None or hash_epoch != epoch:
        return None
    lowest = int(floor)
    if any(value is None and post_id < lowest for post_id, value in zip(ids, values)):
        return None
    return {post_id for post_id, value in zip(ids, values) if value == b"1"}
