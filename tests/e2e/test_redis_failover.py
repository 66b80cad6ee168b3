"""A Redis Cluster master killed while a reader keeps reading (only on the
devstack's cluster, AVIARY_REDIS_CLUSTER=1: the suite's second pass in
tests/run.sh). Its replica takes over; home timelines keep serving throughout
(from the posts store while the slot has no master); afterwards new posts
arrive again and the follower count and a like count are what they were."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from devstack import proc, redis_cluster
from services.kit.settings import REPO_ROOT
from services.timeline.entries import home_key
from tests import redis_clients
from tests.conftest import REDIS_URL
from tests.e2e.edge import Account, follow, home_ids, post, sign_up, wait_until

pytestmark = [
    pytest.mark.e2e,
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


def _node_name(port: int) -> str:
    return f"redis-cluster-{redis_cluster.PORTS.index(port)}"


def _kill(port: int) -> None:
    """The master dies without a word: no shutdown, no failover handshake."""
    info = proc.read_pidinfo(_node_name(port))
    assert info is not None, f"{_node_name(port)} is not running"
    os.kill(int(info["pid"]), signal.SIGKILL)


def _restart(port: int) -> None:
    """The killed node comes back and rejoins as a replica of its successor."""
    subprocess.run(
        [sys.executable, "-m", "devstack", "up", _node_name(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "AVIARY_REDIS_CLUSTER": "1"},
        check=True,
        capture_output=True,
        timeout=120,
    )


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
        _restart(dead)

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
