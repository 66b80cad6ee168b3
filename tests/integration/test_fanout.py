"""Posting -> Kafka -> fanout -> timeline, end to end over gRPC.

Needs real Kafka, Redis, Cassandra, PostgreSQL and the running identity,
graph (with AVIARY_FANOUT_THRESHOLD, 3 in the devstack), posts, timeline and
fanout processes. Every test signs up fresh users.
"""

from __future__ import annotations

import os
import secrets
import time

import grpc
import pytest

from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.settings import service_addr
from services.timeline.entries import author_key, celebrity_cache_key, decode_member, encode_member, home_key
from tests import redis_clients
from tests.integration.support import User, wait_serving

REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
FANOUT_THRESHOLD = int(os.environ.get("AVIARY_FANOUT_THRESHOLD", "3"))
ARRIVAL_DEADLINE = 5.0


class Stack:
    """Stubs for the running services, plus the few steps the tests repeat."""

    def __init__(self) -> None:
        self._channels = {}
        self.identity = identity_pb2_grpc.IdentityServiceStub(self._channel("identity"))
        self.graph = graph_pb2_grpc.GraphServiceStub(self._channel("graph"))
        self.posts = posts_pb2_grpc.PostsServiceStub(self._channel("posts"))
        self.timeline = timeline_pb2_grpc.TimelineServiceStub(self._channel("timeline"))
        self.redis = redis_clients.from_url(REDIS_URL)

    def _channel(self, name: str) -> grpc.Channel:
        channel = wait_serving(service_addr(name))
        self._channels[name] = channel
        return channel

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self.redis.close()

    def sign_up(self, prefix: str = "t") -> User:
        username = f"{prefix}_{secrets.token_hex(4)}"
        reply = self.identity.CreateAccount(
            identity_pb2.CreateAccountRequest(username=username, password=secrets.token_urlsafe(12)), timeout=10
        )
        user = User(int(reply.user.id), username, reply.access_token)
        # A first read makes the user active: fanout delivers only to active
        # users (test_timeline_activity covers the inactive ones).
        self.page(user)
        return user

    def follow(self, follower: User, followee: User) -> None:
        self.graph.FollowUser(graph_pb2.FollowUserRequest(user_id=str(followee.id)), metadata=follower.auth, timeout=10)

    def unfollow(self, follower: User, followee: User) -> None:
        self.graph.UnfollowUser(
            graph_pb2.UnfollowUserRequest(user_id=str(followee.id)), metadata=follower.auth, timeout=10
        )

    def post(self, author: User, text: str) -> int:
        return int(self.posts.CreatePost(posts_pb2.CreatePostRequest(text=text), metadata=author.auth, timeout=10).id)

    def delete(self, author: User, post_id: int) -> None:
        self.posts.DeletePost(posts_pb2.DeletePostRequest(post_id=str(post_id)), metadata=author.auth, timeout=10)

    def page(self, reader: User, page_size: int = 100, token: str = "") -> timeline_pb2.GetHomeTimelineResponse:
        return self.timeline.GetHomeTimeline(
            timeline_pb2.GetHomeTimelineRequest(page_size=page_size, page_token=token), metadata=reader.auth, timeout=10
        )

    def home_ids(self, reader: User) -> list[int]:
        return [int(p.id) for p in self.page(reader).posts]

    def materialized(self, user: User) -> set[int]:
        """Post ids in the user's Redis home timeline."""
        return {decode_member(m).post_id for m in self.redis.zrange(home_key(user.id), 0, -1)}

    def indexed(self, author: User) -> set[int]:
        return {decode_member(m).post_id for m in self.redis.zrange(author_key(author.id), 0, -1)}

    def fanout_passed(self, reader: User) -> None:
        """Returns once fanout has finished every event published before this call.

        The worker applies records one at a time, so a fresh marker post by a
        followee of `reader` reaching `reader`'s timeline means everything
        consumed before it has been applied too.
        """
        marker_author = self.sign_up("m")
        self.follow(reader, marker_author)
        marker = self.post(marker_author, "marker")
        assert wait_until(lambda: marker in self.materialized(reader)), "fanout did not deliver the marker post"


