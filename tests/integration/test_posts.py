"""posts against the real stack: identity + posts processes over gRPC, Cassandra, Kafka.

Every test signs up its own fresh users (t_<hex> usernames), so it never sees
other tests' or the demo's data. Eventual effects (Kafka) are polled with a
deadline instead of slept for.
"""

from __future__ import annotations

import secrets
import time

import grpc
import httpx
import pytest

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit import manifest
from services.kit.server import ids
from services.kit.settings import service_addr
from services.kit.events.kafka import POSTS_TOPIC
from tests.integration.support import TopicReader, free_port, second_process, wait_serving
from devstack.mesh_channels import open_channel

PASSWORD = "correct horse battery"
RPC_TIMEOUT = 15.0


# -- plumbing ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity():
    channel = wait_serving(service_addr("identity"))
    yield identity_pb2_grpc.IdentityServiceStub(channel)
    channel.close()


class Account:
    def __init__(self, user: identity_pb2.User, token: str) -> None:
        self.id = user.id
        self.username = user.username
        self.auth = (("authorization", f"Bearer {token}"),)


def sign_up(identity) -> Account:
    username = f"t_{secrets.token_hex(4)}"
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=username, password=PASSWORD), timeout=RPC_TIMEOUT
    )
    return Account(resp.user, resp.access_token)


def create(posts, author: Account, text: str = "hello", **fields) -> posts_pb2.Post:
    return posts.CreatePost(posts_pb2.CreatePostRequest(text=text, **fields), metadata=author.auth, timeout=RPC_TIMEOUT)


def delete(posts, who: Account, post_id: str) -> None:
    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT)


def get(posts, post_id: str) -> posts_pb2.Post:
    return posts.GetPost(posts_pb2.GetPostRequest(post_id=post_id), timeout=RPC_TIMEOUT)


def list_page(posts, user_id: str, page_size: int = 0, page_token: str = "", metadata=()):
    return posts.ListUserPosts(
        posts_pb2.ListUserPostsRequest(user_id=user_id, page_size=page_size, page_token=page_token),
        metadata=metadata,
        timeout=RPC_TIMEOUT,
    )


def own_post_ids(posts, author: Account) -> list[str]:
    return [p.id for p in list_page(posts, author.id, page_size=100).posts]


def post_count(posts, author: Account) -> int:
    return posts.GetAuthorStats(posts_pb2.GetAuthorStatsRequest(user_id=author.id), timeout=RPC_TIMEOUT).post_count


def author_stats_calls() -> float:
    """BatchGetAuthorStats calls the devstack's posts has answered."""
    port = manifest.services()["posts"].metrics_port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(row.rsplit(" ", 1)[1])
        for row in text.splitlines()
        if row.startswith("aviary_rpc_server_seconds_count{") and 'method="BatchGetAuthorStats"' in row
    )


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_batch_author_stats_match_the_single_reads(identity, posts):
    busy, quiet = sign_up(identity), sign_up(identity)
    create(posts, busy, "one")
    gone = create(posts, busy, "two")
    create(posts, busy, "three")
    delete(posts, busy, gone.id)
    batch = posts.BatchGetAuthorStats(
        posts_pb2.BatchGetAuthorStatsRequest(user_ids=[quiet.id, busy.id, quiet.id]), timeout=RPC_TIMEOUT
    )
    assert [(s.user_id, s.post_count) for s in batch.stats] == [(quiet.id, 0), (busy.id, 2)]
    assert post_count(posts, busy) == 2
    err = rpc_error(
        posts.BatchGetAuthorStats, posts_pb2.BatchGetAuthorStatsRequest(user_ids=["x"]), timeout=RPC_TIMEOUT
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("user_ids[0]:")


def _product_id(identity) -> str:
    """An active product in the catalog (post product tags must name one), sold by a fresh seller."""
    from aviary.catalog.v1 import catalog_pb2, catalog_pb2_grpc

    seller = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password=PASSWORD, role="SELLER"),
        timeout=RPC_TIMEOUT,
    )
    with open_channel("catalog") as channel:
        return (
            catalog_pb2_grpc.CatalogServiceStub(channel)
            .CreateProduct(
                catalog_pb2.CreateProductRequest(title="Tagged mug", price_minor=1200, currency="USD", stock=1),
                metadata=(("authorization", f"Bearer {seller.access_token}"),),
                timeout=RPC_TIMEOUT,
            )
            .id
        )


