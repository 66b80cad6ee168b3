"""The newest posts of many authors, merged, reading each author's list only
as deep as the merge needs.

Reading every author's `per_author` newest rows to keep `limit` of them
reads far more than it keeps. Each author is read a page at a time instead,
a share of `limit` first, and read further only while its last row read is
newer than the limit-th newest row found so far; rows below that can never
be among the newest `limit` (post ids are unique), so the answer is the
one the full reads would give.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")

# The rows an author's page reads beyond its share, so that most authors
# need one page.
FIRST_PAGE_MARGIN = 1.5
SMALLEST_PAGE = 20

# An author's list, read: (author, older than this id or None, at most n) ->
# rows newest first, each (post id, anything the caller keeps with it).
ReadPage = Callable[[int, int | None, int], Awaitable[list[tuple[int, T]]]]


@dataclass
class _Reading(Generic[T]):
    author_id: int
    rows: list[tuple[int, T]] = field(default_factory=list)
    done: bool = False  # the list ended, or per_author rows were read

    @property
    def oldest(self) -> int | None:
        return self.rows[-1][0] if self.rows else None


def first_page_size(authors: int, per_author: int, limit: int) -> int:
    """Rows read of each author at first: their share of `limit` and a margin."""
    share = math.ceil(FIRST_PAGE_MARGIN * limit / max(1, authors))
    return min(per_author, max(SMALLEST_PAGE, share))


def cutoff(readings: list[_Reading[T]], limit: int) -> int | None:
    """The limit-th newest post id read so far; None while fewer were read."""
    ids = [post_id for reading in readings for post_id, _ in reading.rows]
    if len(ids) < limit:
        return None
    return heapq.nlargest(limit, ids)[-1]


def needs_more(reading: _Reading[T], floor: int | None) -> bool:
    """Whether rows of this author not read yet could be among the newest."""
    if reading.done:
        return False
    oldest = reading.oldest
    return floor is None or oldest is None or oldest > floor


async def newest_of_authors(
    read_page: ReadPage[T],
    authors: list[int],
    before: int | None,
    per_author: int,
    limit: int,
    concurrency: int = 64,
) -> list[tuple[int, int, T]]:
    """Up to `limit` (post id, author, kept) newest first, at most
    `per_author` of each author, only posts older than `before`."""
    gate = asyncio.Semaphore(concurrency)
    readings: list[_Reading[T]] = [_Reading(author_id) for author_id in authors]
    page = first_page_size(len(authors), per_author, limit)

    async def read_more(reading: _Reading[T]) -> None:
        # A page first, then as many rows again as were read: an author
        # read again is a prolific one.
        want = min(max(page, len(reading.rows)), per_author - len(reading.rows))
        start = reading.oldest if reading.rows else before
        async with gate:
            rows = await read_page(reading.author_id, start, want)
        reading.rows.extend(rows)
        reading.done = len(rows) < want or len(reading.rows) >= per_author

    pending = readings
    while pending:
        await asyncio.gather(*(read_more(reading) for reading in pending))
        floor = cutoff(readings, limit)
        pending = [reading for reading in readings if needs_more(reading, floor)]
    merged = ((post_id, r.author_id, kept) for r in readings for post_id, kept in r.rows)
    return heapq.nlargest(limit, merged, key=lambda row: row[0])
