"""One kind of read at a fixed rate, for the CPU it costs each component.

A short run for A/B comparisons (a config variant, a restarted service): it
reuses the users of a world `mixed_workload.py --world FILE` saved, signs in
a few of them (a second or two, not the mix's 300), and sends one read open
loop at --rps for --duration seconds. Latency counts from each request's
scheduled start. CPU per request is every devstack process's over the
measured window, net of the idle CPU measured just before (--idle-seconds).
Prints one JSON object.

--op rebuild reads each reader's home once, after their timeline and
activity mark were dropped from Redis (what a lost Redis leaves): every
read rebuilds a timeline from the posts store, --rps of them a second.

    .venv/bin/python bench/read_cost.py --op home --rps 150 --duration 20
    .venv/bin/python bench/read_cost.py --op user_posts --rps 100 --page-size 1
    .venv/bin/python bench/read_cost.py --op rebuild --users 300 --rps 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import redis.asyncio as redis
from loadgen import (
    cpu_ms_per_request,
    idle_cores,
    percentile,
    rounded,
    stack_cpu_seconds,
)
from mixed_workload import log_in
from services.kit.settings import Settings, load
from services.timeline.entries import home_key, seen_key

WORLD = Path(__file__).resolve().parents[1] / ".devstack" / "data" / "bench-social-world.json"
# A profile read looks at another user's page: an author's own view skips the
# per-replica copy of their newest post ids (services/posts, author_lists).
OTHER_AUTHOR_OFFSET = 50


def paths(op: str, users: list[dict], everyone: list[dict], page_size: int) -> list[str]:
    """One request path per signed-in user, in the same order."""
    if op in ("home", "rebuild"):
        return [f"/v1/timelines/home?pageSize={page_size}" for _ in users]
    by_id = {user["id"]: i for i, user in enumerate(everyone)}
    return [
        f"/v1/users/{everyone[(by_id[user['id']] + OTHER_AUTHOR_OFFSET) % len(everyone)]['id']}/posts"
        f"?pageSize={page_size}"
        for user in users
    ]


async def run(args: argparse.Namespace) -> dict:
    saved = json.loads(Path(args.world).read_text())
    everyone = saved["users"]
    async with aiohttp.ClientSession(args.url) as client:
        users = [await log_in(client, user) for user in everyone[: args.users]]
        targets = paths(args.op, users, everyone, args.page_size)
        latencies: list[float] = []
        errors: dict[str, int] = {}

        async def one(i: int, scheduled: float) -> None:
            async with client.get(targets[i % len(users)], headers=users[i % len(users)]["auth"]) as reply:
                await reply.read()
                if reply.status != 200:
                    errors[str(reply.status)] = errors.get(str(reply.status), 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        # Warm the connections and the services' caches, unmeasured.
        await asyncio.gather(*(one(i, time.perf_counter()) for i in range(min(100, args.warmup))))
        latencies.clear()
        errors.clear()
        idle = await idle_cores(args.idle_seconds)
        count = int(args.rps * args.duration)
        if args.op == "rebuild":
            await drop_timelines([int(user["id"]) for user in users])
            count = len(users)
        before, started = stack_cpu_seconds(), time.perf_counter()
        tasks = []
        for i in range(count):
            scheduled = started + i / args.rps
            if (delay := scheduled - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        after = stack_cpu_seconds()
    latencies.sort()
    cpu = cpu_ms_per_request(before, after, count, idle, elapsed)
    return {
        "op": args.op,
        "target_rps": args.rps,
        "rps": round(count / elapsed, 1),
        "count": count,
        "errors": errors,
        "p50_ms": rounded(_ms(percentile(latencies, 0.50))),
        "p95_ms": rounded(_ms(percentile(latencies, 0.95))),
        "p99_ms": rounded(_ms(percentile(latencies, 0.99))),
        "cpu_ms_per_request": cpu,
        "per_envoy": per_envoy(cpu.get("by_component_net_of_idle", cpu["by_component"])),
        "config": {k: v for k, v in vars(args).items()},
    }


async def drop_timelines(user_ids: list[int]) -> None:
    """Deletes the readers' home timelines and activity marks from the stack's Redis."""
    client = redis.Redis.from_url(load(Settings).redis_url)
    try:
        await client.unlink(*(key for user_id in user_ids for key in (home_key(user_id), seen_key(user_id))))
    finally:
        await client.aclose()


def per_envoy(ms_by_component: dict[str, float]) -> dict[str, float]:
    """Each component's CPU per request over Envoy's in the same run. Envoy's
    work for a read does not change with a service's code or settings, while
    the machine's speed can drift between runs minutes apart: an A/B of a
    service compares these ratios rather than milliseconds."""
    envoy = ms_by_component.get("envoy")
    if not envoy:
        return {}
    return {name: round(ms / envoy, 3) for name, ms in ms_by_component.items() if name != "envoy"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--op", choices=("home", "user_posts", "rebuild"), default="home")
    parser.add_argument("--rps", type=float, default=150.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=20, help="signed-in readers, taken in turn")
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first (at most 100)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU measured first (0: none)")
    parser.add_argument("--world", default=str(WORLD), help="a world mixed_workload.py --world saved")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    args = parser.parse_args()
    if args.rps <= 0 or args.duration <= 0 or args.users <= 0 or args.page_size <= 0:
        parser.error("--rps, --duration, --users and --page-size must be > 0")
    if not Path(args.world).exists():
        sys.exit(
            f"{args.world} does not exist: run bench/mixed_workload.py --world {args.world} first (make bench-social)"
        )
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