# -- create / get / delete --------------------------------------------------------------


def _upload_images(author: Account, count: int) -> list[str]:
    """Media ids of `count` PNGs the author uploaded (a post's media must be the author's own)."""
    from google.api import httpbody_pb2

    from aviary.media.v1 import media_pb2, media_pb2_grpc
    from tests.media_files import png

    with open_channel("media") as channel:
        media = media_pb2_grpc.MediaServiceStub(channel)
        return [
            media.UploadMedia(
                media_pb2.UploadMediaRequest(file=httpbody_pb2.HttpBody(content_type="image/png", data=png())),
                metadata=author.auth,
                timeout=RPC_TIMEOUT,
            ).media_id
            for _ in range(count)
        ]


@pytest.fixture(scope="module")
def graph():
    channel = wait_serving(service_addr("graph"))
    yield graph_pb2_grpc.GraphServiceStub(channel)
    channel.close()


# Serial: it counts the devstack posts' answers, which other tests' calls would move.
@pytest.mark.serial
def test_a_posts_author_carries_their_follow_and_post_counts(identity, posts, graph):
    # Posts gathers them itself (graph's follow counts, its own post counts)
    # beside identity's summary.
    author, reader, followed = sign_up(identity), sign_up(identity), sign_up(identity)
    graph.FollowUser(graph_pb2.FollowUserRequest(user_id=author.id), metadata=reader.auth, timeout=RPC_TIMEOUT)
    graph.FollowUser(graph_pb2.FollowUserRequest(user_id=followed.id), metadata=author.auth, timeout=RPC_TIMEOUT)
    called_back = author_stats_calls()
    create(posts, author, "first")
    summary = create(posts, author, "second").author
    # Identity was not asked for the counts, so it did not call posts back.
    assert author_stats_calls() == called_back
    assert (summary.id, summary.username) == (author.id, author.username)
    assert (summary.follower_count, summary.following_count, summary.post_count) == (1, 1, 2)
    # Another reader's copy of the page shows the same counts.
    page = list_page(posts, author.id, metadata=reader.auth)
    assert {(p.author.follower_count, p.author.following_count, p.author.post_count) for p in page.posts} == {(1, 1, 2)}


def test_create_get_delete_round_trip(identity, posts):
    author = sign_up(identity)
    media_ids = _upload_images(author, 2)
    product_id = _product_id(identity)
    before_ms = int(time.time() * 1000)
    created = create(
        posts, author, "Hello #World and #world2 from @Bob_1 #WORLD", media_ids=media_ids, product_ids=[product_id]
    )
    assert created.id.isdigit() and created.author_id == author.id
    assert created.author.username == author.username and created.author.id == author.id
    assert created.text == "Hello #World and #world2 from @Bob_1 #WORLD"
    assert list(created.hashtags) == ["world", "world2"]
    assert list(created.mentions) == ["bob_1"]
    assert list(created.media_ids) == media_ids and list(created.product_ids) == [product_id]
    assert [p.title for p in created.products] == ["Tagged mug"]
    assert [m.media_id for m in created.media] == media_ids
    assert created.reply_to_id == "" and created.repost_of_id == ""
    created_ms = created.created_at.ToMilliseconds()
    assert created_ms == ids.timestamp_ms(int(created.id))
    assert before_ms - 5_000 <= created_ms <= int(time.time() * 1000) + 5_000

    fetched = get(posts, created.id)
    assert fetched == created
    assert own_post_ids(posts, author) == [created.id]
    assert post_count(posts, author) == 1

    delete(posts, author, created.id)
    err = rpc_error(get, posts, created.id)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == f"post {created.id} does not exist"
    assert own_post_ids(posts, author) == []
    assert post_count(posts, author) == 0


