"""Profile pages served from a replica's copy of the author's newest post ids.

Two real posts processes share Cassandra and Kafka: the devstack's, and a
second one started here. Posts written through one must show on the other's
profile pages once their events arrive, while the other answers from its copy
(its metrics tell a copy from a Cassandra read).
"""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from aviary.identity.v1 import identity_pb2
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from tests.integration.support import free_port, second_process

RPC_TIMEOUT = 15.0


class _Replica:
    def __init__(self, stub: posts_pb2_grpc.PostsServiceStub, metrics_port: int) -> None:
        self.stub = stub
        self.metrics_port = metrics_port

    def reads_from(self, source: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        line = f'aviary_posts_author_list_reads_total{{source="{source}"}} '
        return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


@pytest.fixture(scope="module")
def second_replica(tmp_path_factory):
    with second_process("posts", tmp_path_factory.mktemp("posts"), "AVIARY_POSTS_PORT") as process:
        yield _Replica(posts_pb2_grpc.PostsServiceStub(process.channel), process.metrics_port)


def _sign_up(identity) -> tuple[str, tuple]:
    reply = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password="correct horse battery"),
        timeout=RPC_TIMEOUT,
    )
    return reply.user.id, (("authorization", f"Bearer {reply.access_token}"),)


def _create(posts, auth, text: str) -> str:
    return posts.CreatePost(posts_pb2.CreatePostRequest(text=text), metadata=auth, timeout=RPC_TIMEOUT).id


def _page(posts, user_id: str, size: int = 5) -> list[str]:
    reply = posts.ListUserPosts(posts_pb2.ListUserPostsRequest(user_id=user_id, page_size=size), timeout=RPC_TIMEOUT)
    return [p.id for p in reply.posts]


def _until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _served_from_a_copy(replica: _Replica, user_id: str) -> bool:
    before = replica.reads_from("copy")
    _page(replica.stub, user_id)
    return replica.reads_from("copy") > before


def test_posts_written_through_another_replica_reach_this_ones_copy(identity, posts, second_replica):
    author, auth = _sign_up(identity)
    first = _create(posts, auth, "one")
    # Copies are kept once the replica's consumer is reading: until then every page is read.
    assert _until(lambda: _served_from_a_copy(second_replica, author), 30.0), "the replica never kept a copy"
    assert _page(second_replica.stub, author) == [first]

    second = _create(posts, auth, "two")
    copies_before = second_replica.reads_from("copy")
    assert _until(lambda: _page(second_replica.stub, author) == [second, first]), "the new post never showed"
    assert second_replica.reads_from("copy") > copies_before, "shown by reading Cassandra, not through the copy"

    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=second), metadata=auth, timeout=RPC_TIMEOUT)
    assert _until(lambda: _page(second_replica.stub, author) == [first]), "the deleted post stayed"


def test_a_replica_shows_its_own_writes_at_once(identity, second_replica):
    author, auth = _sign_up(identity)
    _create(second_replica.stub, auth, "old")
    assert _until(lambda: _served_from_a_copy(second_replica, author), 30.0), "the replica never kept a copy"
    for n in range(3):
        newest = _create(second_replica.stub, auth, f"new {n}")
        assert _page(second_replica.stub, author)[0] == newest

    old_then_new = _page(second_replica.stub, author, size=2)
    assert len(old_then_new) == 2 and old_then_new[0] == newest
    # A page past the copy's first still walks the whole list.
    rest = posts_pb2.ListUserPostsRequest(user_id=author, page_size=2)
    first_page = second_replica.stub.ListUserPosts(rest, timeout=RPC_TIMEOUT)
    rest.page_token = first_page.next_page_token
    assert len(second_replica.stub.ListUserPosts(rest, timeout=RPC_TIMEOUT).posts) == 2


@pytest.fixture(scope="module")
def replica_without_kafka(tmp_path_factory):
    """A posts process whose events wait in the outbox for another relay's sweep (seconds later)."""
    dead_kafka = f"127.0.0.1:{free_port()}"
    with second_process(
        "posts", tmp_path_factory.mktemp("posts"), "AVIARY_POSTS_PORT", AVIARY_KAFKA_BOOTSTRAP=dead_kafka
    ) as process:
        yield posts_pb2_grpc.PostsServiceStub(process.channel)


def test_authors_see_their_own_new_post_before_its_event_arrives(identity, second_replica, replica_without_kafka):
    author, auth = _sign_up(identity)
    first = _create(second_replica.stub, auth, "one")
    assert _until(lambda: _served_from_a_copy(second_replica, author), 30.0), "the replica never kept a copy"
    late = _create(replica_without_kafka, auth, "its event waits in the outbox")
    assert _page(second_replica.stub, author) == [first], "others see the copy until the event comes"
    own = second_replica.stub.ListUserPosts(
        posts_pb2.ListUserPostsRequest(user_id="me", page_size=5), metadata=auth, timeout=RPC_TIMEOUT
    )
    assert [p.id for p in own.posts] == [late, first]
    assert _until(lambda: _page(second_replica.stub, author) == [late, first], 30.0), "the swept event never came"
