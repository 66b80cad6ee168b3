"""graph against the real running processes (graph, identity), Cassandra, Redis and Kafka.

The graph process must run with AVIARY_FANOUT_THRESHOLD=3 (as the devstack does);
set the same variable for pytest if it runs with another value.
"""

import os
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.settings import load_settings, service_addr
from services.kit.events.kafka import GRAPH_TOPIC

THRESHOLD = int(os.environ.get("AVIARY_FANOUT_THRESHOLD", "3"))


class Account:
    def __init__(self, created):
        self.id = created.user.id
        self.token = created.access_token

    @property
    def auth(self):
        return (("authorization", f"Bearer {self.token}"),)


def sign_up(identity) -> Account:
    created = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password="correct horse battery"),
        timeout=15,
    )
    return Account(created)


def sign_up_many(identity, n: int) -> list[Account]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: sign_up(identity), range(n)))


def follow(graph, who: Account, whom: str):
    return graph.FollowUser(graph_pb2.FollowUserRequest(user_id=whom), metadata=who.auth, timeout=10)


def unfollow(graph, who: Account, whom: str):
    return graph.UnfollowUser(graph_pb2.UnfollowUserRequest(user_id=whom), metadata=who.auth, timeout=10)


def stats(graph, user_id: str):
    return graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=user_id), timeout=10)


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=10, **kwargs)
    return err.value


def test_batch_follow_stats_match_the_single_reads(identity, graph):
    alice, bob, carol = sign_up_many(identity, 3)
    follow(graph, alice, bob.id)
    follow(graph, carol, bob.id)
    follow(graph, bob, alice.id)
    batch = graph.BatchGetFollowStats(
        graph_pb2.BatchGetFollowStatsRequest(user_ids=[bob.id, alice.id, "12345", bob.id, carol.id]), timeout=10
    )
    # One entry per distinct id, in request order; an untouched user has zeros.
    assert [(s.user_id, s.follower_count, s.following_count) for s in batch.stats] == [
        (bob.id, 2, 1),
        (alice.id, 1, 1),
        ("12345", 0, 0),
        (carol.id, 0, 1),
    ]
    assert list(batch.stats)[:2] == [stats(graph, bob.id), stats(graph, alice.id)]
    err = rpc_error(graph.BatchGetFollowStats, graph_pb2.BatchGetFollowStatsRequest(user_ids=[bob.id, "x"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("user_ids[1]:")
    err = rpc_error(graph.BatchGetFollowStats, graph_pb2.BatchGetFollowStatsRequest(user_ids=["1"] * 201))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "user_ids" in err.details()


# -- follow / unfollow -----------------------------------------------------------


def test_follow_and_unfollow_are_idempotent_and_keep_counts_exact(identity, graph):
    alice, bob = sign_up(identity), sign_up(identity)

    first = follow(graph, alice, bob.id)
    again = follow(graph, alice, bob.id)
    assert (first.follower_id, first.followee_id, first.following, first.created) == (alice.id, bob.id, True, True)
    assert (again.following, again.created) == (True, False)
    assert (stats(graph, bob.id).follower_count, stats(graph, bob.id).following_count) == (1, 0)
    assert (stats(graph, alice.id).follower_count, stats(graph, alice.id).following_count) == (0, 1)
    following = graph.ListFollowing(graph_pb2.ListFollowingRequest(user_id="me"), metadata=alice.auth, timeout=10)
    assert [u.id for u in following.users] == [bob.id]

    removed = unfollow(graph, alice, bob.id)
    removed_again = unfollow(graph, alice, bob.id)
    assert (removed.following, removed.removed) == (False, True)
    assert (removed_again.following, removed_again.removed) == (False, False)
    assert stats(graph, bob.id).follower_count == 0
    assert stats(graph, alice.id).following_count == 0
    followers = graph.ListFollowers(graph_pb2.ListFollowersRequest(user_id=bob.id), timeout=10)
    assert list(followers.users) == []


def test_concurrent_follows_of_one_edge_count_once(identity, graph):
    alice, bob = sign_up(identity), sign_up(identity)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: follow(graph, alice, bob.id), range(6)))
    assert sum(r.created for r in results) == 1
    assert stats(graph, bob.id).follower_count == 1


def test_follow_errors(identity, graph):
    alice = sign_up(identity)
    cases = [
        (alice.id, grpc.StatusCode.INVALID_ARGUMENT, "user_id: you cannot follow yourself"),
        ("1", grpc.StatusCode.NOT_FOUND, "user 1 does not exist"),
        ("not-an-id", grpc.StatusCode.INVALID_ARGUMENT, None),
        ("", grpc.StatusCode.INVALID_ARGUMENT, None),
    ]
    for target, code, message in cases:
        err = rpc_error(graph.FollowUser, graph_pb2.FollowUserRequest(user_id=target), metadata=alice.auth)
        assert err.code() == code, target
        if message:
            assert err.details() == message
        else:
            assert err.details().startswith("user_id:")
    assert stats(graph, alice.id).following_count == 0


def test_unfollow_errors(identity, graph):
    alice = sign_up(identity)
    err = rpc_error(graph.UnfollowUser, graph_pb2.UnfollowUserRequest(user_id=alice.id), metadata=alice.auth)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("user_id:")
    err = rpc_error(graph.UnfollowUser, graph_pb2.UnfollowUserRequest(user_id="1"), metadata=alice.auth)
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_follow_needs_a_valid_token(identity, graph):
    bob = sign_up(identity)
    err = rpc_error(graph.FollowUser, graph_pb2.FollowUserRequest(user_id=bob.id))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = rpc_error(
        graph.FollowUser, graph_pb2.FollowUserRequest(user_id=bob.id), metadata=(("authorization", "Bearer junk"),)
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


# -- lists and streams -------------------------------------------------------------


@pytest.fixture(scope="module")
def popular(identity, graph):
    """A user with 25 fresh followers: (user, follower ids)."""
    star = sign_up(identity)
    fans = sign_up_many(identity, 25)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda fan: follow(graph, fan, star.id), fans))
    return star, [fan.id for fan in fans]


