"""What a delivery into a home timeline costs Redis, by how full the timelines are.

Starts a scratch `redis-server` with the zset settings the devstack's Redis
runs with (read from it: `make up` first), marks --users users active, fills
each home timeline with --fill entries, then delivers --entries new posts to
all of them through timeline's own store (`TimelineStore.add_to_homes`, the
script and batching fanout's deliveries use). Prints one JSON object: per
fill, Redis's CPU per delivery (µs, from /proc), deliveries per second from
this one client, `INFO commandstats` per delivery and a timeline's bytes;
then, for the fullest fill, a plain ZADD of the newest post against one of
an older post (`insert_position`).

    .venv/bin/python bench/delivery_cost.py --fill 0,400,790
    .venv/bin/python bench/delivery_cost.py --listpack-entries 128   # full timelines as skiplists
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis
from loadgen import process_cpu_seconds

from services.kit.settings import load
from services.timeline.entries import Entry, entry_member, home_key, seen_key
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore

# Posts by this made-up author; its ids only need to grow.
AUTHOR = 7
ZSET_SETTINGS = ("zset-max-listpack-entries", "zset-max-listpack-value")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _zset_settings(url: str, listpack_entries: int | None) -> list[str]:
    """The devstack Redis's zset encoding settings as redis-server arguments,
    with `listpack_entries` in place of its own when given."""
    try:
        stack = redis.Redis.from_url(url, decode_responses=True)
        found = {name: stack.config_get(name)[name] for name in ZSET_SETTINGS}
    except redis.RedisError as exc:
        raise SystemExit(f"the devstack's Redis does not answer ({exc}): make up first")
    if listpack_entries is not None:
        found["zset-max-listpack-entries"] = str(listpack_entries)
    return [arg for name, value in found.items() for arg in (f"--{name}", value)]


def _command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and µs per command so far."""
    return {
        name.removeprefix("cmdstat_"): (stat["calls"], stat["usec"])
        for name, stat in client.info("commandstats").items()
    }


def _fill(client: redis.Redis, users: range, fill: int, first_post: int) -> int:
    """Marks the users active and gives each `fill` entries; returns the next post id."""
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.set(seen_key(user), 1, ex=7 * 86_400)
        if fill:
            members = [entry_member(Entry(first_post + i, AUTHOR)) for i in range(fill)]
            pipe.zadd(home_key(user), dict.fromkeys(members, 0))
            pipe.expire(home_key(user), 7 * 86_400)
        if len(pipe) >= 3_000:
            pipe.execute()
    pipe.execute()
    return first_post + fill


async def _deliver(store: TimelineStore, users: list[int], entries: int, first_post: int) -> float:
    """Wall seconds to deliver `entries` posts to every user, one post after another."""
    started = time.perf_counter()
    for post_id in range(first_post, first_post + entries):
        delivered = await store.add_to_homes(Entry(post_id, AUTHOR), users)
        if delivered != len(users):
            raise SystemExit(f"post {post_id} reached {delivered} of {len(users)} timelines")
    return time.perf_counter() - started


def _zadd_us(client: redis.Redis, pid: int, users: range, post_ids: range) -> float:
    """Redis CPU per plain ZADD (pipelined, no script) of these posts into every user's timeline."""
    cpu_before = process_cpu_seconds(pid)
    for post_id in post_ids:
        pipe = client.pipeline(transaction=False)
        for user in users:
            pipe.zadd(home_key(user), {entry_member(Entry(post_id, AUTHOR)): 0})
        pipe.execute()
    return round((process_cpu_seconds(pid) - cpu_before) / (len(users) * len(post_ids)) * 1e6, 2)


def insert_position(client: redis.Redis, pid: int, users: range, fill: int, entries: int) -> dict:
    """A full timeline's ZADD by where the member lands: members sort newest
    first, so a new post lands before every member held, an older one (a
    follow's backfill) after them. A listpack insert walks from the head to
    its place."""
    client.flushall()
    first_held = 1_000_000
    newest = _fill(client, users, fill, first_post=first_held)
    return {
        "fill": fill,
        "zadd_us_newest_post": _zadd_us(client, pid, users, range(newest, newest + entries)),
        # Each older than everything held, so each lands at the tail.
        "zadd_us_older_post": _zadd_us(client, pid, users, range(first_held - 1, first_held - 1 - entries, -1)),
    }


async def measure(args: argparse.Namespace, port: int, pid: int) -> list[dict]:
    os.environ["AVIARY_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    store = TimelineStore(load(TimelineSettings))
    client = redis.Redis(port=port)
    users = list(range(1, args.users + 1))
    runs = []
    try:
        for fill in args.fill:
            client.flushall()
            next_post = _fill(client, range(1, args.users + 1), fill, first_post=1_000_000)
            await _deliver(store, users, 2, next_post)  # load the script, open the connections
            next_post += 2
            client.config_resetstat()
            cpu_before = process_cpu_seconds(pid)
            wall = await _deliver(store, users, args.entries, next_post)
            cpu = process_cpu_seconds(pid) - cpu_before
            deliveries = args.users * args.entries
            stats = _command_stats(client)
            held = client.zcard(home_key(users[0]))
            runs.append(
                {
                    "fill": fill,
                    "held_after": held,
                    "encoding": client.object("encoding", home_key(users[0])).decode(),
                    "bytes_per_timeline": client.memory_usage(home_key(users[0])),
                    "deliveries": deliveries,
                    "redis_cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2),
                    "deliveries_per_s": round(deliveries / wall),
                    "commandstats_us_per_delivery": {
                        name: round(usec / deliveries, 2)
                        for name, (_, usec) in sorted(stats.items(), key=lambda kv: -kv[1][1])
                        if usec / deliveries >= 0.01
                    },
                }
            )
    finally:
        await store.close()
    return runs


def measure_all(args: argparse.Namespace, port: int, pid: int) -> dict:
    runs = asyncio.run(measure(args, port, pid))
    client = redis.Redis(port=port)
    return {
        "runs": runs,
        "insert_position": insert_position(client, pid, range(1, args.users + 1), max(args.fill), args.entries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5_000, help="home timelines delivered to (default %(default)s)")
    parser.add_argument("--entries", type=int, default=20, help="posts delivered to each (default %(default)s)")
    parser.add_argument(
        "--fill",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 100, 400, 790],
        help="entries each timeline holds before, comma-separated (default 0,100,400,790)",
    )
    parser.add_argument("--stack-redis", default="redis://127.0.0.1:6379/0", help="whose zset settings to copy")
    parser.add_argument(
        "--listpack-entries",
        type=int,
        help="zset-max-listpack-entries for the scratch server instead of the stack's (a smaller "
        "value keeps full timelines as skiplists)",
    )
    args = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed: make up first")
    port = _free_port()
    zset = _zset_settings(args.stack_redis, args.listpack_entries)
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *zset]
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.Popen([*argv, "--dir", scratch], stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            measured = measure_all(args, port, proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    settings = dict(zip(ZSET_SETTINGS, zset[1::2]))
    print(
        json.dumps(
            {"bench": "delivery_cost", "users": args.users, "entries": args.entries, "zset": settings, **measured}
        )
    )


if __name__ == "__main__":
    main()
