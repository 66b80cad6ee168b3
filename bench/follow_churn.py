"""Follow churn through Envoy: do posts wait behind follows and unfollows?

Seeds over the public API a reader following one ordinary author, and
--churners accounts, each with a target account it alone follows and
unfollows, shared by TARGET_SHARED churners (each target posts --target-posts
posts, so every follow copies posts in and every unfollow purges them; with
at most TARGET_SHARED followers no target crosses the devstack's celebrity
threshold of 3). Every account reads its home once, so its timeline is
materialized. After the stack has digested the seed, for --duration s:
  - the churners follow and unfollow their targets, open-loop at
    --changes-per-sec in all (each churner alternating, a few a second);
  - the author posts --posts-per-sec, and the time from each post's
    acknowledgement to its arrival on the reader's home watch stream
    (GET /v1/timelines/home:watch, pushed by the same write that puts it in
    the home timeline) is the delivery latency.
Then (--burst, 0 to skip) the fanout worker's capacity: --burst follow and
unfollow events of the churners' pairs are written straight to the graph
topic, as fast as a producer can (follows of distinct pairs, then their
unfollows, so timelines end in the state graph holds), and the
worker's applied-changes counter is read until all are applied, while the
author goes on posting (their delivery latency meanwhile is reported too).

Prints one JSON object: delivery p50/p95/p99/max seconds (from acknowledged,
and from issued), posts lost, follow changes sent and refused, the graph
events the fanout worker applied per second during the churn and in the
burst, and CPU per process (cores, from /proc) during the churn.

    .venv/bin/python bench/follow_churn.py          # or: make bench-churn
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "gen"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
from fanout_scale import cpu_seconds  # noqa: E402
from loadgen import (  # noqa: E402
    fresh_tokens,
    percentile,
    rounded,
    seed_call,
    signed_in,
    stack_fanout_threshold,
    wait_for_consumers,
)

from services.graph.rules import follow_event  # noqa: E402
from services.kit.events.kafka import GRAPH_TOPIC, Producer  # noqa: E402
from services.kit.settings import SERVICE_PORTS, load_settings  # noqa: E402

PASSWORD = "bench password 1"
# Churners sharing one target: its followers at most (the devstack's fanout threshold is 3).
TARGET_SHARED = 3
TARGET_P99_S = 1.0
TARGET_APPLIED_PER_S = 1000.0
APPLIED_METRIC = "aviary_fanout_follow_changes_applied_total"
PROCESSES = ["fanout", "timeline", "graph", "gateway", "envoy", "posts", "redis", "kafka", "cassandra"]


@dataclass
class Account:
    id: str
    auth: dict


@dataclass
class Churner:
    me: Account
    target: Account
    following: bool = False
    busy: bool = False


@dataclass
class Results:
    from_ack: list[float] = field(default_factory=list)
    from_issue: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    post_errors: Counter = field(default_factory=Counter)
    changes_sent: int = 0
    changes_skipped: int = 0  # the churner's previous change still under way
    change_errors: Counter = field(default_factory=Counter)
    change_ms: list[float] = field(default_factory=list)


async def sign_up(client: aiohttp.ClientSession, prefix: str, tries: int = 8) -> Account:
    """A new account; a sign-up cut off by a busy machine (password hashing
    is costly) is tried again under another name."""
    status = 0
    for _ in range(tries):
        name = f"{prefix}_{secrets.token_hex(5)}"
        async with client.post("/v1/accounts", json={"username": name, "password": PASSWORD}) as r:
            status, body = r.status, await r.read()
        if status == 200:
            return Account(json.loads(body)["user"]["id"], signed_in(json.loads(body)))
        if status not in (429, 499, 503, 504):
            raise SystemExit(f"sign-up -> {status}: {body[:300]!r}")
        await asyncio.sleep(1.0)
    raise SystemExit(f"sign-up kept failing ({status})")


async def post(client: aiohttp.ClientSession, who: Account, text: str) -> dict:
    return await seed_call(client, "POST", "/v1/posts", json={"text": text}, headers=who.auth)


async def seed(client: aiohttp.ClientSession, args) -> tuple[Account, Account, list[Churner]]:
    gate = asyncio.Semaphore(8)

    async def limited(coro):
        async with gate:
            return await coro

    reader, author = await sign_up(client, "fcr"), await sign_up(client, "fca")
    await seed_call(client, "PUT", f"/v1/users/me/following/{author.id}", headers=reader.auth)
    churners = await asyncio.gather(*(limited(sign_up(client, "fcc")) for _ in range(args.churners)))
    targets = await asyncio.gather(*(limited(sign_up(client, "fct")) for _ in range(0, args.churners, TARGET_SHARED)))
    await asyncio.gather(
        *(limited(post(client, t, f"churn target post {i}")) for t in targets for i in range(args.target_posts))
    )
    # A home read marks the reader active: only active timelines are written.
    await asyncio.gather(
        *(
            limited(seed_call(client, "GET", "/v1/timelines/home?pageSize=1", headers=a.auth))
            for a in [reader, *churners]
        )
    )
    return reader, author, [Churner(c, targets[i // TARGET_SHARED]) for i, c in enumerate(churners)]


async def watch(client: aiohttp.ClientSession, reader: Account, arrived: dict, opened: asyncio.Event) -> None:
    """Notes when each post reaches the reader's home, until cancelled."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with client.get("/v1/timelines/home:watch", headers=reader.auth, timeout=timeout) as r:
        if r.status != 200:
            raise SystemExit(f"watch -> {r.status}: {(await r.read())[:200]!r}")
        opened.set()
        async for line in r.content:
            if line.strip():
                pushed = json.loads(line).get("post")
                if pushed:
                    arrived.setdefault(pushed["id"], time.perf_counter())


