"""Bookmark storage against real Cassandra: one bookmark per user and post,
a retry completes a claim whose list row was never written, removal takes
both rows, and (through the running service) listing drops the rows of a
deleted post.

Store-level tests use fresh random user and post ids, so they never meet
other tests' data."""

from __future__ import annotations

import random

import pytest

from aviary.posts.v1 import posts_pb2
from services.kit.events.kafka import Producer
from services.kit.settings import load_settings
from services.kit.stores import cql
from services.posts.store import PostStore
from tests.integration.test_posts import RPC_TIMEOUT, create, delete, sign_up


def fresh_id() -> int:
    return random.randrange(10**17, 10**18)


@pytest.fixture
async def store():
    settings = load_settings()
    producer = Producer(settings.kafka_bootstrap)
    made = PostStore(settings)
    await made.start(producer)
    yield made
    await made.stop()
    await producer.close()


async def claim_of(store: PostStore, user_id: int, post_id: int) -> list:
    return await cql.execute(store.session, store._st.select_bookmark_claim, (user_id, post_id))


async def test_one_bookmark_per_user_and_post_newest_first(store):
    user, first_post, second_post = fresh_id(), fresh_id(), fresh_id()
    held = await store.add_bookmark(user, first_post, 1000)
    assert held == 1000
    # Again, with a newer id: the first bookmark holds.
    assert await store.add_bookmark(user, first_post, 3000) == 1000
    await store.add_bookmark(user, second_post, 2000)
    assert await store.bookmarks(user, None, 10) == [(2000, second_post), (1000, first_post)]
    assert await store.bookmarks(user, 2000, 10) == [(1000, first_post)]
    assert await store.bookmarks(fresh_id(), None, 10) == []


async def test_remove_takes_both_rows_and_is_idempotent(store):
    user, post = fresh_id(), fresh_id()
    await store.add_bookmark(user, post, 1000)
    await store.remove_bookmark(user, post)
    await store.remove_bookmark(user, post)
    assert await store.bookmarks(user, None, 10) == []
    assert await claim_of(store, user, post) == []
    # Bookmarked again: a new bookmark with the new id.
    assert await store.add_bookmark(user, post, 5000) == 5000
    assert await store.bookmarks(user, None, 10) == [(5000, post)]


async def test_a_retry_completes_a_claim_without_its_list_row(store):
    user, post = fresh_id(), fresh_id()
    # A call that died after its claim, before its list row.
    await cql.execute(store.session, store._st.claim_bookmark, (user, post, 1000))
    assert await store.bookmarks(user, None, 10) == []
    assert await store.add_bookmark(user, post, 2000) == 1000
    assert await store.bookmarks(user, None, 10) == [(1000, post)]


async def test_listing_drops_the_rows_of_a_deleted_post(identity, posts, store):
    reader, author = sign_up(identity), sign_up(identity)
    kept, gone = create(posts, author, "kept"), create(posts, author, "gone")
    for post in (kept, gone):
        posts.BookmarkPost(posts_pb2.BookmarkPostRequest(post_id=post.id), metadata=reader.auth, timeout=RPC_TIMEOUT)
    delete(posts, author, gone.id)
    # Still stored until a listing finds the post deleted.
    assert len(await store.bookmarks(int(reader.id), None, 10)) == 2
    listed = posts.ListBookmarks(posts_pb2.ListBookmarksRequest(), metadata=reader.auth, timeout=RPC_TIMEOUT)
    assert [p.id for p in listed.posts] == [kept.id]
    assert [post_id for _, post_id in await store.bookmarks(int(reader.id), None, 10)] == [int(kept.id)]
    assert await claim_of(store, int(reader.id), int(gone.id)) == []
