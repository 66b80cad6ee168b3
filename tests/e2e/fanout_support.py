"""Helpers for the fanout end-to-end tests (test_fanout_faults, test_fanout_scaleout).

They look at the real stack from outside: the devstack CLI, the Kafka consumer
groups, a fanout worker's Prometheus counters, and a follower's home timeline
both as Envoy serves it (every page) and as Redis holds it (what fanout
materialized, so a read-time rebuild cannot hide a lost delivery).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.fanout.worker import CONSUMER_GROUP as FANOUT_GROUP
from services.kit.settings import load_settings
from services.kit.events.kafka import POSTS_TOPIC, TOPICS
from services.posts.store import _author_key
from services.timeline.entries import decode_member, home_key
from tests.e2e.edge import Account, post, wait_until

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".devstack"
# Every consumer group later tests rely on (as in test_durability).
CONSUMER_GROUPS = ["fanout", "engagement", "notifications"]
DELIVERED_METRIC = "aviary_fanout_timelines_delivered_total"


# --- devstack ------------------------------------------------------------------------


def devstack(*args: str, **settings: str) -> None:
    """Runs the devstack CLI; `settings` (AVIARY_* variables) reach the services it starts."""
    done = subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **settings},
    )
    assert done.returncode == 0, f"devstack {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def pid_info(name: str) -> dict | None:
    try:
        return json.loads((STATE / "run" / f"{name}.pid").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def signal_service(name: str, sig: int) -> None:
    """Sends `sig` to a devstack process (SIGSTOP hangs it: calls to it wait)."""
    info = pid_info(name)
    assert info is not None, f"{name} is not running"
    os.kill(info["pid"], sig)


def process_gone(pid: int) -> bool:
    """True once pid has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Kafka ---------------------------------------------------------------------------


def _admin():
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=load_settings().kafka_bootstrap, request_timeout_ms=5000)


def describe_groups(groups: list[str]) -> dict | None:
    """kafka-python's describe_groups answer, or None while Kafka does not answer."""
    try:
        admin = _admin()
    except Exception:
        return None
    try:
        return admin.describe_groups(groups)
    except Exception:
        return None
    finally:
        admin.close()


def consumer_groups_stable(groups: list[str] = CONSUMER_GROUPS) -> bool:
    described = describe_groups(groups)
    return bool(described) and all(described[g]["group_state"] == "Stable" and described[g]["members"] for g in groups)


def assert_consumer_groups_rejoin(timeout: float, groups: list[str] = CONSUMER_GROUPS) -> None:
    """Waits for every group to be Stable with members. If one never is, its
    service (named as the group) is asked for its threads' stacks (SIGUSR1,
    see services/kit/server/service.py), which land in its log, named in the
    failure: where a stuck consumer poller shows what it waits on."""
    if wait_until(lambda: consumer_groups_stable(groups), timeout=timeout, interval=0.5):
        return
    described = describe_groups(groups) or {}
    stuck = [
        g
        for g in groups
        if not (g in described and described[g]["group_state"] == "Stable" and described[g]["members"])
    ]
    for group in stuck:
        info = pid_info(group)
        if info is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(info["pid"]), signal.SIGUSR1)
    logs = ", ".join(str(STATE / "logs" / f"{g}.log") for g in stuck)
    raise AssertionError(f"consumer groups did not rejoin: {stuck or groups}; their threads' stacks: {logs}")


def posts_partitions_by_member(group: str = FANOUT_GROUP) -> list[set[int]] | None:
    """Partitions of the posts topic each member owns, when the group is Stable."""
    described = describe_groups([group])
    if not described or described[group]["group_state"] != "Stable":
        return None
    owned = []
    for member in described[group]["members"]:
        assignment = member.get("member_assignment") or {}
        parts: set[int] = set()
        for topic in assignment.get("assigned_partitions", []):
            if topic["topic"] == POSTS_TOPIC:
                parts.update(topic["partitions"])
        owned.append(parts)
    return owned