async def probe(client, author: Account, at: float, arrived: dict, timeout: float, results: Results) -> None:
    """One post at its scheduled time, then waits for it on the watch."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    issued = time.perf_counter()
    try:
        async with client.post("/v1/posts", json={"text": "churn probe"}, headers=author.auth) as r:
            status, body = r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        results.post_errors[type(exc).__name__] += 1
        return
    acknowledged = time.perf_counter()
    if status != 200:
        results.post_errors[str(status)] += 1
        return
    post_id = body["id"]
    while post_id not in arrived and time.perf_counter() - acknowledged < timeout:
        await asyncio.sleep(0.005)
    if post_id in arrived:
        results.from_ack.append(max(0.0, arrived[post_id] - acknowledged))
        results.from_issue.append(arrived[post_id] - issued)
    else:
        results.lost.append(post_id)


async def change(client, churner: Churner, at: float, results: Results) -> None:
    """Follows or unfollows the churner's target at its scheduled time (skipped
    while its previous change is still under way, so each stays a toggle)."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    if churner.busy:
        results.changes_skipped += 1
        return
    churner.busy = True
    method = "DELETE" if churner.following else "PUT"
    started = time.perf_counter()
    try:
        async with client.request(method, f"/v1/users/me/following/{churner.target.id}", headers=churner.me.auth) as r:
            await r.read()
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        results.change_errors[type(exc).__name__] += 1
        return
    finally:
        churner.busy = False
    results.changes_sent += 1
    results.change_ms.append((time.perf_counter() - started) * 1000)
    if status == 200:
        churner.following = not churner.following
    else:
        results.change_errors[str(status)] += 1


