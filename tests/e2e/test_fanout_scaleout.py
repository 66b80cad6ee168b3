"""Fanout scales out: a second worker process joins the "fanout" consumer
group, the two split the posts topic's partitions (posts are keyed by author),
and together they deliver each post exactly once to each follower's timeline.
The timeline store's Redis keys carry hash tags, so it runs unchanged on
Redis Cluster.

Against the real stack; the second worker is started the way devstack starts
the first (same module, same environment) on free ports, and stopped again.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis.crc import key_slot

from services.kit.settings import SERVICE_PORTS
from services.kit.events.kafka import GRAPH_TOPIC, POSTS_TOPIC, TOPICS
from services.timeline import entries
from services.timeline.entries import author_key, home_key
from tests import redis_clients
from tests.conftest import FANOUT_THRESHOLD, REDIS_URL
from tests.e2e.edge import Account, follow, home_ids, post, sign_up, wait_until
from tests.e2e.fanout_support import (
    REPO,
    STATE,
    assert_consumer_groups_rejoin,
    counter_value,
    fanned_out,
    free_port,
    home_timeline_all,
    materialized_ids,
    post_many,
    posts_partition_of,
    posts_partitions_by_member,
    timeline_problems,
    wait_group_caught_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

READERS = 6
AUTHORS = 12  # more are signed up if these do not cover both workers' partitions
POSTS_PER_AUTHOR = 5
MAIN_METRICS_PORT = SERVICE_PORTS["fanout"] + 1000  # devstack sets no AVIARY_METRICS_PORT
SESSION_TIMEOUT_SECONDS = 10  # services.kit.events.consumer.ConsumerLoop's session_timeout_ms


@pytest.fixture
def rdb():
    client = redis_clients.from_url(REDIS_URL)
    yield client
    client.close()


class SecondWorker:
    """`python -u -m services.fanout` with devstack's environment, on its own ports."""

    def __init__(self) -> None:
        from devstack.services import service_env

        self.grpc_port, self.metrics_port = free_port(), free_port()
        self.log_path = STATE / "logs" / "fanout-scaleout.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **service_env(),
            "AVIARY_FANOUT_PORT": str(self.grpc_port),
            "AVIARY_METRICS_PORT": str(self.metrics_port),
            "AVIARY_HEALTH_PORT": str(free_port()),
            "AVIARY_WORKER_ID": "999",
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "services.fanout"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _one_member_owning_everything() -> bool:
    owned = posts_partitions_by_member()
    return owned is not None and len(owned) == 1 and owned[0] == set(range(TOPICS[POSTS_TOPIC]))


@pytest.fixture
def second_worker():
    worker = SecondWorker()
    yield worker
    worker.stop()
    # The group is back to the devstack worker alone, owning every partition.
    assert wait_until(_one_member_owning_everything, timeout=60.0, interval=0.5), (
        f"fanout group did not return to one member: {posts_partitions_by_member()}"
    )
    assert_consumer_groups_rejoin(timeout=60.0)


