"""ListAuthorsPostIds against the running posts and Cassandra: each post
comes with the original a pure repost shows, from the author's list itself;
rows an older release wrote without it are learned from the posts and
filled in, and filling in never brings back a deleted row."""

from __future__ import annotations

import datetime
import secrets

import pytest
from cassandra.cluster import Cluster

from aviary.posts.v1 import posts_pb2
from services.kit.server import ids
from services.kit.settings import Settings, load
from tests.integration.test_posts import RPC_TIMEOUT, create, sign_up


@pytest.fixture(scope="module")
def cql():
    settings = load(Settings)
    cluster = Cluster(list(settings.cassandra_hosts), port=settings.cassandra_port, protocol_version=4)
    session = cluster.connect("aviary_posts")
    yield session
    cluster.shutdown()


def refs(posts, *author_ids: int) -> list[tuple[int, int, int]]:
    reply = posts.ListAuthorsPostIds(
        posts_pb2.ListAuthorsPostIdsRequest(author_ids=list(author_ids)), timeout=RPC_TIMEOUT
    )
    return [(r.post_id, r.author_id, r.repost_of_id) for r in reply.posts]


def repost_of_column(cql, author_id: int) -> dict[int, int | None]:
    rows = cql.execute("SELECT post_id, repost_of FROM posts_by_author WHERE author_id = %s", (author_id,))
    return {row.post_id: row.repost_of for row in rows}


def test_each_post_says_what_it_purely_reposts(identity, posts):
    author, reposter = sign_up(identity), sign_up(identity)
    original = create(posts, author, "the original")
    repost = posts.RepostPost(
        posts_pb2.RepostPostRequest(post_id=original.id), metadata=reposter.auth, timeout=RPC_TIMEOUT
    )
    quote = create(posts, reposter, "a quote of it", repost_of_id=original.id)
    plain = create(posts, reposter, "something else")

    assert refs(posts, int(author.id), int(reposter.id)) == [
        (int(plain.id), int(reposter.id), 0),
        (int(quote.id), int(reposter.id), 0),
        (int(repost.id), int(reposter.id), int(original.id)),
        (int(original.id), int(author.id), 0),
    ]


def _old_release_row(cql, author_id: int, text: str, repost_of_id: int = 0, deleted: bool = False) -> int:
    """A post as a release before the column wrote it: its author-list row without repost_of."""
    post_id = ids.IdGenerator(worker_id=1023).next_id()
    created_at = datetime.datetime.fromtimestamp(ids.timestamp_ms(post_id) / 1000, tz=datetime.timezone.utc)
    cql.execute(
        "INSERT INTO posts (post_id, author_id, text, repost_of_id, created_at, deleted) VALUES (%s, %s, %s, %s, %s, %s)",
        (post_id, author_id, text, repost_of_id or None, created_at, deleted),
    )
    cql.execute("INSERT INTO posts_by_author (author_id, post_id) VALUES (%s, %s)", (author_id, post_id))
    return post_id


def test_rows_written_before_the_column_are_learned_and_filled_in(identity, posts, cql):
    author = int(sign_up(identity).id)
    original = create(posts, sign_up(identity), "an original")
    repost = _old_release_row(cql, author, "", repost_of_id=int(original.id))
    plain = _old_release_row(cql, author, "plain text")
    deleted = _old_release_row(cql, author, "deleted, its row not yet gone", deleted=True)
    assert repost_of_column(cql, author) == {repost: None, plain: None, deleted: None}

    # The deleted post is left out: only its own row could say whether it reposted.
    assert refs(posts, author) == [(plain, author, 0), (repost, author, int(original.id))]
    assert repost_of_column(cql, author) == {repost: int(original.id), plain: 0, deleted: None}
    assert refs(posts, author) == [(plain, author, 0), (repost, author, int(original.id))]


async def test_filling_in_never_brings_a_deleted_row_back(identity, posts_store, cql):
    author = int(sign_up(identity).id)
    post_id = _old_release_row(cql, author, "soon deleted")
    (record,) = await posts_store.get_many([post_id])
    assert record is not None
    cql.execute("DELETE FROM posts_by_author WHERE author_id = %s AND post_id = %s", (author, post_id))

    await posts_store.fill_in_repost_of([record])
    assert repost_of_column(cql, author) == {}


def test_an_unknown_author_has_no_posts(posts):
    assert refs(posts, (1 << 62) + secrets.randbits(40)) == []
