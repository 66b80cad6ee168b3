"""A deleted account's posts (posts' AccountDeleted consumer), on an author
list held in memory: every post goes through the delete path page after
page, a run cut off half-way is finished by the redelivery without deleting
anything twice, a post let through by a stale replica is caught by the second
pass, and the bookmarks and repost claims go last."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from services.posts import servicer as posts_servicer
from services.posts.model import PostRecord
from services.posts.servicer import ACCOUNT_PAGE, PostsServicer
from services.posts.store import TombstoneResult

AUTHOR = 7


class FakeAuthor:
    """The author's list (newest first, as posts_by_author keeps it) and the
    delete path, which takes a post off the list like finish_delete does."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.listed = list(range(count, 0, -1))
        self.deleted: list[int] = []
        self.forgotten: list[int] = []
        self.fail_at = fail_at
        self.on_list_end = None
        self.reads = 0

    async def author_post_ids(self, author_id: int, before: int | None, limit: int) -> list[int]:
        assert author_id == AUTHOR and limit == ACCOUNT_PAGE
        self.reads += 1
        page = [p for p in self.listed if before is None or p < before][:limit]
        if not page and self.on_list_end is not None:
            self.on_list_end, arrive = None, self.on_list_end
            arrive()
        return page

    async def get(self, post_id: int) -> PostRecord:
        return PostRecord(post_id=post_id, author_id=AUTHOR, text="t", created_at_ms=post_id)

    async def delete(self, record: PostRecord) -> str:
        if record.post_id == self.fail_at:
            self.fail_at = None
            raise ConnectionError("cassandra went away")
        self.listed.remove(record.post_id)
        self.deleted.append(record.post_id)
        return TombstoneResult.APPLIED

    async def forget_user(self, user_id: int) -> None:
        assert not self.listed, "bookmarks and claims go after every post"
        self.forgotten.append(user_id)


def consumer_of(author: FakeAuthor) -> SimpleNamespace:
    fake = SimpleNamespace(
        store=SimpleNamespace(author_post_ids=author.author_post_ids, get=author.get, forget_user=author.forget_user),
        _delete=author.delete,
    )
    fake._delete_posts_of = lambda user_id: PostsServicer._delete_posts_of(fake, user_id)  # type: ignore[arg-type]
    return fake


def remove(author: FakeAuthor, deleted_at_ms: int = 0) -> None:
    asyncio.run(PostsServicer.remove_account(consumer_of(author), AUTHOR, deleted_at_ms))  # type: ignore[arg-type]


def test_every_post_goes_through_the_delete_path_page_after_page():
    author = FakeAuthor(2 * ACCOUNT_PAGE + 50)
    remove(author)
    assert sorted(author.deleted) == list(range(1, 2 * ACCOUNT_PAGE + 51))
    assert author.forgotten == [AUTHOR]


def test_a_run_cut_off_half_way_is_finished_by_the_redelivery_deleting_nothing_twice():
    author = FakeAuthor(ACCOUNT_PAGE + 30, fail_at=20)
    with pytest.raises(ConnectionError):
        remove(author)
    assert author.forgotten == [] and 20 in author.listed
    remove(author)
    assert sorted(author.deleted) == list(range(1, ACCOUNT_PAGE + 31))
    assert len(author.deleted) == len(set(author.deleted))
    assert author.forgotten == [AUTHOR]


def test_an_account_with_nothing_left_only_loses_its_bookmarks_and_claims():
    author = FakeAuthor(0)
    remove(author)
    assert author.deleted == [] and author.forgotten == [AUTHOR]


def test_a_post_let_through_by_a_stale_replica_is_caught_by_the_second_pass(monkeypatch):
    monkeypatch.setattr(posts_servicer, "GONE_SETTLE_SECONDS", 0.05)
    author = FakeAuthor(3)
    # A replica takes one more post just as the first pass ends.
    author.on_list_end = lambda: author.listed.insert(0, 99)
    remove(author, deleted_at_ms=int(time.time() * 1000))
    assert sorted(author.deleted) == [1, 2, 3, 99]
    assert author.forgotten == [AUTHOR]


def test_a_late_event_needs_no_second_pass():
    author = FakeAuthor(3)
    remove(author, deleted_at_ms=int(time.time() * 1000) - 60_000)
    assert sorted(author.deleted) == [1, 2, 3]
    assert author.reads == 2  # one page, then the empty read that ends the pass
