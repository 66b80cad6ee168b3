"""A Redis Cluster master killed while a reader keeps reading (only on the
devstack's cluster, AVIARY_REDIS_CLUSTER=1: the suite's second pass in
tests/run.sh). Its replica takes over; home timelines keep serving throughout
(from the posts store while the slot has no master); afterwards new posts
arrive again and the follower count and a like count are what they were."""

from __future__ import annotations

import collections
import signal
import threading
import time

import httpx
import pytest
import redis

from devstack import redis_cluster
from services.engagement.counters import counter_key
from services.kit.peers import followers
from services.timeline.entries import home_key
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.e2e.edge import Account, follow, home_ids, post, sign_up, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.serial,
    # The killed master comes back as a replica: the cluster's layout differs afterwards.
    pytest.mark.runs_last,
    pytest.mark.skipif(
        not redis_cluster.ENABLED, reason="runs on the devstack's Redis Cluster (AVIARY_REDIS_CLUSTER=1)"
    ),
]

SETTLE_SECONDS = 20.0


def _master_port(key: str) -> int:
    client = redis_clients.from_url(REDIS_URL)
    try:
        return int(client.get_node_from_key(key).port)  # type: ignore[attr-defined]
    finally:
        client.close()


def _kill(port: int) -> None:
    redis_cluster.signal_node(port, signal.SIGKILL)


def _taken_over(key: str, dead_port: int) -> bool:
    try:
        return _master_port(key) != dead_port and b"cluster_state:ok" in redis_cluster.command(
            _master_port(key), "CLUSTER", "INFO"
        )
    except Exception:
        return False


class _Reader(threading.Thread):
    """Reads a home timeline over and over, noting each answer."""

    def __init__(self, base_url: str, reader: Account, expected: set[str]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.reader, self.expected = base_url, reader, expected
        self.statuses: collections.Counter = collections.Counter()
        self.incomplete = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=15.0) as client:
            while not self.stop.is_set():
                r = client.get("/v1/timelines/home", params={"pageSize": 50}, headers=self.reader.auth)
                self.statuses[r.status_code] += 1
                if r.status_code == 200 and not self.expected <= {p["id"] for p in r.json().get("posts", [])}:
                    self.incomplete += 1
                time.sleep(0.05)


def test_home_timelines_keep_serving_while_a_master_fails_over(http):
    author, reader = sign_up(http, "fo"), sign_up(http, "fo")
    follow(http, reader, author)
    before = [post(http, author, f"before the failover {i}")["id"] for i in range(3)]
    assert http.post(f"/v1/posts/{before[0]}:like", json={}, headers=reader.auth).status_code == 200
    assert wait_until(lambda: set(before) <= set(home_ids(http, reader)), SETTLE_SECONDS)

    key = home_key(int(reader.id))
    dead = _master_port(key)
    reads = _Reader(str(http.base_url), reader, set(before))
    reads.start()
    try:
        time.sleep(0.5)
        _kill(dead)
        started = time.monotonic()
        assert wait_until(lambda: _taken_over(key, dead), 30.0, interval=0.2), "no replica took over"
        took_over_s = time.monotonic() - started
        time.sleep(1.0)  # reads after the switch too
    finally:
        reads.stop.set()
        reads.join(30)
        redis_cluster.restart(dead)

    print(f"failover: a replica took over in {took_over_s:.1f} s; home reads meanwhile {dict(reads.statuses)}")
    # Every read answered, each with the whole timeline (the posts store's while the slot had no master).
    assert set(reads.statuses) == {200}, (reads.statuses, took_over_s)
    assert reads.incomplete == 0, (reads.incomplete, sum(reads.statuses.values()))
    # After the switch: delivery works again, and the counts are what they were.
    after = post(http, author, "after the failover")["id"]
    assert wait_until(lambda: after in home_ids(http, reader), SETTLE_SECONDS)
    profile = http.get(f"/v1/users/{author.id}", headers=reader.auth).json()
    assert int(profile.get("followerCount", 0)) == 1, profile
    liked = http.get(f"/v1/posts/{before[0]}", headers=reader.auth).json()
    assert (int(liked.get("likeCount", 0)), liked.get("likedByMe")) == (1, True), liked


def _account_on(http, prefix: str, port: int, key_of, *, away: bool = False) -> Account:
    """An account whose key_of(id) lives on the master at `port` (or, with away, on another)."""
    for _ in range(40):
        account = sign_up(http, prefix)
        if (_master_port(key_of(int(account.id))) == port) != away:
            return account
    raise AssertionError("no account's key landed where wanted")


def _replication_stalled(master: int, tag: str) -> None:
    """Stands for a replica that lags its master: the replica is stopped and
    the link's socket buffers filled, so what the master writes next stays
    in its own memory (and dies with it)."""
    node = redis.Redis(host="127.0.0.1", port=master)
    try:
        for i in range(8):
            node.set(f"failover-ballast:{{{tag}}}:{i}", b"x" * (4 << 20))
    finally:
        node.close()


def test_what_a_promoted_replica_missed_is_not_trusted(http):
    """A follow and a like the master acknowledged, lost because its replica
    lagged when it died: graph must not serve the follower list it held from
    before the follow (its version bump is lost: the Redis epoch moved), and
    the like count and likedByMe must come back from Cassandra."""
    author = sign_up(http, "fv")
    master = _master_port(followers.version_key(int(author.id)))
    # The new follower's own timeline is elsewhere: it survives, so a post
    # missing from it is a fanout that skipped them (not a cold rebuild).
    fan = _account_on(http, "fv", master, home_key, away=True)
    old_fan = sign_up(http, "fv")
    follow(http, old_fan, author)
    home_ids(http, fan)  # active: deliveries go to the fan's timeline
    liked = next(
        p
        for p in (post(http, author, f"count me {i}") for i in range(30))
        if _master_port(counter_key(int(p["id"]))) == master
    )
    assert wait_until(lambda: liked["id"] in home_ids(http, old_fan), SETTLE_SECONDS)
    assert http.post(f"/v1/posts/{liked['id']}:like", json={}, headers=old_fan.auth).status_code == 200
    # graph now holds the author's follower list [old_fan] under its version.

    replica = redis_cluster.replica_of(master)
    redis_cluster.signal_node(replica, signal.SIGSTOP)
    try:
        _replication_stalled(master, author.id)
        follow(http, fan, author)
        assert http.post(f"/v1/posts/{liked['id']}:like", json={}, headers=fan.auth).status_code == 200
        _kill(master)
    finally:
        redis_cluster.signal_node(replica, signal.SIGCONT)
    try:
        assert wait_until(lambda: _taken_over(followers.version_key(int(author.id)), master), 30.0, interval=0.2)
        time.sleep(1.0)  # the services' watchers read the new epoch
        after = post(http, author, "after the failover")["id"]
        assert wait_until(lambda: after in home_ids(http, fan), SETTLE_SECONDS), (
            "fanout used the follower list from before"
        )
        counted = http.get(f"/v1/posts/{liked['id']}", headers=fan.auth).json()
        assert (int(counted.get("likeCount", 0)), counted.get("likedByMe")) == (2, True), counted
        assert int(http.get(f"/v1/users/{author.id}", headers=fan.auth).json().get("followerCount", 0)) == 2
    finally:
        redis_cluster.restart(master)