def wait_until(condition, timeout: float = ARRIVAL_DEADLINE, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def test_followed_post_arrives_and_its_delete_removes_it(stack):
    author, reader = stack.sign_up("a"), stack.sign_up("r")
    stack.follow(reader, author)
    post_id = stack.post(author, "hello followers")

    assert wait_until(lambda: post_id in stack.home_ids(reader)), "post did not reach the follower within 5 s"
    assert post_id in stack.materialized(reader)  # fanned out on write
    assert post_id in stack.indexed(author)
    assert post_id in stack.home_ids(author)  # own posts show on one's own timeline
    got = next(p for p in stack.page(reader).posts if int(p.id) == post_id)
    assert got.text == "hello followers" and int(got.author_id) == author.id

    stack.delete(author, post_id)
    assert wait_until(lambda: post_id not in stack.home_ids(reader)), "deleted post still on the timeline"
    assert wait_until(lambda: post_id not in stack.materialized(reader))
    assert wait_until(lambda: post_id not in stack.indexed(author))


def test_celebrity_post_is_merged_at_read_time_not_materialized(stack):
    celebrity = stack.sign_up("c")
    fans = [stack.sign_up("f") for _ in range(FANOUT_THRESHOLD + 1)]
    for fan in fans:
        stack.follow(fan, celebrity)
    stats = stack.graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(celebrity.id)))
    assert stats.follower_count == FANOUT_THRESHOLD + 1 and stats.celebrity

    reader = fans[0]
    post_id = stack.post(celebrity, "big announcement")
    assert wait_until(lambda: post_id in stack.home_ids(reader)), "celebrity post not merged into the timeline"
    assert wait_until(lambda: post_id in stack.indexed(celebrity))

    stack.fanout_passed(reader)
    for fan in fans:
        assert post_id not in stack.materialized(fan), "a celebrity post was fanned out on write"
    assert post_id in stack.home_ids(fans[-1])


def test_unfollow_purges_and_stops_new_posts(stack):
    author, reader = stack.sign_up("a"), stack.sign_up("r")
    stack.follow(reader, author)
    before = stack.post(author, "before unfollow")
    assert wait_until(lambda: before in stack.home_ids(reader))

    stack.unfollow(reader, author)
    assert wait_until(lambda: before not in stack.materialized(reader)), "unfollow did not purge the author"
    after = stack.post(author, "after unfollow")
    assert wait_until(lambda: after in stack.indexed(author))  # fanout is handling it now
    stack.fanout_passed(reader)
    assert after not in stack.materialized(reader)
    ids = stack.home_ids(reader)
    assert after not in ids and before not in ids


def test_a_new_follower_gets_the_next_post_though_fanout_kept_the_authors_followers(stack):
    """Fanout reuses graph's answer for an author's last post while the
    author's followers version holds (kit/peers/followers.py): a follow moves
    it, so the post after the follow reaches the new follower by fanout, not
    only by the follow's backfill (which ran before the post here)."""
    author, first, second = stack.sign_up("a"), stack.sign_up("r"), stack.sign_up("r")
    stack.follow(first, author)
    kept = [stack.post(author, f"to the first follower {i}") for i in range(2)]
    assert wait_until(lambda: set(kept) <= stack.materialized(first))

    stack.follow(second, author)
    assert wait_until(lambda: set(kept) <= stack.materialized(second)), "follow did not backfill"
    after = stack.post(author, "to both followers")
    assert wait_until(lambda: after in stack.materialized(first))
    assert wait_until(lambda: after in stack.materialized(second)), "the post went to the followers kept before"

    stack.unfollow(first, author)
    assert wait_until(lambda: after not in stack.materialized(first)), "unfollow did not purge the author"
    last = stack.post(author, "to the second follower")
    assert wait_until(lambda: last in stack.materialized(second))
    stack.fanout_passed(first)
    assert last not in stack.materialized(first)


def test_follow_backfills_recent_posts(stack):
    author, reader = stack.sign_up("a"), stack.sign_up("r")
    earlier = [stack.post(author, f"earlier {i}") for i in range(3)]
    assert wait_until(lambda: set(earlier) <= stack.indexed(author))
    assert not set(earlier) & set(stack.home_ids(reader))

    stack.follow(reader, author)
    assert wait_until(lambda: set(earlier) <= stack.materialized(reader)), "follow did not backfill"
    ids = stack.home_ids(reader)
    assert [i for i in ids if i in earlier] == sorted(earlier, reverse=True)


