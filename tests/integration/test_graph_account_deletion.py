"""graph removes a deleted account's follows, blocks and mutes when identity's
AccountDeleted arrives (consumer group graph-accounts), and refuses follows to
and from gone accounts: against the running graph process."""

from __future__ import annotations

import secrets

import grpc
import pytest

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.events.kafka import GRAPH_TOPIC
from services.kit.peers import safety
from services.kit.settings import load_settings
from tests import redis_clients
from tests.integration.account_events import account_deleted, mark_back, mark_gone, publish, wait_until
from tests.integration.support import TopicReader


class Account:
    def __init__(self, created):
        self.id = created.user.id
        self.auth = (("authorization", f"Bearer {created.access_token}"),)


def sign_up(identity) -> Account:
    request = identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password="correct horse battery")
    return Account(identity.CreateAccount(request, timeout=15))


def stats(graph, user: Account) -> tuple[int, int]:
    s = graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=user.id), timeout=10)
    return s.follower_count, s.following_count


def hidden(graph, viewer: Account) -> graph_pb2.GetHiddenAuthorsResponse:
    return graph.GetHiddenAuthors(graph_pb2.GetHiddenAuthorsRequest(viewer_id=viewer.id), timeout=10)


@pytest.fixture(scope="module")
def versions():
    client = redis_clients.from_url(load_settings().redis_url)
    yield lambda user: client.get(safety.version_key(int(user.id)))
    client.close()


@pytest.fixture
def graph_events():
    reader = TopicReader(GRAPH_TOPIC, events_pb2.GraphEvent)
    yield reader
    reader.close()


def test_a_deleted_account_leaves_no_follows_blocks_or_mutes(identity, graph, versions, graph_events):
    gone, fan, idol, blocked, blocker, muter, bystander, marker = (sign_up(identity) for _ in range(8))
    follow = graph_pb2.FollowUserRequest
    graph.FollowUser(follow(user_id=gone.id), metadata=fan.auth, timeout=10)
    graph.FollowUser(follow(user_id=idol.id), metadata=gone.auth, timeout=10)
    graph.FollowUser(follow(user_id=idol.id), metadata=bystander.auth, timeout=10)
    graph.FollowUser(follow(user_id=bystander.id), metadata=fan.auth, timeout=10)
    graph.BlockUser(graph_pb2.BlockUserRequest(user_id=blocked.id), metadata=gone.auth, timeout=10)
    graph.BlockUser(graph_pb2.BlockUserRequest(user_id=gone.id), metadata=blocker.auth, timeout=10)
    graph.MuteUser(graph_pb2.MuteUserRequest(user_id=gone.id), metadata=muter.auth, timeout=10)
    graph.MuteUser(graph_pb2.MuteUserRequest(user_id=bystander.id), metadata=gone.auth, timeout=10)
    assert stats(graph, fan) == (0, 2) and stats(graph, idol) == (2, 0)
    before = {u.id: versions(u) for u in (blocked, blocker, muter)}

    event = account_deleted(gone.id, "gone")
    publish(event)

    wait_until(lambda: stats(graph, idol) == (1, 0) and stats(graph, fan) == (0, 1))
    wait_until(lambda: not hidden(graph, muter).mutes)
    assert stats(graph, gone) == (0, 0)
    followers = graph.ListFollowers(graph_pb2.ListFollowersRequest(user_id=idol.id), timeout=10).users
    assert [u.id for u in followers] == [bystander.id]
    assert not hidden(graph, blocked).blocker_ids and not hidden(graph, blocker).blocked_ids
    assert not hidden(graph, gone).blocked_ids and not hidden(graph, gone).mutes
    # Readers' cached hidden authors of the other side are dropped, as for an unblock.
    assert all(versions(u) != before[u.id] for u in (blocked, blocker, muter))
    # The other side of each follow learns of it as of an unfollow (fanout purges, recommendations forget).
    removed = graph_events.wait_for(lambda e: e.WhichOneof("kind") == "follow_removed", count=2)
    edges = {
        (str(e.follow_removed.follower_id), str(e.follow_removed.followee_id)) for e in map(graph_events.event, removed)
    }
    assert {(fan.id, gone.id), (gone.id, idol.id)} <= edges
    # The bystander's own edges are untouched.
    assert stats(graph, bystander) == (1, 1)

    # Redelivered: nothing moves twice. The marker's deletion goes out after
    # it on the same partition (same key), so once the marker's follow is
    # gone the redelivery has been applied.
    graph.FollowUser(follow(user_id=idol.id), metadata=marker.auth, timeout=10)
    publish(event)
    publish(account_deleted(marker.id, "marker"), key=gone.id)
    wait_until(lambda: stats(graph, marker) == (0, 0))
    assert stats(graph, idol) == (1, 0) and stats(graph, fan) == (0, 1) and stats(graph, bystander) == (1, 1)


def test_follows_to_and_from_a_gone_account_are_refused(identity, graph):
    gone, other, probe = sign_up(identity), sign_up(identity), sign_up(identity)
    mark_gone(gone.id)
    try:

        def refused(who: Account, whom: Account) -> grpc.StatusCode | None:
            try:
                graph.FollowUser(graph_pb2.FollowUserRequest(user_id=whom.id), metadata=who.auth, timeout=10)
            except grpc.RpcError as err:
                return err.code()
            return None

        # graph's copy of the set is refreshed every 2 s: probed with a third
        # account, which may get followed meanwhile.
        assert wait_until(lambda: refused(gone, probe)) == grpc.StatusCode.PERMISSION_DENIED
        assert refused(other, gone) == grpc.StatusCode.NOT_FOUND
        assert refused(gone, other) == grpc.StatusCode.PERMISSION_DENIED
        assert stats(graph, gone)[0] == 0 and stats(graph, other) == (0, 0)
    finally:
        mark_back(gone.id)


def test_a_follow_racing_the_deletion_is_removed_once_the_account_shows_as_gone(identity, graph):
    gone, fan, late = sign_up(identity), sign_up(identity), sign_up(identity)
    graph.FollowUser(graph_pb2.FollowUserRequest(user_id=gone.id), metadata=fan.auth, timeout=10)
    publish(account_deleted(gone.id, "gone"))
    wait_until(lambda: stats(graph, fan) == (0, 0))
    # Identity has not marked the account gone yet: this follow gets through
    # after the first removal, as one racing the deletion would.
    graph.FollowUser(graph_pb2.FollowUserRequest(user_id=gone.id), metadata=late.auth, timeout=10)
    assert stats(graph, late) == (0, 1)
    mark_gone(gone.id)
    try:
        wait_until(lambda: stats(graph, late) == (0, 0), timeout=15)
        assert stats(graph, gone) == (0, 0)
    finally:
        mark_back(gone.id)
