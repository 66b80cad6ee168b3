"""The walk up a thread (GetPostContext's ancestors), on rows held in memory:
root first, deleted ancestors left out without ending the walk, a missing
row ends it, and the depth cap keeps the nearest ancestors."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from services.posts.model import PostRecord
from services.posts.servicer import MAX_THREAD_DEPTH, PostsServicer


def chain(length: int, *, deleted: frozenset[int] = frozenset()) -> dict[int, PostRecord]:
    """Posts 1..length, each replying to the one before."""
    return {
        i: PostRecord(post_id=i, author_id=7, text=f"p{i}", created_at_ms=i, reply_to_id=i - 1, deleted=i in deleted)
        for i in range(1, length + 1)
    }


def ancestors_of(rows: dict[int, PostRecord], post_id: int) -> list[int]:
    reads: list[int] = []

    async def record(wanted: int) -> PostRecord | None:
        reads.append(wanted)
        return rows.get(wanted)

    walker = SimpleNamespace(_record=record)
    found = asyncio.run(PostsServicer._live_ancestors(walker, rows[post_id]))  # type: ignore[arg-type]
    assert len(reads) <= MAX_THREAD_DEPTH
    return [r.post_id for r in found]


def test_ancestors_come_root_first_ending_with_the_parent():
    assert ancestors_of(chain(4), 4) == [1, 2, 3]


def test_a_post_without_a_parent_has_none():
    assert ancestors_of(chain(1), 1) == []


def test_deleted_ancestors_are_left_out_and_the_walk_goes_through_them():
    assert ancestors_of(chain(5, deleted=frozenset({2, 3})), 5) == [1, 4]


def test_a_missing_row_ends_the_walk():
    rows = chain(5)
    del rows[2]
    assert ancestors_of(rows, 5) == [3, 4]


def test_the_walk_stops_at_the_depth_cap_keeping_the_nearest():
    length = MAX_THREAD_DEPTH + 20
    assert ancestors_of(chain(length), length) == list(range(length - MAX_THREAD_DEPTH, length))


def test_a_cycle_ends_the_walk():
    rows = chain(3)
    rows[1] = PostRecord(post_id=1, author_id=7, text="p1", created_at_ms=1, reply_to_id=3)
    assert ancestors_of(rows, 3) == [1, 2]