def test_deleting_someone_elses_post_is_denied_and_keeps_it(identity, posts):
    author, other = sign_up(identity), sign_up(identity)
    created = create(posts, author, "mine")
    err = rpc_error(delete, posts, other, created.id)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "you can only delete your own posts"
    assert get(posts, created.id).id == created.id
    assert own_post_ids(posts, author) == [created.id]


def test_deleting_twice_is_ok_and_counts_once(identity, posts):
    author, other = sign_up(identity), sign_up(identity)
    keep = create(posts, author, "stays")
    gone = create(posts, author, "goes")
    assert post_count(posts, author) == 2
    delete(posts, author, gone.id)
    delete(posts, author, gone.id)
    assert post_count(posts, author) == 1
    assert own_post_ids(posts, author) == [keep.id]
    # To anyone else a deleted post simply does not exist.
    assert rpc_error(delete, posts, other, gone.id).code() == grpc.StatusCode.NOT_FOUND


def test_unknown_post_is_not_found(identity, posts):
    author = sign_up(identity)
    unknown = "123456789"
    assert rpc_error(get, posts, unknown).code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(delete, posts, author, unknown)
    assert err.code() == grpc.StatusCode.NOT_FOUND and unknown in err.details()


# -- bad input writes nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "text: must not be empty"),
        ("   \n\t ", "text: must not be empty"),
        ("x" * 281, "text: must be at most 280 characters, got 281"),
        ("é" * 281, "text: must be at most 280 characters, got 281"),
        ("🐦" * 281, "text: must be at most 280 characters, got 281"),
    ],
    ids=["empty", "whitespace", "281-ascii", "281-accented", "281-emoji"],
)
def test_invalid_text_is_rejected_and_nothing_written(identity, posts, text, message):
    author = sign_up(identity)
    err = rpc_error(create, posts, author, text)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == message
    assert own_post_ids(posts, author) == []
    assert post_count(posts, author) == 0


@pytest.mark.parametrize(
    "text, stored",
    [("🐦" * 280, "🐦" * 280), ("漢" * 280, "漢" * 280), ("e\u0301" * 280, "é" * 280)],
    ids=["emoji", "cjk", "combining-marks"],
)
def test_exactly_280_multibyte_characters_are_accepted(identity, posts, text, stored):
    author = sign_up(identity)
    created = create(posts, author, text)
    assert created.text == stored
    assert get(posts, created.id).text == stored


def test_malformed_ids_name_the_field_and_write_nothing(identity, posts):
    author = sign_up(identity)
    cases = [
        (lambda: get(posts, "12x"), "post_id"),
        (lambda: get(posts, ""), "post_id"),
        (lambda: delete(posts, author, "-5"), "post_id"),
        (lambda: create(posts, author, "hi", media_ids=["1", "2", "x"]), "media_ids[2]"),
        (lambda: create(posts, author, "hi", media_ids=["1"] * 5), "media_ids"),
        (lambda: create(posts, author, "hi", product_ids=["0"]), "product_ids[0]"),
        (lambda: create(posts, author, "hi", product_ids=["1"] * 11), "product_ids"),
        (lambda: create(posts, author, "hi", reply_to_id="abc"), "reply_to_id"),
        (lambda: create(posts, author, "hi", repost_of_id="99999999999999999999999"), "repost_of_id"),
        (lambda: create(posts, author, "hi", reply_to_id="1", repost_of_id="2"), "repost_of_id"),
        (lambda: list_page(posts, "0x10"), "user_id"),
        (lambda: list_page(posts, author.id, page_token="not-a-token"), "page_token"),
        (lambda: list_page(posts, author.id, page_size=-1), "page_size"),
        (
            lambda: posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(post_ids=["1", "nope"]), timeout=RPC_TIMEOUT),
            "post_ids[1]",
        ),
        (
            lambda: posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(post_ids=["1"] * 201), timeout=RPC_TIMEOUT),
            "post_ids",
        ),
        (lambda: posts.GetAuthorStats(posts_pb2.GetAuthorStatsRequest(user_id="x"), timeout=RPC_TIMEOUT), "user_id"),
    ]
    for call, field in cases:
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
        assert err.details().startswith(f"{field}:"), (field, err.details())
    assert own_post_ids(posts, author) == []
    assert post_count(posts, author) == 0


