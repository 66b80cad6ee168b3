"""graph's blocks and mutes as read paths see them (GetHiddenAuthors), and the
Redis version kit's peers.safety checks, against the running graph process."""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor
import secrets
import time

import grpc
import pytest

from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.peers import safety
from services.kit.settings import load_settings
from tests import redis_clients


class Account:
    def __init__(self, created):
        self.id = created.user.id
        self.auth = (("authorization", f"Bearer {created.access_token}"),)


def sign_up(identity) -> Account:
    request = identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password="correct horse battery")
    return Account(identity.CreateAccount(request, timeout=15))


def hidden(graph, viewer: Account) -> graph_pb2.GetHiddenAuthorsResponse:
    return graph.GetHiddenAuthors(graph_pb2.GetHiddenAuthorsRequest(viewer_id=viewer.id), timeout=10)


@pytest.fixture(scope="module")
def versions():
    client = redis_clients.from_url(load_settings().redis_url)
    yield lambda user: client.get(safety.version_key(int(user.id)))
    client.close()


def test_a_block_is_seen_from_both_sides_and_moves_both_versions(identity, graph, versions):
    blocker, blocked = sign_up(identity), sign_up(identity)
    before = versions(blocker), versions(blocked)
    graph.BlockUser(graph_pb2.BlockUserRequest(user_id=blocked.id), metadata=blocker.auth, timeout=10)
    assert [str(i) for i in hidden(graph, blocker).blocked_ids] == [blocked.id]
    assert [str(i) for i in hidden(graph, blocked).blocker_ids] == [blocker.id]
    assert not hidden(graph, blocked).blocked_ids
    after = versions(blocker), versions(blocked)
    assert after[0] != before[0] and after[1] != before[1]

    graph.UnblockUser(graph_pb2.UnblockUserRequest(user_id=blocked.id), metadata=blocker.auth, timeout=10)
    assert not hidden(graph, blocker).blocked_ids and not hidden(graph, blocked).blocker_ids
    assert versions(blocker) != after[0]


def test_only_active_mutes_are_answered(identity, graph, versions):
    muter, forever, briefly = sign_up(identity), sign_up(identity), sign_up(identity)
    graph.MuteUser(graph_pb2.MuteUserRequest(user_id=forever.id), metadata=muter.auth, timeout=10)
    request = graph_pb2.MuteUserRequest(user_id=briefly.id)
    request.expires_at.FromDatetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1))
    graph.MuteUser(request, metadata=muter.auth, timeout=10)
    mutes = {str(m.user_id): m for m in hidden(graph, muter).mutes}
    assert set(mutes) == {forever.id, briefly.id}
    assert not mutes[forever.id].HasField("expires_at") and mutes[briefly.id].HasField("expires_at")
    # The muted users' own answers do not change: they are not told.
    assert not hidden(graph, forever).mutes and not hidden(graph, forever).blocker_ids
    time.sleep(1.1)
    assert [str(m.user_id) for m in hidden(graph, muter).mutes] == [forever.id]


def test_a_follow_across_a_block_is_refused_either_way(identity, graph):
    a, b = sign_up(identity), sign_up(identity)
    graph.BlockUser(graph_pb2.BlockUserRequest(user_id=b.id), metadata=a.auth, timeout=10)
    for who, whom in ((a, b), (b, a)):
        with pytest.raises(grpc.RpcError) as err:
            graph.FollowUser(graph_pb2.FollowUserRequest(user_id=whom.id), metadata=who.auth, timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_hidden_authors_needs_a_valid_viewer(graph):
    with pytest.raises(grpc.RpcError) as err:
        graph.GetHiddenAuthors(graph_pb2.GetHiddenAuthorsRequest(viewer_id="x"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_follow_racing_a_block_never_survives_it(identity, graph):
    pairs = [(sign_up(identity), sign_up(identity)) for _ in range(12)]

    def follow(pair):
        fan, idol = pair
        try:
            graph.FollowUser(graph_pb2.FollowUserRequest(user_id=idol.id), metadata=fan.auth, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, exc

    def block(pair):
        fan, idol = pair
        graph.BlockUser(graph_pb2.BlockUserRequest(user_id=fan.id), metadata=idol.auth, timeout=10)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda job: job[0](job[1]), [(f, p) for p in pairs for f in (follow, block)]))
    for fan, idol in pairs:
        stats = graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=idol.id), timeout=10)
        assert stats.follower_count == 0, (fan.id, idol.id)
        listed = graph.ListFollowers(graph_pb2.ListFollowersRequest(user_id=idol.id, page_size=10), timeout=10)
        assert not listed.users