def test_two_fanout_workers_share_partitions_and_deliver_each_post_once(http, rdb, second_worker):
    main_log = STATE / "logs" / "fanout.log"
    readers: list[Account] = []
    authors: list[Account] = []
    followers: dict[str, list[Account]] = {}

    def add_authors(n: int) -> None:
        new = list(pool.map(lambda _: sign_up(http, "fs"), range(n)))
        pairs = []
        for author in new:
            i = len(authors)
            mine = [readers[i % READERS]] + ([readers[(i + 1) % READERS]] if i % 2 == 0 else [])
            assert len(mine) < FANOUT_THRESHOLD
            followers[author.id] = mine
            authors.append(author)
            pairs.extend((reader, author) for reader in mine)
        list(pool.map(lambda pair: follow(http, *pair), pairs))

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Users are signed up while the second worker starts.
        readers.extend(pool.map(lambda _: sign_up(http, "fs"), range(READERS)))
        add_authors(AUTHORS)
        # A first read makes each reader active: fanout materializes only active readers' timelines.
        list(pool.map(lambda r: home_timeline_all(http, r), readers))

        def two_members_sharing() -> list[set[int]] | None:
            assert second_worker.alive(), f"second worker exited:\n{second_worker.log_tail()}"
            owned = posts_partitions_by_member()
            ok = owned is not None and len(owned) == 2 and all(owned)
            return owned if ok else None

        owned = wait_until(two_members_sharing, timeout=40.0, interval=0.25)
        assert owned, f"fanout group never had two members sharing the posts topic: {posts_partitions_by_member()}"
        assert owned[0] | owned[1] == set(range(TOPICS[POSTS_TOPIC])) and not owned[0] & owned[1], owned
        # Authors are keys: make sure some land on each worker's partitions.
        while not all({posts_partition_of(a) for a in authors} & parts for parts in owned):
            assert len(authors) < 3 * AUTHORS, f"authors never covered both workers' partitions {owned}"
            add_authors(2)
    wait_group_caught_up([GRAPH_TOPIC])  # follows applied before the posts arrive

    offsets = {main_log: main_log.stat().st_size, second_worker.log_path: second_worker.log_path.stat().st_size}
    ports = {main_log: MAIN_METRICS_PORT, second_worker.log_path: second_worker.metrics_port}
    before = {log: counter_value(port, op="DELIVERY_OP_ADD") for log, port in ports.items()}

    jobs = [(a, f"scale-out {n} of {a.username}") for n in range(POSTS_PER_AUTHOR) for a in authors]
    created = post_many(http, jobs)
    post_ids = {pid for _, pid in created}
    expected: dict[str, set[str]] = {r.username: set() for r in readers}
    for author, pid in created:
        for reader in followers[author.id]:
            expected[reader.username].add(pid)

    def materialized() -> dict[str, list[str]]:
        return {r.username: materialized_ids(rdb, r) for r in readers}

    assert wait_until(lambda: not timeline_problems(expected, materialized()), timeout=30.0, interval=0.25), (
        "timelines in Redis are wrong with two workers:\n" + "\n".join(timeline_problems(expected, materialized()))
    )
    served = {r.username: home_timeline_all(http, r) for r in readers}
    problems = timeline_problems(expected, served)
    assert not problems, "home timelines through Envoy are wrong with two workers:\n" + "\n".join(problems)

    # Who did the work: every post fanned out once, by one worker; one author's
    # posts all by the same worker (its partition's owner); both workers busy.
    handled: dict[str, list[str]] = defaultdict(list)
    timelines_by: dict[str, int] = defaultdict(int)
    names = {main_log: "devstack worker", second_worker.log_path: "second worker"}
    deadline = time.monotonic() + 5.0  # a worker logs just after its delivery lands
    while True:
        handled.clear()
        timelines_by.clear()
        for log, offset in offsets.items():
            for pid, timelines in fanned_out(log, offset, post_ids):
                handled[pid].append(names[log])
                timelines_by[names[log]] += timelines
        if set(handled) == post_ids or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(handled) == post_ids, f"{len(post_ids - set(handled))} posts have no fanout log line"
    twice = {pid: who for pid, who in handled.items() if len(who) != 1}
    assert not twice, f"posts fanned out more than once: {twice}"
    by_author: dict[str, set[str]] = defaultdict(set)
    for author, pid in created:
        by_author[author.username] |= set(handled[pid])
    split = {a: who for a, who in by_author.items() if len(who) != 1}
    assert not split, f"one author's posts were fanned out by both workers: {split}"
    assert set(timelines_by) == set(names.values()), f"only {set(timelines_by)} fanned out our posts"
    assert sum(timelines_by.values()) == sum(len(ids) for ids in expected.values())

    # The workers' own counters agree: both delivered (others' traffic may add more).
    delivered = {names[log]: counter_value(port, op="DELIVERY_OP_ADD") - before[log] for log, port in ports.items()}
    for name, count in delivered.items():
        assert count >= timelines_by[name] > 0, f"{name} counted {count} deliveries, logged {timelines_by[name]}"

    # Scaling in: a worker stopped with SIGTERM leaves the group, so the other
    # takes its partitions over at once, not after the 10 s session timeout.
    stopping = time.monotonic()
    second_worker.stop()
    assert wait_until(_one_member_owning_everything, timeout=SESSION_TIMEOUT_SECONDS - 2, interval=0.1), (
        f"partitions not handed over {time.monotonic() - stopping:.1f}s after SIGTERM: {posts_partitions_by_member()}"
    )
    print(f"\nhandover after SIGTERM took {time.monotonic() - stopping:.1f}s")


def _hash_tag(key: str) -> str | None:
    """The part Redis Cluster hashes: between the first '{' and the next '}', if non-empty."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if start >= 0 and end > start + 1 else None


def test_timeline_redis_keys_carry_hash_tags(http, rdb):
    key_functions = {
        # A key of a pair (user, author) is the user's: the first id is its tag.
        name: functools.partial(lambda fn, user: fn(user, *[7] * (len(inspect.signature(fn).parameters) - 1)), fn)
        for name, fn in vars(entries).items()
        if name.endswith("_key") and callable(fn)
    }
    assert {home_key, author_key} <= {f.args[0] for f in key_functions.values()}

    # Each key names exactly one user (or author) in its tag, so all of one
    # user's keys share a slot: the multi-key scripts (home + seen, home +
    # celebrity cache) are legal on Redis Cluster.
    someone = 383316927067459584
    for name, fn in key_functions.items():
        assert _hash_tag(fn(someone)) == str(someone), f"{name}({someone}) = {fn(someone)!r}: no hash tag of the id"
    assert len({key_slot(fn(someone).encode()) for fn in key_functions.values()}) == 1

    # The running timeline service writes exactly these keys ...
    author, reader = sign_up(http, "ht"), sign_up(http, "ht")
    follow(http, reader, author)
    home_ids(http, reader)
    created = post(http, author, "tagged")
    assert wait_until(lambda: created["id"] in home_ids(http, reader), timeout=10.0)
    assert rdb.exists(home_key(int(reader.id))) and rdb.exists(author_key(int(author.id)))

    # ... and every key in Redis under the timeline's prefixes carries a tag.
    untagged: dict[str, list[str]] = {}
    for name, fn in key_functions.items():
        key = fn(someone)
        prefix = key[: key.index("{")]
        pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix) + "*"
        bad = [
            k.decode(errors="replace")
            for k in rdb.scan_iter(match=pattern, count=1000)
            if _hash_tag(k.decode(errors="replace")) is None
        ]
        if bad:
            untagged[name] = bad[:5]
    assert not untagged, f"timeline keys without a hash tag: {untagged}"