def posts_partition_of(author: Account) -> int:
    """The posts-topic partition an author's events land on (the producer's
    default partitioner on posts' own key), as Kafka's clients compute it."""
    from kafka.partitioner.default import murmur2

    return (murmur2(_author_key(int(author.id))) & 0x7FFFFFFF) % TOPICS[POSTS_TOPIC]


def _end_offsets(topics: list[str]) -> dict:
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    admin = _admin()
    try:
        specs = {TopicPartition(t, p): OffsetSpec.LATEST for t in topics for p in range(TOPICS[t])}
        return {tp: found.offset for tp, found in admin.list_partition_offsets(specs).items()}
    finally:
        admin.close()


def _committed_offsets(group: str) -> dict:
    admin = _admin()
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}
    finally:
        admin.close()


def wait_group_caught_up(topics: list[str], group: str = FANOUT_GROUP, timeout: float = 30.0) -> None:
    """Waits until the group has committed past everything written to the
    topics by now (later traffic from anyone else does not matter)."""
    target = _end_offsets(topics)
    deadline = time.monotonic() + timeout
    behind: dict = {}
    while time.monotonic() < deadline:
        try:
            committed = _committed_offsets(group)
        except Exception:
            committed = {}
        behind = {
            f"{tp.topic}/{tp.partition}": (committed.get(tp, 0), end)
            for tp, end in target.items()
            if end > committed.get(tp, 0)
        }
        if not behind:
            return
        time.sleep(0.2)
    raise AssertionError(f"consumer group {group} did not catch up within {timeout:.0f}s (committed, target): {behind}")


# --- a worker's metrics --------------------------------------------------------------


def counter_value(metrics_port: int, name: str = DELIVERED_METRIC, **labels: str) -> float:
    """Sum of a counter's samples (matching labels) on a process's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5.0).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# --- posting and reading -------------------------------------------------------------


def post_many(http: httpx.Client, jobs: list[tuple[Account, str]], workers: int = 16) -> list[tuple[Account, str]]:
    """Creates the posts concurrently; returns (author, post id) per job."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        created = list(pool.map(lambda job: post(http, job[0], job[1]), jobs))
    return [(author, body["id"]) for (author, _), body in zip(jobs, created)]


def home_timeline_all(http: httpx.Client, reader: Account, page_size: int = 20, max_pages: int = 100) -> list[str]:
    """Every post id on the reader's home timeline, following page tokens to the end."""
    ids: list[str] = []
    token = ""
    for _ in range(max_pages):
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        r = http.get("/v1/timelines/home", params=params, headers=reader.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        ids.extend(p["id"] for p in body.get("posts", []))
        token = body.get("nextPageToken", "")
        if not token:
            return ids
    raise AssertionError(f"home timeline of {reader.username} still had more pages after {max_pages}")


def materialized_ids(rdb, reader: Account) -> list[str]:
    """Post ids in the reader's home timeline as Redis holds it, one per member."""
    return [str(decode_member(m).post_id) for m in rdb.zrange(home_key(int(reader.id)), 0, -1)]


def duplicates(ids: list[str]) -> dict[str, int]:
    return {i: n for i, n in Counter(ids).items() if n > 1}


def timeline_problems(expected: dict[str, set[str]], got: dict[str, list[str]]) -> list[str]:
    """Per reader: posts missing, posts that should not be there, posts shown twice."""
    problems = []
    for reader, want in expected.items():
        ids = got[reader]
        missing, extra, twice = want - set(ids), set(ids) - want, duplicates(ids)
        if missing or extra or twice:
            problems.append(
                f"{reader}: {len(ids)} ids for {len(want)} posts; missing {len(missing)} "
                f"{sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}, twice {twice}"
            )
    return problems


def fanned_out(log_path: Path, offset: int, post_ids: set[str]) -> list[tuple[str, int]]:
    """(post id, timelines) of each 'fanned out post' line a worker logged for
    these posts after byte `offset` of its log, in log order."""
    found = []
    with open(log_path, "rb") as f:
        f.seek(offset)
        for line in f:
            if b'"fanned out post"' not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("kind") == "post_created" and str(doc.get("post_id")) in post_ids:
                found.append((str(doc["post_id"]), int(doc.get("timelines", 0))))
    return found
