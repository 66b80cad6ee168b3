"""Bookmark storage against real Cassandra: one bookmark per user and post,
a retry completes a claim whose list row was never written, removal takes
both rows, (through the running service) listing drops the rows of a
deleted post, and (through a second process with a small limit) the
bookmark limit.

Store-level tests use fresh random user and post ids, so they never meet
other tests' data."""

from __future__ import annotations

import random

import grpc
import pytest

from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.stores import cql
from services.posts.store import PostStore
from tests.integration.support import second_process
from tests.integration.test_posts import RPC_TIMEOUT, create, delete, sign_up


def fresh_id() -> int:
    return random.randrange(10**17, 10**18)


async def claim_of(posts_store: PostStore, user_id: int, post_id: int) -> list:
    return await cql.execute(posts_store.session, posts_store._st.select_bookmark_claim, (user_id, post_id))


async def test_one_bookmark_per_user_and_post_newest_first(posts_store):
    user, first_post, second_post = fresh_id(), fresh_id(), fresh_id()
    held = await posts_store.add_bookmark(user, first_post, 1000)
    assert held == 1000
    # Again, with a newer id: the first bookmark holds.
    assert await posts_store.add_bookmark(user, first_post, 3000) == 1000
    await posts_store.add_bookmark(user, second_post, 2000)
    assert await posts_store.bookmarks(user, None, 10) == [(2000, second_post), (1000, first_post)]
    assert await posts_store.bookmarks(user, 2000, 10) == [(1000, first_post)]
    assert await posts_store.bookmarks(fresh_id(), None, 10) == []


async def test_remove_takes_both_rows_and_is_idempotent(posts_store):
    user, post = fresh_id(), fresh_id()
    await posts_store.add_bookmark(user, post, 1000)
    await posts_store.remove_bookmark(user, post)
    await posts_store.remove_bookmark(user, post)
    assert await posts_store.bookmarks(user, None, 10) == []
    assert await claim_of(posts_store, user, post) == []
    # Bookmarked again: a new bookmark with the new id.
    assert await posts_store.add_bookmark(user, post, 5000) == 5000
    assert await posts_store.bookmarks(user, None, 10) == [(5000, post)]


async def test_a_retry_completes_a_claim_without_its_list_row(posts_store):
    user, post = fresh_id(), fresh_id()
    # A call that died after its claim, before its list row.
    await cql.execute(posts_store.session, posts_store._st.claim_bookmark, (user, post, 1000))
    assert await posts_store.bookmarks(user, None, 10) == []
    assert await posts_store.add_bookmark(user, post, 2000) == 1000
    assert await posts_store.bookmarks(user, None, 10) == [(1000, post)]


async def test_listing_drops_the_rows_of_a_deleted_post(identity, posts, posts_store):
    reader, author = sign_up(identity), sign_up(identity)
    kept, gone = create(posts, author, "kept"), create(posts, author, "gone")
    for post in (kept, gone):
        posts.BookmarkPost(posts_pb2.BookmarkPostRequest(post_id=post.id), metadata=reader.auth, timeout=RPC_TIMEOUT)
    delete(posts, author, gone.id)
    # Still stored until a listing finds the post deleted.
    assert len(await posts_store.bookmarks(int(reader.id), None, 10)) == 2
    listed = posts.ListBookmarks(posts_pb2.ListBookmarksRequest(), metadata=reader.auth, timeout=RPC_TIMEOUT)
    assert [p.id for p in listed.posts] == [kept.id]
    assert [post_id for _, post_id in await posts_store.bookmarks(int(reader.id), None, 10)] == [int(kept.id)]
    assert await claim_of(posts_store, int(reader.id), int(gone.id)) == []


async def test_listing_drops_stray_rows_an_unbookmark_race_left(identity, posts, posts_store):
    reader, author = sign_up(identity), sign_up(identity)
    kept, unbookmarked = create(posts, author, "kept"), create(posts, author, "unbookmarked")
    posts.BookmarkPost(posts_pb2.BookmarkPostRequest(post_id=kept.id), metadata=reader.auth, timeout=RPC_TIMEOUT)
    user = int(reader.id)
    (held,) = await posts_store.bookmarks(user, None, 10)
    # List rows written after an unbookmark removed their claim: one for a
    # post no longer bookmarked, one older duplicate of a bookmarked post.
    await cql.execute(posts_store.session, posts_store._st.insert_bookmark, (user, held[0] + 1, int(unbookmarked.id)))
    await cql.execute(posts_store.session, posts_store._st.insert_bookmark, (user, held[0] - 1, int(kept.id)))
    listed = posts.ListBookmarks(posts_pb2.ListBookmarksRequest(), metadata=reader.auth, timeout=RPC_TIMEOUT)
    assert [p.id for p in listed.posts] == [kept.id]
    assert await posts_store.bookmarks(user, None, 10) == [held]
    assert await posts_store.has_bookmark(user, int(kept.id))


async def test_bookmark_count_follows_adds_and_removals(posts_store):
    user = fresh_id()
    posts = [fresh_id() for _ in range(3)]
    for i, post in enumerate(posts):
        await posts_store.add_bookmark(user, post, 1000 + i)
    await posts_store.add_bookmark(user, posts[0], 2000)
    assert await posts_store.bookmark_count(user) == 3
    await posts_store.remove_bookmark(user, posts[1])
    assert await posts_store.bookmark_count(user) == 2
    assert await posts_store.has_bookmark(user, posts[0]) and not await posts_store.has_bookmark(user, posts[1])


@pytest.fixture
def posts_with_two_bookmarks(tmp_path):
    """A second posts process that lets a user keep two bookmarks."""
    with second_process("posts", tmp_path, "AVIARY_POSTS_PORT", AVIARY_POSTS_MAX_BOOKMARKS="2") as process:
        yield posts_pb2_grpc.PostsServiceStub(process.channel)


def test_past_the_limit_a_new_bookmark_is_refused_and_an_old_one_still_succeeds(
    identity, posts, posts_with_two_bookmarks
):
    reader, author = sign_up(identity), sign_up(identity)
    first, second, third = (create(posts, author, f"post {i}") for i in range(3))

    def bookmark(post):
        return posts_with_two_bookmarks.BookmarkPost(
            posts_pb2.BookmarkPostRequest(post_id=post.id), metadata=reader.auth, timeout=RPC_TIMEOUT
        )

    bookmark(first)
    bookmark(second)
    with pytest.raises(grpc.RpcError) as refused:
        bookmark(third)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "at most 2 bookmarks" in refused.value.details()
    bookmark(first)  # again: not a new bookmark
    listed = posts.ListBookmarks(posts_pb2.ListBookmarksRequest(), metadata=reader.auth, timeout=RPC_TIMEOUT)
    assert [p.id for p in listed.posts] == [second.id, first.id]
