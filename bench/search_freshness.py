"""Search freshness through Envoy: seconds from a post being acknowledged to
it being found by GET /v1/search/posts.

Signs up --users users, warms the pipeline (one post, waited for until found:
the indexer may still be joining its consumer group), then creates --posts
posts at a steady --rate per second, round-robin over the users, each with a
word of its own. From each acknowledgement on, the post's word is searched
every --poll seconds (all posts concurrently, each poll as the post's author,
so the per-user read limits are not reached) until the post is in the results
or --timeout passes. The whole path is measured: posts' outbox relay to Kafka,
the search indexer, OpenSearch's refresh, the query and hydration; the
resolution is one poll interval plus one search request.

Prints one JSON object: count, found, not_found, p50/p95/p99/max/mean seconds
from acknowledged to searchable (found posts), target_p95_s 2.0 and whether
it was met (p95 under target and nothing missing), plus POST latency and
search-request errors.

    .venv/bin/python bench/search_freshness.py --posts 200        # or: make bench-search
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from loadgen import fresh_tokens, percentile, rounded, seed_call, signed_in

PASSWORD = "bench password 1"
TARGET_P95_S = 2.0


@dataclass
class User:
    id: str
    auth: dict


@dataclass
class Results:
    freshness: list[float] = field(default_factory=list)  # seconds, found posts
    post_latency: list[float] = field(default_factory=list)
    not_found: int = 0
    post_errors: Counter = field(default_factory=Counter)
    search_errors: Counter = field(default_factory=Counter)
    searches: int = 0


async def sign_up(client: aiohttp.ClientSession) -> User:
    name = f"sf_{secrets.token_hex(5)}"
    body = await seed_call(client, "POST", "/v1/accounts", json={"username": name, "password": PASSWORD})
    return User(body["user"]["id"], signed_in(body))


async def found(client: aiohttp.ClientSession, user: User, word: str, post_id: str, results: Results) -> bool:
    results.searches += 1
    try:
        async with client.get("/v1/search/posts", params={"q": word}, headers=user.auth) as r:
            if r.status != 200:
                results.search_errors[str(r.status)] += 1
                return False
            body = await r.json()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        results.search_errors[type(exc).__name__] += 1
        return False
    return any(p["id"] == post_id for p in body.get("posts", []))


async def probe(client: aiohttp.ClientSession, user: User, start_at: float, args, results: Results) -> None:
    """One post at its scheduled time, then its word searched until found."""
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    word = f"fz{secrets.token_hex(5)}"
    sent = time.perf_counter()
    try:
        async with client.post("/v1/posts", json={"text": f"freshness probe {word}"}, headers=user.auth) as r:
            status, body = r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        results.post_errors[type(exc).__name__] += 1
        return
    acknowledged = time.perf_counter()
    if status != 200:
        results.post_errors[str(status)] += 1
        return
    results.post_latency.append(acknowledged - sent)
    while time.perf_counter() - acknowledged < args.timeout:
        if await found(client, user, word, body["id"], results):
            results.freshness.append(time.perf_counter() - acknowledged)
            return
        await asyncio.sleep(args.poll)
    results.not_found += 1


async def warm_up(client: aiohttp.ClientSession, user: User, timeout: float) -> float:
    word = f"fw{secrets.token_hex(5)}"
    created = await seed_call(client, "POST", "/v1/posts", json={"text": f"warming up {word}"}, headers=user.auth)
    started = time.perf_counter()
    scratch = Results()
    while time.perf_counter() - started < timeout:
        if await found(client, user, word, created["id"], scratch):
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise SystemExit(f"warm-up post not searchable after {timeout:.0f} s: is the search service consuming?")


def seconds(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50_s": rounded(percentile(ordered, 0.50), 3),
        "p95_s": rounded(percentile(ordered, 0.95), 3),
        "p99_s": rounded(percentile(ordered, 0.99), 3),
        "max_s": rounded(ordered[-1] if ordered else None, 3),
        "mean_s": rounded(sum(ordered) / len(ordered) if ordered else None, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("AVIARY_EDGE_URL", "http://127.0.0.1:8080"),
        help="Envoy base URL (default: $AVIARY_EDGE_URL or %(default)s)",
    )
    parser.add_argument("--posts", type=int, default=200, help="measured posts (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="posts per second (default %(default)s)")
    parser.add_argument("--users", type=int, default=10, help="authors, round-robin (default %(default)s)")
    parser.add_argument(
        "--poll", type=float, default=0.05, help="seconds between searches per post (default %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds after which a post counts as not found (default %(default)s)",
    )
    args = parser.parse_args()
    if args.posts < 1 or args.rate <= 0 or args.users < 1 or args.poll <= 0 or args.timeout <= 0:
        parser.error("--posts, --rate, --users, --poll and --timeout must be positive")

    connector = aiohttp.TCPConnector(limit=256)
    async with (
        aiohttp.ClientSession(
            base_url=args.url, connector=connector, timeout=aiohttp.ClientTimeout(total=10)
        ) as client,
        fresh_tokens(client),
    ):
        users = [await sign_up(client) for _ in range(args.users)]
        warm_s = await warm_up(client, users[0], timeout=60.0)
        print(f"{len(users)} users; warm-up post searchable after {warm_s:.2f} s", file=sys.stderr)

        results = Results()
        began = time.perf_counter() + 0.1
        await asyncio.gather(
            *(probe(client, users[i % len(users)], began + i / args.rate, args, results) for i in range(args.posts))
        )
        elapsed = time.perf_counter() - began

    stats = seconds(results.freshness)
    met = (
        results.not_found == 0
        and not results.post_errors
        and stats["p95_s"] is not None
        and stats["p95_s"] < TARGET_P95_S
    )
    post_ms = sorted(v * 1000 for v in results.post_latency)
    print(
        json.dumps(
            {
                "count": args.posts,
                "found": len(results.freshness),
                "not_found": results.not_found,
                **stats,
                "target_p95_s": TARGET_P95_S,
                "met": met,
                "post_errors": dict(results.post_errors),
                "post_ms": {"p50": rounded(percentile(post_ms, 0.5), 1), "p95": rounded(percentile(post_ms, 0.95), 1)},
                "searches": results.searches,
                "search_errors": dict(results.search_errors),
                "duration_s": round(elapsed, 1),
                "config": {
                    "url": args.url,
                    "rate_per_s": args.rate,
                    "users": args.users,
                    "poll_s": args.poll,
                    "timeout_s": args.timeout,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
