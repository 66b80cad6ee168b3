"""notifications against the real stack: real Kafka topics, Cassandra, Redis,
and the running identity, graph, posts and notifications processes over gRPC.

Engagement events are produced here with the kit's Producer into the real
`engagement.events.v1` topic (the topic the engagement service publishes to),
so likes are tested with exact control over event ids (redelivery) and order.
Follows, replies, mentions and deletes go through the real graph and posts
services. Every test signs up fresh users. Effects are polled with a deadline.

"Nothing happened" is checked with a sentinel: records with the same key land
on the same partition and are applied in order, so once a later sentinel's
effect is visible, the earlier record was applied too.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import grpc
import pytest

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.notifications.v1 import notifications_pb2
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.settings import load_settings
from services.kit.server.ids import IdGenerator
from services.kit.events.kafka import ENGAGEMENT_TOPIC
from tests.integration.notifications_support import RPC_TIMEOUT, NotificationsHarness
from tests.integration.support import User

NT = notifications_pb2
DEADLINE = 10.0

# A worker id no service process uses (the devstack numbers services from 1).
_event_ids = IdGenerator(1000 + os.getpid() % 20)


class Stack(NotificationsHarness):
    deadline = DEADLINE

    def __init__(self) -> None:
        super().__init__()
        self.graph = graph_pb2_grpc.GraphServiceStub(self.channel("graph"))
        self.posts = posts_pb2_grpc.PostsServiceStub(self.channel("posts"))

    # -- actions ---------------------------------------------------------------

    def follow(self, follower: User, followee: User) -> None:
        self.graph.FollowUser(
            graph_pb2.FollowUserRequest(user_id=str(followee.id)), metadata=follower.auth, timeout=RPC_TIMEOUT
        )

    def post(self, author: User, text: str, reply_to: int = 0) -> int:
        request = posts_pb2.CreatePostRequest(text=text, reply_to_id=str(reply_to) if reply_to else "")
        return int(self.posts.CreatePost(request, metadata=author.auth, timeout=RPC_TIMEOUT).id)

    def delete(self, author: User, post_id: int) -> None:
        self.posts.DeletePost(
            posts_pb2.DeletePostRequest(post_id=str(post_id)), metadata=author.auth, timeout=RPC_TIMEOUT
        )

    def like_event(
        self, post_id: int, liker: User | int, author: User | int, *, event_id: int | None = None, removed: bool = False
    ) -> bytes:
        liker_id = liker if isinstance(liker, int) else liker.id
        author_id = author if isinstance(author, int) else author.id
        event = events_pb2.EngagementEvent(event_id=event_id or _event_ids.next_id())
        event.occur_time.GetCurrentTime()
        if removed:
            event.like_removed.CopyFrom(
                events_pb2.LikeRemoved(post_id=post_id, user_id=liker_id, post_author_id=author_id)
            )
        else:
            event.like_created.CopyFrom(
                events_pb2.LikeCreated(post_id=post_id, user_id=liker_id, post_author_id=author_id)
            )
        return event.SerializeToString()

    def produce(self, post_id: int, *payloads: bytes) -> None:
        """Engagement records, keyed by post id like the engagement service keys them."""
        self.send(ENGAGEMENT_TOPIC, str(post_id).encode(), payloads)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def about(post_id: int, kind=None):
    def match(ns):
        return [n for n in ns if n.post_id == str(post_id) and (kind is None or n.kind == kind)]

    return match


def fake_post_id() -> int:
    return _event_ids.next_id()


# -- likes: grouping and deduplication ---------------------------------------------------


def test_likes_group_per_post_with_the_latest_actor_first(stack):
    author = stack.sign_up("au")
    alice, bob = stack.sign_up("al", "Alice"), stack.sign_up("bo", "Bob")
    others = [stack.sign_up("ot") for _ in range(3)]
    post_id = fake_post_id()

    stack.produce(post_id, stack.like_event(post_id, alice, author))
    page = stack.wait_inbox(author, about(post_id))
    [n] = about(post_id)(page.notifications)
    assert n.kind == NT.NOTIFICATION_KIND_LIKE and n.text == "Alice liked your post"
    assert list(n.actor_ids) == [str(alice.id)] and n.actor_count == 1 and not n.read
    assert page.unread_count == 1

    stack.produce(post_id, stack.like_event(post_id, bob, author))
    page = stack.wait_inbox(author, lambda ns: any(x.actor_count == 2 for x in about(post_id)(ns)))
    [n] = about(post_id)(page.notifications)
    assert n.text == "Bob and Alice liked your post"
    assert list(n.actor_ids) == [str(bob.id), str(alice.id)]

    stack.produce(post_id, *(stack.like_event(post_id, o, author) for o in others))
    page = stack.wait_inbox(author, lambda ns: any(x.actor_count == 5 for x in about(post_id)(ns)))
    [n] = about(post_id)(page.notifications)
    assert n.text == f"{others[-1].username} and 4 others liked your post"
    assert n.actor_ids[0] == str(others[-1].id) and len(page.notifications) == 1 and page.unread_count == 1


def test_a_redelivered_event_adds_nothing(stack):
    author, fan, sentinel = stack.sign_up("au"), stack.sign_up("fa"), stack.sign_up("se")
    post_id = fake_post_id()
    event = stack.like_event(post_id, fan, author)
    stack.produce(post_id, event)
    stack.wait_inbox(author, about(post_id))
    stack.produce(post_id, event, event)  # Kafka redelivers: same event id
    stack.produce(post_id, stack.like_event(post_id, sentinel, author))
    page = stack.wait_inbox(author, lambda ns: any(str(sentinel.id) in x.actor_ids for x in ns))
    [n] = about(post_id)(page.notifications)
    assert n.actor_count == 2 and list(n.actor_ids) == [str(sentinel.id), str(fan.id)]


def test_like_unlike_like_again_is_still_one_actor_and_one_notice(stack):
    author, fan, sentinel = stack.sign_up("au"), stack.sign_up("fa"), stack.sign_up("se")
    post_id = fake_post_id()
    stack.produce(post_id, stack.like_event(post_id, fan, author))
    stack.wait_inbox(author, about(post_id))
    stack.produce(
        post_id,
        stack.like_event(post_id, fan, author, removed=True),
        stack.like_event(post_id, fan, author),
        stack.like_event(post_id, sentinel, author),
    )
    page = stack.wait_inbox(author, lambda ns: any(str(sentinel.id) in x.actor_ids for x in ns))
    [n] = about(post_id)(page.notifications)
    # The fan's second like neither made a second notice nor counted twice.
    assert n.actor_count == 2 and sorted(n.actor_ids) == sorted([str(fan.id), str(sentinel.id)])


def test_liking_your_own_post_notifies_nobody(stack):
    author, sentinel = stack.sign_up("au"), stack.sign_up("se")
    post_id = fake_post_id()
    stack.produce(post_id, stack.like_event(post_id, author, author), stack.like_event(post_id, sentinel, author))
    page = stack.wait_inbox(author, about(post_id))
    [n] = about(post_id)(page.notifications)
    assert list(n.actor_ids) == [str(sentinel.id)] and n.actor_count == 1


def test_a_grown_group_moves_to_the_top_with_a_new_id_and_is_unread_again(stack):
    author, a, b, c = (stack.sign_up(p) for p in ("au", "aa", "bb", "cc"))
    older, newer = fake_post_id(), fake_post_id()
    stack.produce(older, stack.like_event(older, a, author))
    stack.wait_inbox(author, about(older))
    stack.produce(newer, stack.like_event(newer, b, author))
    page = stack.wait_inbox(author, lambda ns: len(ns) == 2)
    assert [n.post_id for n in page.notifications] == [str(newer), str(older)]
    old_id = page.notifications[1].id
    assert stack.mark_read(author) == 2

    stack.produce(older, stack.like_event(older, c, author))
    page = stack.wait_inbox(author, lambda ns: ns and ns[0].post_id == str(older))
    top = page.notifications[0]
    assert top.actor_count == 2 and not top.read and top.id != old_id and int(top.id) > int(old_id)
    assert [n.post_id for n in page.notifications] == [str(older), str(newer)], "the old row is gone"
    assert page.notifications[1].read and page.unread_count == 1


# -- follows, replies, mentions, deletes (through the real services) --------------------


def test_follows_group_per_recipient(stack):
    star, a, b = stack.sign_up("st"), stack.sign_up("fa", "Fan A"), stack.sign_up("fb", "Fan B")
    stack.follow(a, star)
    stack.follow(b, star)
    stack.follow(a, star)  # idempotent at graph; no second event, no second actor anyway
    page = stack.wait_inbox(star, lambda ns: ns and ns[0].actor_count == 2)
    [n] = page.notifications
    assert n.kind == NT.NOTIFICATION_KIND_FOLLOW and n.post_id == ""
    assert n.text == "Fan B and Fan A followed you"


def test_reply_and_mention_notify_and_deleting_the_posts_withdraws_them(stack):
    author = stack.sign_up("au")
    replier = stack.sign_up("re", "Replier")
    mentioner = stack.sign_up("me", "Mentioner")
    parent = stack.post(author, "what do you think?")
    reply = stack.post(replier, "I think yes", reply_to=parent)
    mention = stack.post(mentioner, f"hey @{author.username.upper()} look")

    page = stack.wait_inbox(author, lambda ns: about(reply)(ns) and about(mention)(ns))
    [r] = about(reply)(page.notifications)
    [m] = about(mention)(page.notifications)
    assert r.kind == NT.NOTIFICATION_KIND_REPLY and r.text == "Replier replied to your post"
    assert m.kind == NT.NOTIFICATION_KIND_MENTION and m.text == "Mentioner mentioned you"

    stack.delete(replier, reply)
    stack.delete(mentioner, mention)
    stack.wait_inbox(author, lambda ns: not about(reply)(ns) and not about(mention)(ns))


def test_mentioning_yourself_or_unknown_users_notifies_nobody_else(stack):
    author, friend = stack.sign_up("au"), stack.sign_up("fr")
    post_id = stack.post(author, f"@{author.username} @nosuchuser_zz @{friend.username}")
    page = stack.wait_inbox(friend, about(post_id))
    assert len(about(post_id)(page.notifications)) == 1
    assert not about(post_id)(stack.inbox(author).notifications)


def test_deleting_a_liked_post_withdraws_its_like_group_and_late_likes_stay_away(stack):
    author, fan, late, sentinel = (stack.sign_up(p) for p in ("au", "fa", "la", "se"))
    post_id = stack.post(author, "like me")
    keep = fake_post_id()
    stack.produce(post_id, stack.like_event(post_id, fan, author))
    stack.wait_inbox(author, about(post_id))

    stack.delete(author, post_id)
    stack.wait_inbox(author, lambda ns: not about(post_id)(ns))
    # A like that arrives after the delete (another topic: no ordering) or a
    # replay of an old one must not bring the notice back.
    stack.produce(post_id, stack.like_event(post_id, late, author), stack.like_event(keep, sentinel, author))
    stack.produce(keep, stack.like_event(keep, sentinel, author))
    stack.wait_inbox(author, about(keep))
    time.sleep(0.5)
    assert not about(post_id)(stack.inbox(author).notifications)


# -- reading: read marks, paging, errors -------------------------------------------------


def test_mark_read_up_to_an_id(stack):
    author, fan = stack.sign_up("au"), stack.sign_up("fa")
    posts = [fake_post_id() for _ in range(3)]
    for p in posts:
        stack.produce(p, stack.like_event(p, fan, author))
    page = stack.wait_inbox(author, lambda ns: len(ns) == 3)
    assert page.unread_count == 3 and not any(n.read for n in page.notifications)
    newest, middle, oldest = page.notifications

    assert stack.mark_read(author, middle.id) == 2
    page = stack.inbox(author)
    assert [n.read for n in page.notifications] == [False, True, True] and page.unread_count == 1
    assert stack.mark_read(author, oldest.id) == 0, "marks never go back"
    assert stack.mark_read(author) == 1
    page = stack.inbox(author)
    assert all(n.read for n in page.notifications) and page.unread_count == 0


def test_paging_walks_every_notification_once(stack):
    author, fan = stack.sign_up("au"), stack.sign_up("fa")
    posts = [fake_post_id() for _ in range(7)]
    for p in posts:
        stack.produce(p, stack.like_event(p, fan, author))
    stack.wait_inbox(author, lambda ns: len(ns) == 7)
    seen, ids, token = [], [], ""
    while True:
        page = stack.inbox(author, page_size=3, token=token)
        assert len(page.notifications) <= 3
        seen += [n.post_id for n in page.notifications]
        ids += [int(n.id) for n in page.notifications]
        token = page.next_page_token
        if not token:
            break
    # Each post's like went to its own partition: applied in any order, listed newest first.
    assert sorted(seen) == sorted(str(p) for p in posts) and len(set(seen)) == len(seen)
    assert ids == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    "request_, field",
    [
        (NT.ListNotificationsRequest(page_size=-1), "page_size"),
        (NT.ListNotificationsRequest(page_token="garbage!"), "page_token"),
    ],
)
def test_bad_list_input_is_invalid_argument_naming_the_field(stack, request_, field):
    user = stack.sign_up("bad")
    with pytest.raises(grpc.RpcError) as err:
        stack.notifications.ListNotifications(request_, metadata=user.auth, timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


def test_bad_up_to_id_is_invalid_argument(stack):
    user = stack.sign_up("bad")
    with pytest.raises(grpc.RpcError) as err:
        stack.mark_read(user, "not-an-id")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("up_to_id")


def test_every_call_needs_a_token(stack):
    for call, request in [
        (stack.notifications.ListNotifications, NT.ListNotificationsRequest()),
        (stack.notifications.MarkNotificationsRead, NT.MarkNotificationsReadRequest()),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=RPC_TIMEOUT)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        next(iter(stack.notifications.WatchNotifications(NT.WatchNotificationsRequest(), timeout=RPC_TIMEOUT)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- live ---------------------------------------------------------------------------------


def test_watch_streams_new_and_grown_notifications(stack):
    author, a, b = stack.sign_up("au"), stack.sign_up("aa", "Ann"), stack.sign_up("bb", "Ben")
    post_id = fake_post_id()
    call = stack.notifications.WatchNotifications(NT.WatchNotificationsRequest(), metadata=author.auth, timeout=30)
    call.initial_metadata()  # the server sends headers once it is subscribed
    received: list = []

    def read() -> None:
        try:
            for event in call:
                if event.HasField("notification") or event.removed_id:
                    received.append(event)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stack.produce(post_id, stack.like_event(post_id, a, author))
        deadline = time.monotonic() + DEADLINE
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received, "the new like was not pushed"
        first = received[0].notification
        assert first.text == "Ann liked your post" and first.post_id == str(post_id)

        stack.produce(post_id, stack.like_event(post_id, b, author))
        while len(received) < 2 and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        grown = received[1]
        assert grown.notification.text == "Ben and Ann liked your post"
        # Either it grew in place (same id) or it moved and names the id it replaces.
        assert grown.notification.id == first.id or grown.replaces_id == first.id
    finally:
        call.cancel()
        reader.join(timeout=5)


# -- the consumer's own guarantees, on the real Cassandra and Redis ---------------------
# Two Notifier instances stand for two replicas of the service whose consumers
# touch the same group at once (follows of one user arrive on many partitions).


async def _notifier_pair():
    from services.kit.stores import redis_client
    from services.notifications.notifier import Notifier
    from services.notifications.store import NotificationStore

    settings = load_settings()
    out = []
    for worker in (1021, 1022):
        store = NotificationStore(settings, retention_seconds=3600)
        await store.start()
        out.append(
            Notifier(
                store,
                redis_client.client(settings),
                IdGenerator(worker),
                follow_window_seconds=3600,
                rpc_timeout=5.0,
                username_cache_seconds=60,
            )
        )
    return out


async def _close(notifiers) -> None:
    for n in notifiers:
        await n.store.stop()
        await n.live.aclose()


async def test_concurrent_replicas_count_every_actor_once_in_one_notification():
    from services.notifications import rules

    a, b = await _notifier_pair()
    try:
        recipient = _event_ids.next_id()
        actors = [_event_ids.next_id() for _ in range(12)]
        plans = [rules.Plan("test.events", _event_ids.next_id()) for _ in actors]
        notices = [rules.Notice(recipient, actor, rules.FOLLOW, 0, rules.FOLLOW_SLOT) for actor in actors]
        # Every follow applied by both replicas at once, half of them twice more.
        jobs = [n.notify(notice, plan) for notice, plan in zip(notices, plans) for n in (a, b)]
        jobs += [a.notify(notice, plan) for notice, plan in list(zip(notices, plans))[::2]]
        outcomes = await asyncio.gather(*jobs)
        assert outcomes.count("duplicate") == len(jobs) - len(actors)

        rows = await a.store.page(recipient, None, 10)
        assert len(rows) == 1, f"one follow group, got {rows}"
        assert rows[0].actor_count == len(actors) and sorted(rows[0].actor_ids) == sorted(actors)
    finally:
        await _close((a, b))


async def test_a_replay_after_a_crash_between_group_and_inbox_writes_finishes_the_inbox():
    from services.notifications import rules

    a, _ = await _notifier_pair()
    try:
        recipient, actor, post_id = (_event_ids.next_id() for _ in range(3))
        notice = rules.Notice(recipient, actor, rules.LIKE, post_id, rules.like_slot(post_id))
        plan = rules.Plan("test.events", _event_ids.next_id(), about_posts=(post_id,))
        # The first attempt wrote the group and died before the inbox row.
        state = await a.store.read_slot(recipient, notice.slot, actor)
        group = rules.new_group(notice, a.ids.next_id(), int(time.time() * 1000))
        assert await a.store.add_actor(recipient, notice.slot, actor, plan.event_id, state, group)
        assert await a.store.page(recipient, None, 10) == []
        # Kafka redelivers the uncommitted record.
        assert await a.notify(notice, plan) == "duplicate"
        rows = await a.store.page(recipient, None, 10)
        assert [(r.notification_id, r.actor_ids) for r in rows] == [(group.notification_id, (actor,))]
    finally:
        await _close((a, _))
