"""Home-timeline read load through Envoy at a fixed request rate.

Seeds a graph over the public API (readers following a set of authors, one of
them a celebrity above the fanout threshold so reads exercise the merge), then
issues GET /v1/timelines/home open-loop at --rps for --duration seconds.
Latency is measured from each request's scheduled start, so a slow server
cannot hide queueing (no coordinated omission). Prints one JSON object:
{rps, p50_ms, p95_ms, p99_ms, errors, ...}.

    .venv/bin/python bench/timeline_reads.py --rps 300 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import time

import aiohttp
from loadgen import fresh_tokens, signed_in

try:  # a faster event loop keeps the load generator's own CPU share small
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

PASSWORD = "bench password 1"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


async def sign_up(client: aiohttp.ClientSession, prefix: str) -> dict:
    username = f"{prefix}_{secrets.token_hex(5)}"[:15]
    async with client.post("/v1/accounts", json={"username": username, "password": PASSWORD}) as r:
        r.raise_for_status()
        body = await r.json()
    return {"id": body["user"]["id"], "auth": signed_in(body)}


async def call(client: aiohttp.ClientSession, method: str, path: str, **kwargs) -> int:
    async with client.request(method, path, **kwargs) as r:
        await r.read()
        return r.status


async def seed(client: aiohttp.ClientSession, readers: int, authors: int, posts_per_author: int) -> list[dict]:
    sem = asyncio.Semaphore(8)

    async def limited(coro):
        async with sem:
            return await coro

    author_accounts = await asyncio.gather(*(limited(sign_up(client, "ba")) for _ in range(authors)))
    reader_accounts = await asyncio.gather(*(limited(sign_up(client, "br")) for _ in range(readers)))
    celebrity = author_accounts[0]
    follows = []
    for i, reader in enumerate(reader_accounts):
        # Everyone follows the celebrity (merged at read time) and three
        # ordinary authors (spread round-robin).
        follows.append((reader, celebrity))
        for j in range(1, min(4, authors)):
            author = author_accounts[1 + (i * 3 + j) % (authors - 1)]
            follows.append((reader, author))
    statuses = await asyncio.gather(
        *(limited(call(client, "PUT", f"/v1/users/me/following/{a['id']}", headers=r["auth"])) for r, a in follows)
    )
    assert set(statuses) == {200}, f"follow statuses {set(statuses)}"
    posts = [
        limited(call(client, "POST", "/v1/posts", json={"text": f"bench post {n} #bench"}, headers=a["auth"]))
        for a in author_accounts
        for n in range(posts_per_author)
    ]
    statuses = await asyncio.gather(*posts)
    assert set(statuses) == {200}, f"post statuses {set(statuses)}"
    await asyncio.sleep(2)  # let fanout drain before measuring reads
    return reader_accounts


async def run_load(
    client: aiohttp.ClientSession, readers: list[dict], rps: float, duration: float, page_size: int
) -> dict:
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    interval = 1.0 / rps
    total = int(rps * duration)
    start = time.perf_counter() + 0.1

    async def one(scheduled: float) -> None:
        nonlocal errors
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        reader = random.choice(readers)
        try:
            status = await call(
                client, "GET", "/v1/timelines/home", params={"pageSize": page_size}, headers=reader["auth"]
            )
            key = str(status)
            if status != 200:
                errors += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            key = type(exc).__name__
            errors += 1
        statuses[key] = statuses.get(key, 0) + 1
        latencies.append((time.perf_counter() - scheduled) * 1000)

    tasks = [asyncio.create_task(one(start + i * interval)) for i in range(total)]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "errors": errors,
        "requests": total,
        "target_rps": rps,
        "duration_s": round(elapsed, 1),
        "statuses": statuses,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("AVIARY_EDGE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--rps", type=float, default=300)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--authors", type=int, default=60)
    parser.add_argument("--posts-per-author", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load before measuring")
    args = parser.parse_args()

    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(base_url=args.url, connector=connector, timeout=timeout) as client,
        fresh_tokens(client),
    ):
        t0 = time.perf_counter()
        readers = await seed(client, args.readers, args.authors, args.posts_per_author)
        print(f"seeded {len(readers)} readers in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        if args.warmup > 0:
            await run_load(client, readers, args.rps, args.warmup, args.page_size)
        result = await run_load(client, readers, args.rps, args.duration, args.page_size)
    result["page_size"] = args.page_size
    result["readers"] = len(readers)
    print(json.dumps(result))


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main())