def test_follower_pages_walk_every_follower_exactly_once(graph, popular):
    star, fan_ids = popular
    seen, sizes, token = [], [], ""
    for _ in range(10):
        page = graph.ListFollowers(
            graph_pb2.ListFollowersRequest(user_id=star.id, page_size=7, page_token=token), timeout=10
        )
        seen.extend(u.id for u in page.users)
        sizes.append(len(page.users))
        token = page.next_page_token
        if not token:
            break
    assert sizes == [7, 7, 7, 4]
    assert sorted(seen, key=int) == sorted(fan_ids, key=int)
    assert seen == sorted(seen, key=int)  # ordered by follower id
    assert all(u.username.startswith("t_") for u in page.users)


def test_list_followers_of_me_and_unknown_user(graph, popular):
    star, fan_ids = popular
    mine = graph.ListFollowers(
        graph_pb2.ListFollowersRequest(user_id="me", page_size=100), metadata=star.auth, timeout=10
    )
    assert len(mine.users) == 25 and mine.next_page_token == ""
    err = rpc_error(graph.ListFollowers, graph_pb2.ListFollowersRequest(user_id="1"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(graph.ListFollowing, graph_pb2.ListFollowingRequest(user_id="1"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(graph.ListFollowers, graph_pb2.ListFollowersRequest(user_id=star.id, page_token="garbage!"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("page_token:")


def test_stream_followers_returns_every_follower_in_batches(graph, popular):
    star, fan_ids = popular
    batches = list(graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=star.id, batch_size=10), timeout=10))
    assert [len(b.follower_ids) for b in batches] == [10, 10, 5]
    streamed = [i for b in batches for i in b.follower_ids]
    assert streamed == sorted(int(i) for i in fan_ids)

    default = list(graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=star.id), timeout=10))
    assert [len(b.follower_ids) for b in default] == [25]


def test_stream_followers_of_nobody_ends_without_batches(identity, graph):
    loner = sign_up(identity)
    assert list(graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=loner.id), timeout=10)) == []


