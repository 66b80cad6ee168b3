"""engagement against the real stack: quote counts from post events, and a
deleted account's likes taken back when its AccountDeleted is read (the event
is published here as identity publishes it, so the consumer is tested on its
own, with redelivery)."""

from __future__ import annotations

import secrets

import grpc
import pytest

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.settings import service_addr
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


def sign_up(identity) -> Account:
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"q_{secrets.token_hex(4)}", password=secrets.token_urlsafe(12)),
        timeout=RPC_TIMEOUT,
    )
    return Account(resp.user, resp.access_token)


def create(posts, author: Account, text: str, **fields) -> posts_pb2.Post:
    return posts.CreatePost(posts_pb2.CreatePostRequest(text=text, **fields), metadata=author.auth, timeout=RPC_TIMEOUT)


def like(engagement, who: Account, post_id: str) -> engagement_pb2.PostEngagement:
    return engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=who.auth, timeout=RPC_TIMEOUT)


def engagement_of(engagement, post_ids: list[str], viewer: str = "") -> list[engagement_pb2.PostEngagement]:
    reply = engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids, viewer_id=viewer), timeout=RPC_TIMEOUT
    )
    return list(reply.engagements)


def test_quotes_are_counted_apart_from_reposts_and_uncounted_when_deleted(stubs):
    identity, posts, engagement = stubs
    author, quoter, reposter = sign_up(identity), sign_up(identity), sign_up(identity)
    original = create(posts, author, "quote me")
    quote = create(posts, quoter, "so true", repost_of_id=original.id)
    second = create(posts, reposter, "me too", repost_of_id=original.id)
    posts.RepostPost(posts_pb2.RepostPostRequest(post_id=original.id), metadata=reposter.auth, timeout=RPC_TIMEOUT)

    def counted():
        (e,) = engagement_of(engagement, [original.id])
        return (e.quote_count, e.repost_count) == (2, 1) and e

    wait_until(counted)
    # The same user's quote and repost are separate: deleting the quote leaves the repost.
    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=second.id), metadata=reposter.auth, timeout=RPC_TIMEOUT)
    wait_until(lambda: [(e.quote_count, e.repost_count) for e in engagement_of(engagement, [original.id])] == [(1, 1)])
    posts.DeletePost(posts_pb2.DeletePostRequest(post_id=quote.id), metadata=quoter.auth, timeout=RPC_TIMEOUT)
    wait_until(lambda: [(e.quote_count, e.repost_count) for e in engagement_of(engagement, [original.id])] == [(0, 1)])
    # A read through posts carries the count too (the kit's overlay).
    shown = posts.BatchGetPosts(posts_pb2.BatchGetPostsRequest(post_ids=[original.id]), timeout=RPC_TIMEOUT)
    assert shown.posts[0].quote_count == 0 and shown.posts[0].repost_count == 1


def test_posts_show_the_quote_count_of_the_original(stubs):
    identity, posts, engagement = stubs
    author, quoter = sign_up(identity), sign_up(identity)
    original = create(posts, author, "the original")
    quote = create(posts, quoter, "a comment on it", repost_of_id=original.id)

    def shown():
        reply = posts.BatchGetPosts(
            posts_pb2.BatchGetPostsRequest(post_ids=[original.id, quote.id]), timeout=RPC_TIMEOUT
        )
        by_id = {p.id: p for p in reply.posts}
        return by_id[original.id].quote_count == 1 and by_id[quote.id].repost_of.quote_count == 1

    wait_until(shown)


def test_a_deleted_accounts_likes_vanish_from_the_counts_once(stubs):
    identity, posts, engagement = stubs
    author, leaver, stayer = sign_up(identity), sign_up(identity), sign_up(identity)
    first, second = create(posts, author, "one"), create(posts, author, "two")
    for post in (first, second):
        like(engagement, leaver, post.id)
    like(engagement, stayer, first.id)
    assert [e.like_count for e in engagement_of(engagement, [first.id, second.id])] == [2, 1]

    event = account_deleted(leaver.id)
    publish(event)
    wait_until(lambda: [e.like_count for e in engagement_of(engagement, [first.id, second.id])] == [1, 0])
    # The counts move before the leaver's cached likes are forgotten.
    wait_until(
        lambda: (
            [e.liked_by_me for e in engagement_of(engagement, [first.id, second.id], viewer=leaver.id)] == [False] * 2
        )
    )
    assert engagement_of(engagement, [first.id], viewer=stayer.id)[0].liked_by_me

    # Redelivered, and followed by another deletion as a sentinel (same key,
    # same partition, applied in order): nothing is taken back twice.
    publish(event)
    sentinel_liker = sign_up(identity)
    sentinel = create(posts, author, "sentinel")
    like(engagement, sentinel_liker, sentinel.id)
    publish(account_deleted(sentinel_liker.id), key=leaver.id)
    wait_until(lambda: engagement_of(engagement, [sentinel.id])[0].like_count == 0)
    assert [e.like_count for e in engagement_of(engagement, [first.id, second.id])] == [1, 0]


def test_a_gone_account_cannot_like(stubs):
    identity, posts, engagement = stubs
    author, suspended = sign_up(identity), sign_up(identity)
    post = create(posts, author, "no likes from the gone")
    mark_gone(suspended.id)
    try:
        # The kit's copy of the set is refreshed every 2 s.
        def refused():
            try:
                like(engagement, suspended, post.id)
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.PERMISSION_DENIED
            engagement.UnlikePost(
                engagement_pb2.UnlikePostRequest(post_id=post.id), metadata=suspended.auth, timeout=RPC_TIMEOUT
            )
            return False

        wait_until(refused, timeout=10)
    finally:
        mark_back(suspended.id)
