"""reposted_by_me against the real stack: engagement follows each user's live
reposts from the posts events (a repost, its deletion through DeletePost or
UnrepostPost, the account's deletion) and answers them beside liked_by_me;
posts' UnrepostPost takes back the caller's repost of a post."""

from __future__ import annotations

import secrets

import grpc
import pytest

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.engagement.by_me import reposted_key
from services.kit.peers.engagement_reads import FLOOR
from services.kit.settings import service_addr
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.integration.account_events import account_deleted, mark_back, mark_gone, publish, wait_until
from tests.integration.support import wait_serving

RPC_TIMEOUT = 15.0


class Account:
    def __init__(self, user: identity_pb2.User, token: str) -> None:
        self.id = user.id
        self.auth = (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def stubs():
    channels = {name: wait_serving(service_addr(name)) for name in ("identity", "posts", "engagement")}
    yield (
        identity_pb2_grpc.IdentityServiceStub(channels["identity"]),
        posts_pb2_grpc.PostsServiceStub(channels["posts"]),
        engagement_pb2_grpc.EngagementServiceStub(channels["engagement"]),
    )
    for channel in channels.values():
        channel.close()


@pytest.fixture(scope="module")
def rdb():
    client = redis_clients.from_url(REDIS_URL)
    yield client
    client.close()


def sign_up(identity) -> Account:
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"r_{secrets.token_hex(4)}", password=secrets.token_urlsafe(12)),
        timeout=RPC_TIMEOUT,
    )
    return Account(resp.user, resp.access_token)


def create(posts, author: Account, text: str, **fields) -> posts_pb2.Post:
    return posts.CreatePost(posts_pb2.CreatePostRequest(text=text, **fields), metadata=author.auth, timeout=RPC_TIMEOUT)


def repost(posts, who: Account, post_id: str) -> posts_pb2.Post:
    return posts.RepostPost(posts_pb2.RepostPostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT)


def unrepost(posts, who: Account, post_id: str) -> None:
    posts.UnrepostPost(posts_pb2.UnrepostPostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT)


def engagement_of(
    engagement, post_ids: list[str], viewer: Account | None = None
) -> list[engagement_pb2.PostEngagement]:
    reply = engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids, viewer_id=viewer.id if viewer else ""),
        timeout=RPC_TIMEOUT,
    )
    return list(reply.engagements)


def reposted(engagement, viewer: Account, post_ids: list[str]) -> list[bool]:
    return [e.reposted_by_me for e in engagement_of(engagement, post_ids, viewer)]


def repost_count(engagement, post_id: str) -> int:
    return engagement_of(engagement, [post_id])[0].repost_count


def test_a_repost_shows_as_reposted_by_its_author_only_until_it_is_taken_back(stubs):
    identity, posts, engagement = stubs
    author, fan, other = sign_up(identity), sign_up(identity), sign_up(identity)
    original, untouched = create(posts, author, "repost me"), create(posts, author, "not me")
    # Read before the repost: the fan's reposted hash is loaded empty first.
    assert reposted(engagement, fan, [original.id, untouched.id]) == [False, False]

    shared = repost(posts, fan, original.id)
    wait_until(lambda: reposted(engagement, fan, [original.id, untouched.id]) == [True, False])
    assert reposted(engagement, other, [original.id]) == [False]
    assert reposted(engagement, author, [original.id]) == [False]
    assert [e.reposted_by_me for e in engagement_of(engagement, [original.id])] == [False]  # no viewer
    assert repost_count(engagement, original.id) == 1
    # Likes and reposts are apart: a like shows no repost and the repost no like.
    engagement.LikePost(engagement_pb2.LikePostRequest(post_id=untouched.id), metadata=fan.auth, timeout=RPC_TIMEOUT)
    (one, two) = engagement_of(engagement, [original.id, untouched.id], fan)
    assert (one.liked_by_me, one.reposted_by_me, two.liked_by_me, two.reposted_by_me) == (False, True, True, False)
    # Posts carry it through the kit's overlay.
    shown = posts.GetPost(posts_pb2.GetPostRequest(post_id=original.id), metadata=fan.auth, timeout=RPC_TIMEOUT)
    assert shown.reposted_by_me and shown.repost_count == 1

    unrepost(posts, fan, original.id)
    wait_until(
        lambda: reposted(engagement, fan, [original.id]) == [False] and repost_count(engagement, original.id) == 0
    )
    with pytest.raises(grpc.RpcError) as err:
        posts.GetPost(posts_pb2.GetPostRequest(post_id=shared.id), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # Reposted again: a new repost, shown again.
    again = repost(posts, fan, original.id)
    assert again.id != shared.id
    wait_until(
        lambda: reposted(engagement, fan, [original.id]) == [True] and repost_count(engagement, original.id) == 1
    )


def test_a_repost_deleted_with_delete_post_is_no_longer_reposted_but_a_deleted_quote_leaves_it(stubs):
    identity, posts, engagement = stubs
    author, fan = sign_up(identity), sign_up(identity)
    original = create(posts, author, "delete the repost")
    shared = repost(posts, fan, original.id)
    quote = create(posts, fan, "and a word on it", repost_of_id=original.id)
    wait_until(lambda: reposted(engagement, fan, [original.id]) == [True])

    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=quote.id), metadata=fan.auth, timeout=RPC_TIMEOUT)
    wait_until(lambda: engagement_of(engagement, [original.id])[0].quote_count == 0)
    assert reposted(engagement, fan, [original.id]) == [True]

    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=shared.id), metadata=fan.auth, timeout=RPC_TIMEOUT)
    wait_until(
        lambda: reposted(engagement, fan, [original.id]) == [False] and repost_count(engagement, original.id) == 0
    )


