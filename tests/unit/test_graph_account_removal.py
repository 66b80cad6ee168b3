"""graph's walk over a deleted account's lists: every id once, page after page,
even while the rows it ends disappear under it."""

from __future__ import annotations

import pytest

from services.graph import servicer


@pytest.mark.parametrize(
    "count", [0, 1, servicer.REMOVAL_PAGE - 1, servicer.REMOVAL_PAGE, 2 * servicer.REMOVAL_PAGE + 7]
)
async def test_every_id_is_ended_once_while_rows_vanish(count):
    rows = set(range(1, count + 1))
    ended: list[int] = []
    reads: list[int] = []

    async def read_after(user: int, after: int, limit: int) -> list[int]:
        assert user == 42
        reads.append(after)
        return sorted(r for r in rows if r > after)[:limit]

    async def end_one(other: int) -> None:
        rows.discard(other)  # as an unfollow removes the row
        ended.append(other)

    await servicer._each_page(read_after, 42, end_one)
    assert sorted(ended) == list(range(1, count + 1)) and not rows
    # One read per full page, plus the short (or empty) one that ends the walk.
    assert len(reads) == count // servicer.REMOVAL_PAGE + 1