def _follower_pages(graph, user_id: str, page_size: int) -> list[list[int]]:
    pages, token = [], ""
    while True:
        request = graph_pb2.ListFollowerIdsRequest(user_id=user_id, page_size=page_size, page_token=token)
        page = graph.ListFollowerIds(request, timeout=10)
        pages.append(list(page.follower_ids))
        token = page.next_page_token
        if not token:
            return pages


def test_follower_ids_come_in_pages_read_or_kept(identity, graph):
    star = sign_up(identity)
    fans = sign_up_many(identity, 25)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda fan: follow(graph, fan, star.id), fans))
    everyone = sorted(int(fan.id) for fan in fans)
    # Until the follows' events are out their relay moves the list's
    # version, so a list read now may not be kept: wait for one that is.
    deadline = time.monotonic() + 30
    while True:
        missed, hits = _follower_list_lookups("miss"), _follower_list_lookups("hit")
        assert _follower_pages(graph, star.id, 10) == [everyone[:10], everyone[10:20], everyone[20:]]
        # (Other tests' fanouts may look lists up meanwhile: then look again.)
        misses, hit = _follower_list_lookups("miss") - missed, _follower_list_lookups("hit") - hits
        if misses <= 1 and hit >= 2:
            break  # the first page read the whole list and kept it; the next two came from memory
        assert time.monotonic() < deadline, f"a first page never kept its list: {misses} misses, {hit} hits"
        time.sleep(0.1)
    whole = graph.ListFollowerIds(graph_pb2.ListFollowerIdsRequest(user_id=star.id), timeout=10)
    assert list(whole.follower_ids) == everyone and whole.next_page_token == "" and not whole.celebrity

    # A page asked for after a change (which moves the version) is read from
    # Cassandra after its cursor.
    first = graph.ListFollowerIds(graph_pb2.ListFollowerIdsRequest(user_id=star.id, page_size=10), timeout=10)
    unfollow(graph, next(fan for fan in fans if int(fan.id) == everyone[0]), star.id)
    then = graph_pb2.ListFollowerIdsRequest(user_id=star.id, page_size=10, page_token=first.next_page_token)
    assert list(graph.ListFollowerIds(then, timeout=10).follower_ids) == everyone[10:20]
    assert _follower_pages(graph, star.id, 12) == [everyone[1:13], everyone[13:]]


