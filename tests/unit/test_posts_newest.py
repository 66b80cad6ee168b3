"""The newest posts of many authors: the same answer as reading every
author's list in full, from far fewer rows."""

from __future__ import annotations

import heapq
import random

import pytest

from services.posts.newest import first_page_size, newest_of_authors


class Lists:
    """Authors' lists newest first, read as posts_by_author reads them; counts rows read."""

    def __init__(self, lists: dict[int, list[int]]) -> None:
        self.lists = {author: sorted(ids, reverse=True) for author, ids in lists.items()}
        self.rows_read = 0
        self.calls = 0

    async def read_page(self, author_id: int, before: int | None, limit: int) -> list[tuple[int, str]]:
        self.calls += 1
        rows = [(i, f"kept {i}") for i in self.lists[author_id] if before is None or i < before][:limit]
        self.rows_read += len(rows)
        return rows


def full_reads(lists: Lists, before: int | None, per_author: int, limit: int) -> list[tuple[int, int, str]]:
    rows = [
        (post_id, author, f"kept {post_id}")
        for author, ids in lists.lists.items()
        for post_id in [i for i in ids if before is None or i < before][:per_author]
    ]
    return heapq.nlargest(limit, rows)


def random_lists(rng: random.Random, authors: int, most: int) -> dict[int, list[int]]:
    ids = rng.sample(range(1, 10**9), authors * most)
    return {
        author: ids[at * most : at * most + rng.randint(0, most)] for at, author in enumerate(range(1, authors + 1))
    }


@pytest.mark.parametrize("seed", range(40))
async def test_the_answer_is_the_full_reads_answer(seed):
    rng = random.Random(seed)
    lists = Lists(random_lists(rng, rng.randint(1, 40), rng.choice([5, 50, 300])))
    before = rng.choice([None, rng.randint(1, 10**9)])
    per_author, limit = rng.choice([1, 21, 200, 800]), rng.choice([1, 21, 800])
    found = await newest_of_authors(lists.read_page, list(lists.lists), before, per_author, limit)
    assert found == full_reads(lists, before, per_author, limit)


async def test_a_rebuild_reads_a_fraction_of_what_full_reads_take():
    # 21 authors who each posted 300 times, at the same pace.
    rng = random.Random(7)
    ids = rng.sample(range(1, 10**9), 21 * 300)
    lists = Lists({author: ids[author::21] for author in range(21)})
    found = await newest_of_authors(lists.read_page, list(lists.lists), None, 200, 800)
    assert found == full_reads(lists, None, 200, 800)
    full = sum(min(200, len(ids)) for ids in lists.lists.values())
    assert lists.rows_read < full / 2, (lists.rows_read, full)


async def test_one_prolific_author_is_read_deeper_and_the_quiet_ones_once():
    quiet = {author: [author * 10**6 + i for i in range(5)] for author in range(1, 21)}
    lists = Lists({**quiet, 99: list(range(10**9, 10**9 + 1000))})
    found = await newest_of_authors(lists.read_page, list(lists.lists), None, 800, 800)
    assert found == full_reads(lists, None, 800, 800)
    assert [author for _, author, _ in found].count(99) == 800
    # Each quiet author's list ended in the first page: one call each.
    assert lists.calls - 20 < 8


@pytest.mark.parametrize(
    "authors, per_author, limit, expected",
    [(21, 200, 800, 58), (1, 200, 800, 200), (1000, 21, 21, 20), (5, 10, 800, 10)],
)
def test_the_first_page_is_a_share_of_the_limit_with_a_margin(authors, per_author, limit, expected):
    assert first_page_size(authors, per_author, limit) == expected