def test_missing_or_bad_token_is_unauthenticated(identity, posts):
    author = sign_up(identity)
    created = create(posts, author, "exists")
    no_token = [
        lambda md: posts.CreatePost(posts_pb2.CreatePostRequest(text="x"), metadata=md, timeout=RPC_TIMEOUT),
        lambda md: posts.DeletePost(posts_pb2.DeletePostRequest(post_id=created.id), metadata=md, timeout=RPC_TIMEOUT),
        lambda md: list_page(posts, "me", metadata=md),
    ]
    for call in no_token:
        for metadata in ((), (("authorization", "Bearer not.a.jwt"),), (("authorization", "Basic abc"),)):
            assert rpc_error(call, metadata).code() == grpc.StatusCode.UNAUTHENTICATED
    assert own_post_ids(posts, author) == [created.id]


# -- replies and reposts --------------------------------------------------------------------


def test_reply_and_repost_targets_must_be_live(identity, posts):
    author, replier = sign_up(identity), sign_up(identity)
    parent = create(posts, author, "parent")
    reply = create(posts, replier, "a reply", reply_to_id=parent.id)
    repost = create(posts, replier, "a repost", repost_of_id=parent.id)
    assert reply.reply_to_id == parent.id and get(posts, reply.id).reply_to_id == parent.id
    assert repost.repost_of_id == parent.id and repost.reply_to_id == ""

    err = rpc_error(create, posts, replier, "to nowhere", reply_to_id="424242")
    assert err.code() == grpc.StatusCode.NOT_FOUND and err.details() == "post 424242 does not exist"

    delete(posts, author, parent.id)
    err = rpc_error(create, posts, replier, "too late", reply_to_id=parent.id)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == f"reply_to_id: post {parent.id} was deleted"
    err = rpc_error(create, posts, replier, "too late", repost_of_id=parent.id)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and err.details().startswith("repost_of_id:")
    assert own_post_ids(posts, replier) == [repost.id, reply.id]


# -- listing and batch reads ----------------------------------------------------------------


def test_list_user_posts_walks_45_posts_once_newest_first(identity, posts):
    author = sign_up(identity)
    created = [create(posts, author, f"post number {i}").id for i in range(45)]
    seen, token, pages = [], "", 0
    while True:
        page = list_page(posts, author.id, page_size=10, page_token=token)
        pages += 1
        assert all(p.author.username == author.username for p in page.posts)
        seen.extend(p.id for p in page.posts)
        token = page.next_page_token
        if not token:
            break
        assert len(page.posts) == 10
        assert pages < 10, "paging does not terminate"
    assert pages == 5
    assert seen == list(reversed(created))
    # "me" is the caller; without page_size the default page is 20.
    mine = list_page(posts, "me", metadata=author.auth)
    assert [p.id for p in mine.posts] == list(reversed(created))[:20] and mine.next_page_token


def test_list_posts_of_unknown_user_is_not_found(identity, posts):
    err = rpc_error(list_page, posts, "987654321")
    assert err.code() == grpc.StatusCode.NOT_FOUND and "987654321" in err.details()