async def applied_total(client: aiohttp.ClientSession) -> float:
    async with client.get(f"http://127.0.0.1:{SERVICE_PORTS['fanout'] + 1000}/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(APPLIED_METRIC))


async def burst(client: aiohttp.ClientSession, churners: list[Churner], count: int, timeout: float) -> dict:
    """`count` graph events straight to Kafka: follows of count/2 distinct
    pairs (a churner and another churner's target, whose posts a follow
    copies in), then their unfollows (which purge them again, so timelines
    end as graph has them); how fast the fanout worker applies them. Distinct
    pairs: a pair repeated within one batch would be applied once."""
    now = datetime.datetime.now(datetime.timezone.utc)
    targets = list({c.target.id: c.target for c in churners}.values())
    pairs = [(c.me, t) for t in targets for c in churners if t is not c.target][: count // 2]
    records = []
    for created in (True, False):
        for follower, followee in pairs:
            event_id = (1 << 61) + secrets.randbits(48)
            _, key, payload = follow_event(event_id, int(follower.id), int(followee.id), created, now)
            records.append((GRAPH_TOPIC, key, payload))
    before = await applied_total(client)
    producer = Producer(load_settings().kafka_bootstrap)
    started = time.perf_counter()
    try:
        await producer.send_all(records)
    finally:
        await producer.close()
    sent = time.perf_counter()
    first_seen = None
    while time.perf_counter() - started < timeout:
        applied = await applied_total(client) - before
        if applied > 0 and first_seen is None:
            first_seen = time.perf_counter()
        if applied >= len(records):
            done = time.perf_counter()
            return {
                "events": len(records),
                "send_s": rounded(sent - started, 2),
                "seconds_from_send": rounded(done - started, 2),
                "applied_per_s": rounded(len(records) / (done - started), 1),
                "applied_per_s_once_flowing": rounded(len(records) / max(1e-3, done - (first_seen or started)), 1),
            }
        await asyncio.sleep(0.05)
    return {"events": len(records), "applied": await applied_total(client) - before, "timed_out_s": timeout}


def seconds(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50_s": rounded(percentile(ordered, 0.50), 3),
        "p95_s": rounded(percentile(ordered, 0.95), 3),
        "p99_s": rounded(percentile(ordered, 0.99), 3),
        "max_s": rounded(ordered[-1] if ordered else None, 3),
    }


async def run(args) -> dict:
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(args.url, connector=connector) as client, fresh_tokens(client):
        reader, author, churners = await seed(client, args)
        settle = await wait_for_consumers(client, timeout=args.settle_timeout)
        arrived: dict[str, float] = {}
        opened = asyncio.Event()
        watcher = asyncio.create_task(watch(client, reader, arrived, opened))
        try:
            await asyncio.wait_for(opened.wait(), 10)
            warm = await post(client, author, "churn warm-up")
            started = time.perf_counter()
            while warm["id"] not in arrived:
                if time.perf_counter() - started > args.timeout * 6:
                    raise SystemExit("warm-up post never reached the reader: is fanout consuming?")
                await asyncio.sleep(0.05)
            results = Results()
            cpu_before, applied_before = cpu_seconds(PROCESSES), await applied_total(client)
            begin = time.perf_counter() + 0.5
            changes = int(args.changes_per_sec * args.duration)
            posts = int(args.posts_per_sec * args.duration)
            tasks = [
                *(
                    change(client, churners[k % len(churners)], begin + k / args.changes_per_sec, results)
                    for k in range(changes)
                ),
                *(
                    probe(client, author, begin + k / args.posts_per_sec, arrived, args.timeout, results)
                    for k in range(posts)
                ),
            ]
            await asyncio.gather(*tasks)
            window = time.perf_counter() - begin
            cpu_after, applied_after = cpu_seconds(PROCESSES), await applied_total(client)
            capacity = None
            if args.burst:
                # Posts keep coming while the burst is applied: they must not wait for it.
                during = Results()
                applying = asyncio.create_task(burst(client, churners, args.burst, args.burst_timeout))
                probes = []
                while not applying.done():
                    probes.append(
                        asyncio.create_task(probe(client, author, time.perf_counter(), arrived, args.timeout, during))
                    )
                    await asyncio.sleep(1.0 / max(args.posts_per_sec, 2.0))
                await asyncio.gather(*probes)
                capacity = {
                    **await applying,
                    "delivery_from_acknowledged": {**seconds(during.from_ack), "count": len(during.from_ack)},
                    "posts_lost": len(during.lost),
                }
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    return {
        "settings": {
            "changes_per_sec": args.changes_per_sec,
            "posts_per_sec": args.posts_per_sec,
            "duration_s": args.duration,
            "churners": args.churners,
            "target_posts": args.target_posts,
            "fanout_threshold": stack_fanout_threshold(),
        },
        "settle": settle,
        "delivery_from_acknowledged": {**seconds(results.from_ack), "count": len(results.from_ack)},
        "delivery_from_issued": seconds(results.from_issue),
        "posts_lost": len(results.lost),
        "post_errors": dict(results.post_errors),
        "follow_changes": {
            "sent": results.changes_sent,
            "per_s": rounded(results.changes_sent / window, 1),
            "skipped_busy": results.changes_skipped,
            "errors": dict(results.change_errors),
            "p50_ms": rounded(percentile(sorted(results.change_ms), 0.5), 1),
            "p99_ms": rounded(percentile(sorted(results.change_ms), 0.99), 1),
        },
        "graph_events_applied_per_s": rounded((applied_after - applied_before) / window, 1),
        "burst": capacity,
        "cpu_cores": {
            name: rounded((cpu_after[name] - cpu_before[name]) / window, 3)
            for name in PROCESSES
            if name in cpu_before and name in cpu_after
        },
        "targets": {
            "delivery_p99_s": TARGET_P99_S,
            "graph_events_applied_per_s": TARGET_APPLIED_PER_S,
            "met": bool(
                results.from_ack
                and not results.lost
                and (percentile(sorted(results.from_ack), 0.99) or 0) < TARGET_P99_S
                and capacity is not None
                and (capacity.get("applied_per_s") or 0) >= TARGET_APPLIED_PER_S
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("AVIARY_EDGE_URL", "http://127.0.0.1:8080"),
        help="Envoy base URL (default: $AVIARY_EDGE_URL or %(default)s)",
    )
    parser.add_argument("--changes-per-sec", type=float, default=200.0, help="follows and unfollows a second, in all")
    parser.add_argument("--posts-per-sec", type=float, default=1.0, help="the measured author's posts a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of churn (default %(default)s)")
    parser.add_argument(
        "--churners", type=int, default=300, help="accounts that follow and unfollow (default %(default)s)"
    )
    parser.add_argument(
        "--target-posts", type=int, default=5, help="posts of each churner's target (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a post may take to arrive (default %(default)s)"
    )
    parser.add_argument("--burst", type=int, default=10_000, help="graph events written straight to Kafka; 0: none")
    parser.add_argument("--burst-timeout", type=float, default=120.0, help="seconds the burst may take")
    parser.add_argument("--settle-timeout", type=float, default=240.0, help="seconds to wait for consumers to catch up")
    parser.add_argument("--connections", type=int, default=200, help="HTTP connections at most (default %(default)s)")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
