"""The pure rules of trends: buckets, the sliding window, decay, who counts.

Time is cut into buckets of `bucket_seconds` (bucket n covers
[n * bucket_seconds, (n + 1) * bucket_seconds) in unix seconds). The window
is the current bucket and the `buckets - 1` before it, so it spans between
`buckets - 1` and `buckets` whole buckets; the newest bucket weighs 1 and
each older one `decay` times the next newer one.

Each (hashtag, user) is counted once in the window, in the bucket of the
user's latest post with that tag: a later post moves the user's one count
forward (so the decayed score reflects that they are still talking about it),
a repeated or older post changes nothing. Deleting a post takes back what it
counted: the user's count goes back to their newest remaining post with the
tag, or away if none is left (`removal`). store.py runs `decide` and
`removal` in Lua; the functions here are the reference the tests hold it to.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

# Longest hashtag the posts service extracts (services/posts/text.py).
MAX_HASHTAG_CHARS = 100


@dataclass(frozen=True)
class Window:
    bucket_seconds: int = 300
    buckets: int = 12
    # Weight of a bucket relative to the next newer one (1.0: no decay).
    decay: float = 0.8
    # Tags with fewer distinct users in the window are never listed, so one
    # account (or a couple) can never make a trend.
    min_users: int = 3

    def __post_init__(self) -> None:
        if self.bucket_seconds < 1:
            raise ValueError(f"AVIARY_TRENDS_BUCKET_SECONDS must be >= 1, got {self.bucket_seconds}")
        if self.buckets < 1:
            raise ValueError(f"AVIARY_TRENDS_WINDOW_BUCKETS must be >= 1, got {self.buckets}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"AVIARY_TRENDS_DECAY must be in (0, 1], got {self.decay}")
        if self.min_users < 1:
            raise ValueError(f"AVIARY_TRENDS_MIN_USERS must be >= 1, got {self.min_users}")

    @property
    def window_seconds(self) -> int:
        return self.bucket_seconds * self.buckets

    def bucket_of(self, unix_seconds: float) -> int:
        return int(unix_seconds // self.bucket_seconds)

    def oldest(self, current: int) -> int:
        """The oldest bucket still in the window whose newest bucket is `current`."""
        return current - self.buckets + 1

    def window_of(self, current: int) -> list[int]:
        """The window's buckets, oldest first."""
        return list(range(self.oldest(current), current + 1))

    def weights(self) -> list[float]:
        """Decay weights aligned with window_of(): oldest first, newest 1.0."""
        return [self.decay ** (self.buckets - 1 - i) for i in range(self.buckets)]

    def expire_at(self, bucket: int) -> int:
        """Unix seconds when a bucket (and the user markers pointing into it)
        may go: it leaves the window at (bucket + buckets) * bucket_seconds;
        one more bucket of slack absorbs clock differences between hosts."""
        return (bucket + self.buckets + 1) * self.bucket_seconds

    def place(self, event_seconds: float, now_seconds: float) -> int | None:
        """The bucket an event counts in, by the post's own creation time (so a
        replay lands where the original did), or None when the post is already
        older than the window. A post stamped a little in the future (clocks
        of two hosts disagree) counts in the current bucket: a future bucket
        would be invisible until its time came."""
        current = self.bucket_of(now_seconds)
        bucket = min(self.bucket_of(event_seconds), current)
        return bucket if bucket >= self.oldest(current) else None

    def start_seconds(self, now_seconds: float) -> int:
        """Where the window starts: the start of its oldest bucket."""
        return self.oldest(self.bucket_of(now_seconds)) * self.bucket_seconds


class Decision(enum.IntEnum):
    """What one (tag, user) occurrence does; the values are the Lua script's replies."""

    DUPLICATE = 0  # counted already in this bucket or a later one: nothing changes
    COUNT = 1  # first time in the window: +1 in its bucket
    MOVE = 2  # counted in an older bucket of the window: -1 there, +1 here


def decide(previous: int | None, bucket: int, buckets: int) -> Decision:
    """`previous`: the bucket the user is counted in for the tag (None: not counted)."""
    if previous is None:
        return Decision.COUNT
    if previous >= bucket:
        return Decision.DUPLICATE
    # A marker older than the window is stale (its bucket is gone): count afresh.
    return Decision.MOVE if bucket - previous < buckets else Decision.COUNT


def removal(
    counted_in: int | None, left: int | None, deleted: int, current: int, buckets: int
) -> tuple[int | None, int | None]:
    """What deleting one post does to its author's count for one tag:
    (bucket to take 1 from, bucket to add 1 to), either None for nothing.

    `counted_in`: the newest bucket among the user's posts with the tag,
    deleted one included (where their one count sits); `left`: the newest
    among the others (None: no other). Only when the deleted post carried the
    count, and no other post shares its bucket, does the count move: back to
    the newest remaining post's bucket if that is still in the window, or
    away entirely. Buckets outside the window are gone and never touched.
    """
    if counted_in is None or counted_in != deleted or left == counted_in:
        return None, None
    oldest = current - buckets + 1
    take = counted_in if counted_in >= oldest else None
    give = left if left is not None and left >= oldest else None
    return take, give


def countable_tags(hashtags: Iterable[str], max_tags: int) -> list[str]:
    """The post's tags that count: lower-case, no '#', non-empty, at most
    MAX_HASHTAG_CHARS, each once, the first `max_tags` of them (a post
    stuffed with tags does not get to push all of them)."""
    tags: list[str] = []
    seen: set[str] = set()
    for raw in hashtags:
        tag = raw.strip().lstrip("#").lower()
        if not tag or len(tag) > MAX_HASHTAG_CHARS or tag in seen:
            continue
        seen.add(tag)
        tags.append(tag)
        if len(tags) == max_tags:
            break
    return tags


@dataclass(frozen=True)
class TrendRow:
    hashtag: str
    user_count: int
    score: float


def rank(
    bucket_counts: Sequence[Mapping[str, int]], weights: Sequence[float], min_users: int, limit: int
) -> list[TrendRow]:
    """Reference of the read (store.py does the same in Redis): tags with at
    least `min_users` distinct users in the window (the plain sum of the
    buckets, since each user counts in exactly one), ordered by the weighted
    sum, highest first; ties in Redis order (greater tag first)."""
    users: dict[str, int] = {}
    scores: dict[str, float] = {}
    for counts, weight in zip(bucket_counts, weights):
        for tag, n in counts.items():
            users[tag] = users.get(tag, 0) + n
            scores[tag] = scores.get(tag, 0.0) + weight * n
    rows = [TrendRow(tag, n, scores[tag]) for tag, n in users.items() if n >= min_users]
    rows.sort(key=lambda row: (row.score, row.hashtag), reverse=True)
    return rows[:limit]