def test_follower_ids_of_nobody_and_bad_pages(identity, graph):
    loner = sign_up(identity)
    alone = graph.ListFollowerIds(graph_pb2.ListFollowerIdsRequest(user_id=loner.id, skip_celebrity=True), timeout=10)
    assert list(alone.follower_ids) == [] and alone.next_page_token == "" and not alone.celebrity
    for request, field in [
        (graph_pb2.ListFollowerIdsRequest(user_id=loner.id, page_size=-1), "page_size:"),
        (graph_pb2.ListFollowerIdsRequest(user_id=loner.id, page_token="garbage!"), "page_token:"),
        (graph_pb2.ListFollowerIdsRequest(user_id="x"), "user_id:"),
    ]:
        err = rpc_error(graph.ListFollowerIds, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith(field), err.details()


# -- celebrity flag ----------------------------------------------------------------


def test_celebrity_flag_flips_when_crossing_the_threshold(identity, graph):
    star = sign_up(identity)
    fans = sign_up_many(identity, THRESHOLD + 1)
    reader = fans[0]

    for n, fan in enumerate(fans, start=1):
        follow(graph, fan, star.id)
        current = stats(graph, star.id)
        assert current.follower_count == n
        assert current.celebrity == (n > THRESHOLD), n

    celebs = graph.ListFollowedCelebrities(graph_pb2.ListFollowedCelebritiesRequest(user_id=reader.id), timeout=10)
    assert list(celebs.celebrity_ids) == [int(star.id)]

    unfollow(graph, fans[-1], star.id)
    assert stats(graph, star.id).celebrity is False
    celebs = graph.ListFollowedCelebrities(graph_pb2.ListFollowedCelebritiesRequest(user_id=reader.id), timeout=10)
    assert list(celebs.celebrity_ids) == []


def test_a_stream_that_skips_celebrities_says_so_instead_of_streaming_them(identity, graph):
    star = sign_up(identity)
    fans = sign_up_many(identity, THRESHOLD + 1)
    for fan in fans[:THRESHOLD]:
        follow(graph, fan, star.id)

    def skipping() -> list[graph_pb2.FollowerBatch]:
        request = graph_pb2.StreamFollowersRequest(user_id=star.id, batch_size=2, skip_celebrity=True)
        return list(graph.StreamFollowers(request, timeout=10))

    # At the threshold: not a celebrity, so every follower, none of it flagged.
    batches = skipping()
    assert sorted(i for b in batches for i in b.follower_ids) == sorted(int(f.id) for f in fans[:THRESHOLD])
    assert not any(b.celebrity for b in batches)

    # FollowUser has returned: the count kept with the list no longer holds.
    follow(graph, fans[-1], star.id)
    assert skipping() == [graph_pb2.FollowerBatch(celebrity=True)]
    # The celebrity's count alone is kept, and answers the next post's check
    # (once the follow's event is out: its relay moves the version once more).
    deadline = time.monotonic() + 10
    while True:
        count_only = _follower_list_lookups("count_only")
        assert skipping() == [graph_pb2.FollowerBatch(celebrity=True)]
        if _follower_list_lookups("count_only") == count_only + 1:
            break
        assert time.monotonic() < deadline, "a celebrity's kept count was never served"
        time.sleep(0.1)
    # A page that skips celebrities says so the same way, with no ids.
    page = graph.ListFollowerIds(graph_pb2.ListFollowerIdsRequest(user_id=star.id, skip_celebrity=True), timeout=10)
    assert page == graph_pb2.ListFollowerIdsResponse(celebrity=True)
    # Without the flag, a celebrity's followers stream as ever.
    everyone = graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=star.id), timeout=10)
    assert sorted(i for b in everyone for i in b.follower_ids) == sorted(int(f.id) for f in fans)


def test_stats_of_an_untouched_user_are_zero(identity, graph):
    loner = sign_up(identity)
    s = stats(graph, loner.id)
    assert (s.user_id, s.follower_count, s.following_count, s.celebrity) == (loner.id, 0, 0, False)


# -- events ----------------------------------------------------------------------


@pytest.fixture
def graph_topic_from_end():
    consumer = KafkaConsumer(
        bootstrap_servers=load_settings().kafka_bootstrap,
        group_id=f"test-graph-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
    )
    partitions = [TopicPartition(GRAPH_TOPIC, p) for p in consumer.partitions_for_topic(GRAPH_TOPIC)]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for tp in partitions:
        consumer.position(tp)  # resolve "end" now, before the test writes
    yield consumer
    consumer.close()


def wait_for_graph_event(consumer, match, deadline_seconds=10.0):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                event = events_pb2.GraphEvent.FromString(record.value)
                if match(event):
                    return record, event
    pytest.fail("no matching GraphEvent on the topic within the deadline")


def test_follow_and_unfollow_publish_graph_events(identity, graph, graph_topic_from_end):
    alice, bob = sign_up(identity), sign_up(identity)
    follow(graph, alice, bob.id)
    record, event = wait_for_graph_event(
        graph_topic_from_end,
        lambda e: (
            e.WhichOneof("kind") == "follow_created"
            and (e.follow_created.follower_id, e.follow_created.followee_id) == (int(alice.id), int(bob.id))
        ),
    )
    assert record.key == alice.id.encode()
    assert event.event_id > 0 and event.occur_time.seconds > 0

    unfollow(graph, alice, bob.id)
    record, _ = wait_for_graph_event(
        graph_topic_from_end,
        lambda e: e.WhichOneof("kind") == "follow_removed" and e.follow_removed.follower_id == int(alice.id),
    )
    assert record.key == alice.id.encode()


