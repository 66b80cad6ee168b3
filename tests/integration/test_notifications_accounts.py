"""notifications against the real stack when an account is deleted: the
AccountDeleted event is published here as identity publishes it (the account
is not marked gone, so nothing is merely hidden at read: what is asserted is
what is stored). Likes are produced into the real engagement topic; follows
and replies go through graph and posts."""

from __future__ import annotations

import os

import pytest

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.notifications.v1 import notifications_pb2
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.events.kafka import ENGAGEMENT_TOPIC
from services.kit.server.ids import IdGenerator
from tests.integration.account_events import account_deleted, publish
from tests.integration.notifications_support import RPC_TIMEOUT, NotificationsHarness
from tests.integration.support import User

NT = notifications_pb2
_event_ids = IdGenerator(1000 + (os.getpid() + 7) % 20)


class Stack(NotificationsHarness):
    def __init__(self) -> None:
        super().__init__()
        self.graph = graph_pb2_grpc.GraphServiceStub(self.channel("graph"))
        self.posts = posts_pb2_grpc.PostsServiceStub(self.channel("posts"))

    def follow(self, follower: User, followee: User) -> None:
        self.graph.FollowUser(
            graph_pb2.FollowUserRequest(user_id=str(followee.id)), metadata=follower.auth, timeout=RPC_TIMEOUT
        )

    def post(self, author: User, text: str, reply_to: int = 0) -> int:
        request = posts_pb2.CreatePostRequest(text=text, reply_to_id=str(reply_to) if reply_to else "")
        return int(self.posts.CreatePost(request, metadata=author.auth, timeout=RPC_TIMEOUT).id)

    def like(self, post_id: int, liker: User, author: User) -> None:
        event = events_pb2.EngagementEvent(
            event_id=_event_ids.next_id(),
            like_created=events_pb2.LikeCreated(post_id=post_id, user_id=liker.id, post_author_id=author.id),
        )
        event.occur_time.GetCurrentTime()
        self.send(ENGAGEMENT_TOPIC, str(post_id).encode(), [event.SerializeToString()])


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def test_a_deleted_account_leaves_every_group_and_its_own_inbox_goes(stack):
    author, leaver, stayer = stack.sign_up("au"), stack.sign_up("lv"), stack.sign_up("st")
    liked = stack.post(author, "liked by two")
    stack.like(liked, leaver, author)
    stack.like(liked, stayer, author)
    stack.post(leaver, "my reply", reply_to=stack.post(author, "reply to me"))
    stack.follow(leaver, author)
    # The leaver's own inbox: the author follows them back.
    stack.follow(author, leaver)
    stack.wait_inbox(
        author,
        lambda ns: (
            {n.kind for n in ns} >= {NT.NOTIFICATION_KIND_LIKE, NT.NOTIFICATION_KIND_REPLY}
            and any(n.kind == NT.NOTIFICATION_KIND_LIKE and n.actor_count == 2 for n in ns)
            and any(n.kind == NT.NOTIFICATION_KIND_FOLLOW for n in ns)
        ),
    )
    stack.wait_inbox(leaver, lambda ns: any(n.kind == NT.NOTIFICATION_KIND_FOLLOW for n in ns))

    event = account_deleted(leaver.id)
    publish(event)

    def leaver_gone(ns) -> bool:
        return all(str(leaver.id) not in n.actor_ids for n in ns)

    page = stack.wait_inbox(author, leaver_gone, timeout=20)
    (like_notice,) = [n for n in page.notifications if n.kind == NT.NOTIFICATION_KIND_LIKE]
    assert list(like_notice.actor_ids) == [str(stayer.id)] and like_notice.actor_count == 1
    # The reply and the follow were the leaver's alone: withdrawn.
    assert {n.kind for n in page.notifications} == {NT.NOTIFICATION_KIND_LIKE}
    assert page.unread_count == 1
    stack.wait_inbox(leaver, lambda ns: not ns)

    # Redelivered: nothing else changes.
    publish(event)
    sentinel = stack.sign_up("sn")
    publish(account_deleted(sentinel.id), key=leaver.id)  # same partition, applied after
    stack.follow(stayer, author)
    page = stack.wait_inbox(author, lambda ns: any(n.kind == NT.NOTIFICATION_KIND_FOLLOW for n in ns))
    assert [list(n.actor_ids) for n in page.notifications if n.kind == NT.NOTIFICATION_KIND_LIKE] == [[str(stayer.id)]]