def test_batch_get_posts_keeps_request_order_and_drops_deleted(identity, posts):
    ann, ben = sign_up(identity), sign_up(identity)
    a1, b1, a2, b2, a3 = (create(posts, who, f"p{i}") for i, who in enumerate([ann, ben, ann, ben, ann]))
    # Warm the (short-lived) post cache, then delete: the delete must still show.
    asked = [b2.id, a1.id, "777", a3.id, b1.id, a2.id, a1.id]
    warm = posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(post_ids=asked), timeout=RPC_TIMEOUT)
    assert [p.id for p in warm.posts] == [b2.id, a1.id, a3.id, b1.id, a2.id]
    delete(posts, ann, a3.id)

    resp = posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(post_ids=asked, viewer_id=ben.id), timeout=RPC_TIMEOUT)
    assert [p.id for p in resp.posts] == [b2.id, a1.id, b1.id, a2.id]
    authors = {p.id: p.author.username for p in resp.posts}
    assert authors == {b2.id: ben.username, a1.id: ann.username, b1.id: ben.username, a2.id: ann.username}
    assert posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(), timeout=RPC_TIMEOUT).posts == []


# -- events on Kafka ---------------------------------------------------------------------------


@pytest.fixture
def topic_reader():
    reader = TopicReader(POSTS_TOPIC, events_pb2.PostEvent)
    yield reader
    reader.close()


def test_created_then_deleted_events_reach_kafka(identity, posts, topic_reader):
    author = sign_up(identity)
    product_id = _product_id(identity)
    post = create(posts, author, "event me #kafka @someone", product_ids=[product_id])
    post_id = int(post.id)
    created = topic_reader.wait_for(lambda e: e.WhichOneof("kind") == "created" and e.created.post_id == post_id)
    assert created, "no PostCreated event for the post within 20 s"
    record = created[0]
    event = topic_reader.event(record)
    assert record.key == author.id.encode("ascii")
    assert event.event_id > 0 and event.created.author_id == int(author.id)
    assert event.created.text == "event me #kafka @someone"
    assert list(event.created.hashtags) == ["kafka"] and list(event.created.mentions) == ["someone"]
    assert list(event.created.product_ids) == [int(product_id)]
    assert event.created.created_at.ToMilliseconds() == post.created_at.ToMilliseconds()

    delete(posts, author, post.id)
    deleted = topic_reader.wait_for(lambda e: e.WhichOneof("kind") == "deleted" and e.deleted.post_id == post_id)
    assert deleted, "no PostDeleted event for the post within 20 s"
    assert topic_reader.event(deleted[0]).deleted.author_id == int(author.id)
    # Same key, same partition: the delete comes after the create.
    assert deleted[0].partition == record.partition and deleted[0].offset > record.offset
    assert topic_reader.event(deleted[0]).event_id > event.event_id


# -- Kafka is not on the write path ---------------------------------------------------------------


@pytest.fixture
def posts_without_kafka(tmp_path):
    """A second posts process whose Kafka address leads nowhere."""
    dead_kafka = f"127.0.0.1:{free_port()}"
    with second_process("posts", tmp_path, "AVIARY_POSTS_PORT", AVIARY_KAFKA_BOOTSTRAP=dead_kafka) as process:
        yield posts_pb2_grpc.PostsServiceStub(process.channel)


def test_create_post_succeeds_while_kafka_is_unreachable(identity, posts, posts_without_kafka, topic_reader):
    author = sign_up(identity)
    started = time.monotonic()
    created = create(posts_without_kafka, author, "written while Kafka is away")
    # Reaching for Kafka would block for the producer's 10 s max_block first.
    assert time.monotonic() - started < 5.0
    # Durable: the regular posts process reads it back from Cassandra ...
    assert get(posts, created.id).text == "written while Kafka is away"
    # ... and the event waits in the shared outbox until a relay that can reach
    # Kafka (the regular process) publishes it.
    post_id = int(created.id)
    published = topic_reader.wait_for(lambda e: e.WhichOneof("kind") == "created" and e.created.post_id == post_id)
    assert published, "the outbox event was never published"