def test_follow_retry_finishes_a_follow_interrupted_between_its_writes(identity, graph):
    """Simulates a crash after the `following` claim and before the followers
    row, event and counts: a retry of the same follow completes all three."""
    from cassandra.cluster import Cluster

    fan, star = sign_up(identity), sign_up(identity)
    settings = load_settings()
    cluster = Cluster(list(settings.cassandra_hosts), port=settings.cassandra_port)
    try:
        session = cluster.connect()
        session.execute(
            "INSERT INTO aviary_graph.following (user_id, followee_id, created_at) "
            "VALUES (%s, %s, toTimestamp(now()) - 1h)",
            (int(fan.id), int(star.id)),
        )
    finally:
        cluster.shutdown()
    assert stats(graph, star.id).follower_count == 0

    reply = follow(graph, fan, star.id)
    assert reply.following and not reply.created
    assert stats(graph, star.id).follower_count == 1
    assert stats(graph, fan.id).following_count == 1
    listed = graph.ListFollowers(graph_pb2.ListFollowersRequest(user_id=star.id), timeout=10)
    assert [u.id for u in listed.users] == [fan.id]
    # Retrying again changes nothing more.
    follow(graph, fan, star.id)
    assert stats(graph, star.id).follower_count == 1


# -- kept follower lists -----------------------------------------------------------


def _streamed_followers(graph, user_id: str) -> list[str]:
    batches = graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=user_id, batch_size=2), timeout=10)
    return [str(f) for batch in batches for f in batch.follower_ids]


def _follower_list_lookups(result: str) -> float:
    host, port = service_addr("graph").rsplit(":", 1)
    text = httpx.get(f"http://{host}:{int(port) + 1000}/metrics", timeout=5).text
    line = f'aviary_graph_follower_lists_total{{result="{result}"}} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


def _until_streamed(graph, user_id: str, expected: set[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        streamed = _streamed_followers(graph, user_id)
        if set(streamed) == expected:
            assert len(streamed) == len(expected), f"a follower streamed twice: {streamed}"
            return
        assert time.monotonic() < deadline, f"streamed {sorted(streamed)}, expected {sorted(expected)}"
        time.sleep(0.1)


# Serial: it counts the devstack graph's kept-list hits, which fanout moves for other tests' posts.
@pytest.mark.serial
def test_a_kept_follower_list_is_served_again_but_never_once_a_follow_or_unfollow_is_out(
    identity, graph, graph_topic_from_end
):
    # Below the celebrity threshold (3): these are lists fanout streams.
    author, first, second, third = sign_up_many(identity, 4)
    follow(graph, first, author.id)
    follow(graph, second, author.id)
    _until_streamed(graph, author.id, {first.id, second.id})

    # The same list again comes from graph's memory, not Cassandra.
    hits = _follower_list_lookups("hit")
    assert sorted(_streamed_followers(graph, author.id)) == sorted([first.id, second.id])
    assert _follower_list_lookups("hit") == hits + 1

    # Once fanout can see a change (its event is on the topic), no stream
    # may still serve the copy kept from before it.
    follow(graph, third, author.id)
    wait_for_graph_event(
        graph_topic_from_end,
        lambda e: e.WhichOneof("kind") == "follow_created" and e.follow_created.follower_id == int(third.id),
    )
    assert sorted(_streamed_followers(graph, author.id)) == sorted([first.id, second.id, third.id])

    unfollow(graph, first, author.id)
    wait_for_graph_event(
        graph_topic_from_end,
        lambda e: e.WhichOneof("kind") == "follow_removed" and e.follow_removed.follower_id == int(first.id),
    )
    assert sorted(_streamed_followers(graph, author.id)) == sorted([second.id, third.id])
    # And the new list is kept in its turn.
    hits = _follower_list_lookups("hit")
    assert sorted(_streamed_followers(graph, author.id)) == sorted([second.id, third.id])
    assert _follower_list_lookups("hit") == hits + 1