def test_pagination_walks_every_source_once_newest_first(stack):
    reader = stack.sign_up("r")
    friend = stack.sign_up("n")
    celebrity = stack.sign_up("c")
    stack.follow(reader, friend)
    for fan in [reader] + [stack.sign_up("f") for _ in range(FANOUT_THRESHOLD)]:
        stack.follow(fan, celebrity)

    expected = set()
    for i in range(60):  # interleaved so every page mixes the three sources
        expected.add(stack.post(friend, f"friend {i}"))
        if i % 3 != 2:
            expected.add(stack.post(celebrity, f"celebrity {i}"))
    expected |= {stack.post(reader, f"own {i}") for i in range(20)}
    assert len(expected) == 120
    assert wait_until(lambda: len(stack.materialized(reader) & expected) == 60, timeout=15)
    assert wait_until(lambda: len(stack.indexed(celebrity) & expected) == 40, timeout=15)
    assert wait_until(lambda: len(stack.indexed(reader) & expected) == 20, timeout=15)
    assert not stack.materialized(reader) & stack.indexed(celebrity)  # celebrity part is read-time only

    # A timeline entry whose post no longer exists is skipped without
    # shortening the page, and dropped from Redis.
    # Same millisecond as a real post, but worker 1023 / sequence 4095: no
    # generator issues that id short of 4096 posts in one millisecond.
    ghost = (sorted(expected)[50] >> 22 << 22) | (1023 << 12) | 4095
    stack.redis.zadd(home_key(reader.id), {encode_member(ghost, friend.id): 0})

    seen, sizes, token = [], [], ""
    while True:
        reply = stack.page(reader, page_size=25, token=token)
        sizes.append(len(reply.posts))
        seen.extend(int(p.id) for p in reply.posts)
        if len(seen) == 25:
            # New posts during the walk belong above the cursor: never in later pages.
            expected_newer = stack.post(friend, "posted mid-walk")
            assert wait_until(lambda: expected_newer in stack.materialized(reader))
        token = reply.next_page_token
        if not token:
            break
        assert len(sizes) < 10, "pagination does not end"

    assert sizes == [25, 25, 25, 25, 20]
    assert seen == sorted(expected, reverse=True)
    assert ghost not in seen
    assert wait_until(lambda: ghost not in stack.materialized(reader)), "the dead entry was not dropped"


def test_bad_page_token_is_invalid_argument(stack):
    reader = stack.sign_up("r")
    with pytest.raises(grpc.RpcError) as err:
        stack.page(reader, token="not-a-token")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("page_token")
    with pytest.raises(grpc.RpcError) as err:
        stack.page(reader, page_size=-1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("page_size")


def test_empty_timeline_is_one_empty_page(stack):
    reply = stack.page(stack.sign_up("r"))
    assert list(reply.posts) == [] and reply.next_page_token == ""


def test_following_and_unfollowing_a_celebrity_shows_at_once_despite_the_cache(stack):
    celebrity = stack.sign_up("c")
    for fan in [stack.sign_up("f") for _ in range(FANOUT_THRESHOLD + 1)]:
        stack.follow(fan, celebrity)
    old = stack.post(celebrity, "before the follow")
    reader = stack.sign_up("r")
    assert old not in stack.home_ids(reader)  # caches "follows no celebrity"
    cached = stack.redis.get(celebrity_cache_key(reader.id))
    assert cached is not None and cached.endswith(b"|")  # an empty list, under the Redis epoch

    stack.follow(reader, celebrity)
    new = stack.post(celebrity, "after the follow")
    # Well inside the cache TTL (minutes): the follow itself must clear the cache.
    assert wait_until(lambda: {old, new} <= set(stack.home_ids(reader)), timeout=3.0)
    assert new not in stack.materialized(reader)  # merged at read time

    stack.unfollow(reader, celebrity)
    assert wait_until(lambda: not {old, new} & set(stack.home_ids(reader)), timeout=3.0)


def test_crossing_the_threshold_either_way_keeps_timelines_whole(stack):
    """Up: new posts are merged at read time (old ones stay materialized,
    shown once). Down: the posts that were only merged are copied into the
    followers' timelines, so nothing goes missing, and nobody was rebuilt."""
    author = stack.sign_up("x")
    readers = [stack.sign_up("r") for _ in range(FANOUT_THRESHOLD)]
    for reader in readers:
        stack.follow(reader, author)
    ordinary = stack.post(author, "while ordinary")
    assert wait_until(lambda: all(ordinary in stack.materialized(r) for r in readers))

    tipping = stack.sign_up("t")
    stack.follow(tipping, author)  # one above the threshold: now a celebrity
    assert stack.graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(author.id))).celebrity
    famous = stack.post(author, "while famous")
    reader = readers[0]
    # Without waiting out the celebrity cache: the crossing clears it.
    assert wait_until(lambda: stack.home_ids(reader)[:2] == [famous, ordinary], timeout=3.0)
    stack.fanout_passed(reader)
    assert famous not in stack.materialized(reader)  # merged, not fanned out

    stack.unfollow(tipping, author)  # below the threshold again
    assert not stack.graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(author.id))).celebrity
    assert wait_until(lambda: all(famous in stack.materialized(r) for r in readers)), (
        "the celebrity-period post was not copied into the followers' timelines"
    )
    again = stack.post(author, "ordinary again")
    assert wait_until(lambda: again in stack.materialized(reader))
    ids = stack.home_ids(reader)
    assert [i for i in ids if i in (again, famous, ordinary)] == [again, famous, ordinary]
    assert len(ids) == len(set(ids))
