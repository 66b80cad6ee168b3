"""A posts replica keeps the post it wrote as written: its followers' homes
ask for it next, and reading it back from Cassandra would be a row read each.

A second posts process, which only these tests call, shows whether a read
went to Cassandra (its metrics count the row reads). The devstack's posts,
which never held the post, reads it from Cassandra for comparison.
"""

from __future__ import annotations

import httpx
import pytest

from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from tests.integration.support import second_process
from tests.integration.test_posts import RPC_TIMEOUT, _product_id, _upload_images, create, sign_up

ROW_READ = 'aviary_cql_statements_total{statement="SELECT post_id, author_id, text, '


class _Replica:
    def __init__(self, stub: posts_pb2_grpc.PostsServiceStub, metrics_port: int) -> None:
        self.stub = stub
        self.metrics_port = metrics_port

    def rows_read(self) -> float:
        """Post rows this replica has read from Cassandra."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(ROW_READ))


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    with second_process("posts", tmp_path_factory.mktemp("posts"), "AVIARY_POSTS_PORT") as process:
        yield _Replica(posts_pb2_grpc.PostsServiceStub(process.channel), process.metrics_port)


def _get(posts, post_id: str, auth) -> posts_pb2.Post:
    return posts.GetPost(posts_pb2.GetPostRequest(post_id=post_id), metadata=auth, timeout=RPC_TIMEOUT)


def test_a_new_post_is_read_back_without_a_row_read(identity, replica):
    author, reader = sign_up(identity), sign_up(identity)
    before = replica.rows_read()

    created = create(replica.stub, author, "fresh #news for @someone")
    got = _get(replica.stub, created.id, reader.auth)
    batch = replica.stub.BatchGetPosts(
        posts_pb2.BatchGetPostsRequest(post_ids=[created.id], viewer_id=reader.id, skip_engagement=True),
        timeout=RPC_TIMEOUT,
    )
    page = replica.stub.ListUserPosts(
        posts_pb2.ListUserPostsRequest(user_id=author.id), metadata=reader.auth, timeout=RPC_TIMEOUT
    )

    assert got.text == "fresh #news for @someone" and list(got.hashtags) == ["news"]
    assert [p.id for p in batch.posts] == [p.id for p in page.posts] == [created.id]
    assert replica.rows_read() == before


def test_the_kept_post_is_the_row_cassandra_holds(identity, posts, replica):
    author, reader = sign_up(identity), sign_up(identity)
    parent = create(posts, reader, "a parent")
    created = create(
        replica.stub,
        author,
        "with #Everything for @Reader_1",
        media_ids=_upload_images(author, 2),
        product_ids=[_product_id(identity)],
        reply_to_id=parent.id,
    )

    kept = _get(replica.stub, created.id, reader.auth)
    read = _get(posts, created.id, reader.auth)

    assert kept == read
    assert kept.reply_to_id == parent.id and len(kept.media) == 2 and len(kept.products) == 1
