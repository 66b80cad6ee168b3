"""The bulk loaders (python -m services.graph.load, services.timeline.load) and
timeline's FindMissingEntries, against the running graph and timeline services.

Every test uses fresh random ids far above real Snowflake ids, and deletes
what it loaded with the loaders' own --delete.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from aviary.graph.v1 import graph_pb2
from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.settings import service_addr
from tests.integration.support import wait_serving

REPO = Path(__file__).resolve().parents[2]
ADD = timeline_pb2.DELIVERY_OP_ADD


def random_id() -> int:
    return (1 << 62) + secrets.randbits(56)


def load(module: str, *argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def timeline():
    channel = wait_serving(service_addr("timeline"))
    yield timeline_pb2_grpc.TimelineServiceStub(channel)
    channel.close()


@pytest.fixture
def users_file(tmp_path):
    users = [random_id() for _ in range(4)]
    path = tmp_path / "users.txt"
    path.write_text("# readers\n" + "".join(f"{u}\n" for u in users))
    yield path, users
    load("services.timeline.load", str(path), "--delete")


def deliver(timeline, entry, users) -> timeline_pb2.DeliverEntriesResponse:
    request = timeline_pb2.DeliverEntriesRequest(op=ADD, entry=entry, user_ids=users)
    return timeline.DeliverEntries(iter([request]), timeout=10)


def find_missing(timeline, *lookups) -> list[list[int]]:
    request = timeline_pb2.FindMissingEntriesRequest(
        lookups=[timeline_pb2.EntryLookup(entry=entry, user_ids=users) for entry, users in lookups]
    )
    return [list(m.user_ids) for m in timeline.FindMissingEntries(request, timeout=10).missing]


def test_marked_users_get_deliveries_and_lookups_name_who_lacks_an_entry(timeline, users_file):
    path, users = users_file
    marked = load("services.timeline.load", str(path), "--ttl-days", "0.01")
    assert marked["marked_active"] == len(users)
    first = timeline_pb2.TimelineEntry(post_id=random_id(), author_id=random_id())
    second = timeline_pb2.TimelineEntry(post_id=random_id(), author_id=random_id())
    inactive = random_id()

    assert deliver(timeline, first, users[:2] + [inactive]).skipped_inactive == 1
    assert deliver(timeline, second, users).timelines == len(users)

    assert find_missing(timeline, (first, users + [inactive]), (second, users), (second, [])) == [
        users[2:] + [inactive],
        [],
        [],
    ]

    load("services.timeline.load", str(path), "--delete")
    assert find_missing(timeline, (second, users)) == [users]
    assert deliver(timeline, second, users).skipped_inactive == len(users)


def test_find_missing_entries_checks_its_request(timeline):
    entry = timeline_pb2.TimelineEntry(post_id=random_id(), author_id=random_id())
    with pytest.raises(grpc.RpcError) as err:
        find_missing(timeline, (entry, [1] * 3000), (entry, [1] * 3000))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lookups" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        find_missing(timeline, (entry, [1]), (timeline_pb2.TimelineEntry(post_id=0, author_id=1), [1]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lookups[1].entry.post_id" in err.value.details()


def test_a_loaded_graph_is_what_graph_serves_and_delete_takes_it_back(graph, tmp_path):
    star, quiet = random_id(), random_id()
    fans = sorted(random_id() for _ in range(3))
    path = tmp_path / "edges.txt"
    path.write_text("".join(f"{f} {star}\n" for f in fans) + f"{fans[0]} {quiet}\n{fans[0]} {star}\n")

    loaded = load("services.graph.load", str(path), "--threshold", "2")
    assert loaded["edges"] == 4
    assert loaded["celebrities"] == {"threshold": 2, "flagged": 1}
    try:
        stats = graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(star)), timeout=10)
        assert stats.follower_count == 3
        fan = graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(fans[0])), timeout=10)
        assert fan.following_count == 2
        streamed = [
            f
            for batch in graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=str(star)), timeout=10)
            for f in batch.follower_ids
        ]
        assert streamed == fans
        celebs = graph.ListFollowedCelebrities(
            graph_pb2.ListFollowedCelebritiesRequest(user_id=str(fans[0])), timeout=10
        )
        assert list(celebs.celebrity_ids) == [star]

        again = load("services.graph.load", str(path), "--flags-only", "--threshold", "3")
        assert again["celebrities"]["flagged"] == 0
        celebs = graph.ListFollowedCelebrities(
            graph_pb2.ListFollowedCelebritiesRequest(user_id=str(fans[0])), timeout=10
        )
        assert list(celebs.celebrity_ids) == []
    finally:
        load("services.graph.load", str(path), "--delete")

    stats = graph.GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(star)), timeout=10)
    assert stats.follower_count == 0
    streamed = list(graph.StreamFollowers(graph_pb2.StreamFollowersRequest(user_id=str(star)), timeout=10))
    assert not [f for batch in streamed for f in batch.follower_ids]