def test_reposted_by_me_is_reloaded_from_cassandra_after_redis_loses_it(stubs, rdb):
    identity, posts, engagement = stubs
    author, fan = sign_up(identity), sign_up(identity)
    kept, dropped, never = (create(posts, author, f"post {i}") for i in range(3))
    repost(posts, fan, kept.id)
    repost(posts, fan, dropped.id)
    ids = [kept.id, dropped.id, never.id]
    # Seen reposted first, so the False below is the unrepost applied, not a
    # moment before the repost was.
    wait_until(lambda: reposted(engagement, fan, ids) == [True, True, False])
    unrepost(posts, fan, dropped.id)
    wait_until(lambda: reposted(engagement, fan, ids) == [True, False, False])
    assert rdb.hget(reposted_key(int(fan.id)), FLOOR) == b"0"  # loaded: every repost of the fan is in it
    rdb.delete(reposted_key(int(fan.id)))
    assert reposted(engagement, fan, ids) == [True, False, False]
    assert rdb.hget(reposted_key(int(fan.id)), kept.id) == b"1"


def test_a_deleted_accounts_reposts_are_taken_back_once(stubs):
    identity, posts, engagement = stubs
    author, leaver, stayer = sign_up(identity), sign_up(identity), sign_up(identity)
    first, second = create(posts, author, "one"), create(posts, author, "two")
    for post in (first, second):
        repost(posts, leaver, post.id)
    repost(posts, stayer, first.id)
    ids = [first.id, second.id]
    wait_until(lambda: [e.repost_count for e in engagement_of(engagement, ids)] == [2, 1])
    # The count moves before the reposter's index does (one event, two writes).
    wait_until(lambda: reposted(engagement, leaver, ids) == [True, True])

    event = account_deleted(leaver.id)
    publish(event)
    wait_until(lambda: [e.repost_count for e in engagement_of(engagement, ids)] == [1, 0])
    wait_until(lambda: reposted(engagement, leaver, ids) == [False, False])
    assert reposted(engagement, stayer, ids) == [True, False]

    # Redelivered, then a sentinel deletion behind it on the same partition:
    # nothing is taken back twice (posts' PostDeleted for the same reposts too).
    publish(event)
    sentinel_fan = sign_up(identity)
    sentinel = create(posts, author, "sentinel")
    repost(posts, sentinel_fan, sentinel.id)
    wait_until(lambda: repost_count(engagement, sentinel.id) == 1)
    publish(account_deleted(sentinel_fan.id), key=leaver.id)
    wait_until(lambda: repost_count(engagement, sentinel.id) == 0)
    assert [e.repost_count for e in engagement_of(engagement, ids)] == [1, 0]
    assert reposted(engagement, stayer, ids) == [True, False]


# -- posts: UnrepostPost ----------------------------------------------------------------


def author_post_ids(posts, who: Account) -> list[str]:
    reply = posts.ListUserPosts(
        posts_pb2.ListUserPostsRequest(user_id=who.id, page_size=50), metadata=who.auth, timeout=RPC_TIMEOUT
    )
    return [p.id for p in reply.posts]


def test_unrepost_deletes_the_callers_repost_named_by_the_original_or_any_repost_of_it(stubs):
    identity, posts, engagement = stubs
    author, fan, other = sign_up(identity), sign_up(identity), sign_up(identity)
    original = create(posts, author, "named many ways")
    mine = repost(posts, fan, original.id)
    theirs = repost(posts, other, original.id)
    assert mine.id in author_post_ids(posts, fan)

    # Named through someone else's repost: the caller's own repost goes, theirs stays.
    unrepost(posts, fan, theirs.id)
    assert mine.id not in author_post_ids(posts, fan)
    assert theirs.id in author_post_ids(posts, other)
    wait_until(lambda: repost_count(engagement, original.id) == 1)

    # Named through the caller's own repost.
    again = repost(posts, fan, original.id)
    unrepost(posts, fan, again.id)
    assert again.id not in author_post_ids(posts, fan)
    wait_until(lambda: repost_count(engagement, original.id) == 1)


def test_unrepost_is_idempotent_and_leaves_quotes_and_others_posts_alone(stubs):
    identity, posts, engagement = stubs
    author, fan = sign_up(identity), sign_up(identity)
    original = create(posts, author, "never reposted")
    quote = create(posts, fan, "only a quote", repost_of_id=original.id)
    unrepost(posts, fan, original.id)  # nothing to take back
    unrepost(posts, fan, quote.id)
    unrepost(posts, author, original.id)  # the author's own post is not their repost
    assert quote.id in author_post_ids(posts, fan)
    assert original.id in author_post_ids(posts, author)
    unrepost(posts, fan, str(10**15 + secrets.randbits(40)))  # no such post

    repost(posts, fan, original.id)
    unrepost(posts, fan, original.id)
    unrepost(posts, fan, original.id)
    wait_until(lambda: repost_count(engagement, original.id) == 0)
    assert quote.id in author_post_ids(posts, fan)


def test_unrepost_checks_its_input_and_its_caller(stubs):
    identity, posts, _ = stubs
    fan = sign_up(identity)
    for bad in ("", "x", "-1"):
        with pytest.raises(grpc.RpcError) as err:
            unrepost(posts, fan, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "post_id" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        posts.UnrepostPost(posts_pb2.UnrepostPostRequest(post_id="1"), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    mark_gone(fan.id)
    try:
        # The kit's copy of the set is refreshed every 2 s.
        def refused():
            try:
                unrepost(posts, fan, "1")
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        wait_until(refused, timeout=10)
    finally:
        mark_back(fan.id)
