"""Mixed read/write load through Envoy, open-loop, at a fixed total request rate.

Seeds its own users over the public API: --users ordinary users in a ring, each
following the next (threshold - 1), so they stay at or under the fanout
threshold and their posts fan out on write, plus one celebrity followed by
everyone, above the threshold and merged at read time. Then it sends a mix of
reads and writes at --rps for --duration seconds, about --read-write-ratio
reads per write, each as a random ordinary user:

  reads  (--read-mix)   home        GET  /v1/timelines/home?pageSize=20
                        get_post    GET  /v1/posts/{id}
                        user_posts  GET  /v1/users/{id}/posts?pageSize=20
                        feed        GET  /v1/feed?pageSize=20 (first page)
                        feed_scroll GET  /v1/feed?pageToken=... (the user's next
                                    page from their last feed read; a first page
                                    when they have none)
  writes (--write-mix)  create_post POST /v1/posts
                        like        POST /v1/posts/{id}:like
                        follow      PUT  /v1/users/me/following/{id}, alternating
                                    with DELETE of an earlier bench follow so the
                                    graph stays bounded (and nobody new crosses
                                    the threshold)
                        reply       POST /v1/posts {replyToId}

Arrivals follow a precomputed schedule (Poisson by default, or fixed interval)
and latency is measured from each request's scheduled send time, so a slow
server cannot hide queueing (no coordinated omission). Every call is
authenticated and the load is spread over the seeded users, so the gateway's
per-user limits are not reached; a 429 still counts as an error.

Prints one JSON object: per operation and overall count, errors (by status),
achieved rps, p50/p95/p99/max ms, the 2xx answers' alone (ok_rps, ok_p99_ms:
what an overloaded edge still serves, apart from the calls it sheds), and pass/fail for the targets of the
operations that ran (POST /v1/posts p95 < 100 ms, home p95 < 50 ms, feed p95
< 60 ms, zero errors), and the stack's CPU per request (every devstack
process group, from /proc; in total, net of the idle CPU measured just
before, and by component).

    .venv/bin/python bench/mixed_workload.py --rps 300 --duration 30
    .venv/bin/python bench/mixed_workload.py --rps 300 --duration 30 \
        --read-mix feed=60,feed_scroll=20,home=10,get_post=10      # make bench-feed

With feed reads in the mix, a seller and --products products are seeded too,
so the feed has recommendations to interleave (cold start: popular/newest).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import datetime
import json
import os
import random
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import aiohttp

from loadgen import (
    cpu_ms_per_request,
    fresh_tokens,
    idle_cores,
    percentile,
    rounded,
    seed_call,
    signed_in,
    stack_cpu_seconds,
    stack_fanout_threshold,
    wait_for_consumers,
)

try:  # a faster event loop keeps the load generator's own CPU share small
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

PASSWORD = "bench password 1"
READ_OPS = ("home", "get_post", "user_posts", "feed", "feed_scroll")
WRITE_OPS = ("create_post", "like", "follow", "reply")
OPS = READ_OPS + WRITE_OPS
# Targets: (name, operations pooled, p95 limit in ms). create_post and reply
# are both POST /v1/posts.
P95_TARGETS = (
    ("post_p95_ms", ("create_post", "reply"), 100.0),
    ("home_p95_ms", ("home",), 50.0),
    ("feed_p95_ms", ("feed", "feed_scroll"), 60.0),
)


def parse_mix(text: str, names: tuple[str, ...], flag: str) -> dict[str, float]:
    """ "home=80,get_post=10" -> {"home": 80.0, "get_post": 10.0, "user_posts": 0.0}."""
    mix = {name: 0.0 for name in names}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in mix:
            raise SystemExit(f"{flag}: expected name=weight with name in {', '.join(names)}; got {part!r}")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise SystemExit(f"{flag}: weight of {name!r} is not a number: {weight!r}") from None
        if mix[name] < 0:
            raise SystemExit(f"{flag}: weight of {name!r} is negative")
    if sum(mix.values()) <= 0:
        raise SystemExit(f"{flag}: all weights are zero")
    return mix


class OpPicker:
    """Smooth weighted round-robin: the exact mix, evenly interleaved, even in short runs."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.total = sum(self.weights.values())
        self.current = {k: 0.0 for k in self.weights}

    def next(self) -> str:
        for k, w in self.weights.items():
            self.current[k] += w
        pick = max(self.current, key=self.current.__getitem__)
        self.current[pick] -= self.total
        return pick


def schedule(rps: float, duration: float, arrivals: str, rng: random.Random) -> list[float]:
    """Send offsets (s from start) within [0, duration)."""
    if arrivals == "fixed":
        return [i / rps for i in range(int(rps * duration))]
    times, t = [], rng.expovariate(rps)
    while t < duration:
        times.append(t)
        t += rng.expovariate(rps)
    return times


async def request(client: aiohttp.ClientSession, method: str, path: str, **kwargs) -> tuple[int, bytes]:
    async with client.request(method, path, **kwargs) as r:
        return r.status, await r.read()


async def sign_up(client: aiohttp.ClientSession, prefix: str) -> dict:
    username = f"{prefix}_{secrets.token_hex(5)}"[:15]
    body = await seed_call(client, "POST", "/v1/accounts", json={"username": username, "password": PASSWORD})
    return {"id": body["user"]["id"], "auth": signed_in(body), "username": username}


async def log_in(client: aiohttp.ClientSession, user: dict) -> dict:
    """A saved user signed in again (a saved world's tokens are long expired)."""
    body = await seed_call(client, "POST", "/v1/sessions", json={"username": user["username"], "password": PASSWORD})
    return {**user, "auth": signed_in(body)}


class World:
    """The seeded users and the state the write operations evolve."""

    def __init__(
        self,
        users: list[dict],
        celebrity: dict,
        post_ids: list[str],
        followers: dict[str, int],
        following: set[tuple[str, str]],
        max_followers: int,
    ):
        self.users = users  # ordinary users: they read, post, like, reply and follow
        self.celebrity = celebrity  # followed by every user: above the fanout threshold
        self.post_ids = post_ids  # grows with the bench's own posts and replies
        self.followers = followers  # ordinary user id -> followers, counting in-flight bench follows
        self.following = following  # (follower id, followee id) among ordinary users
        self.max_followers = max_followers  # the fanout threshold: more than this is a celebrity
        self.bench_follows: collections.deque[tuple[dict, dict]] = collections.deque()  # completed, undo oldest first
        self.unfollow_next = False  # follow ops alternate: follow, unfollow, follow, ...
        self.feed_tokens: dict[str, str] = {}  # user id -> nextPageToken of their last feed read


def save_world(path: str, world: World, settings: dict) -> None:
    """What `load_world` needs to run on the same users and posts again."""

    def without_auth(user: dict) -> dict:  # tokens expire; load_world signs in again
        return {k: v for k, v in user.items() if k != "auth"}

    with open(path, "w") as f:
        json.dump(
            {
                "settings": settings,
                "users": [without_auth(u) for u in world.users],
                "celebrity": without_auth(world.celebrity),
                "post_ids": world.post_ids,
                "followers": world.followers,
                "following": sorted(world.following),
                "max_followers": world.max_followers,
            },
            f,
        )


async def load_world(client: aiohttp.ClientSession, path: str, settings: dict) -> World | None:
    """The world saved at `path` with every user signed in again; None when
    there is none, or it was seeded with other settings."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return None
    if saved["settings"] != settings:
        print(f"{path} was seeded with {saved['settings']}, not {settings}: seeding afresh", file=sys.stderr)
        return None
    sem = asyncio.Semaphore(16)

    async def limited(user: dict) -> dict:
        async with sem:
            return await log_in(client, user)

    try:
        users = list(await asyncio.gather(*(limited(u) for u in saved["users"])))
        celebrity = await log_in(client, saved["celebrity"])
    except SystemExit as refused:  # the stack's data was reset since
        print(f"{path}: {refused}; seeding afresh", file=sys.stderr)
        return None
    return World(
        users,
        celebrity,
        saved["post_ids"],
        saved["followers"],
        {tuple(pair) for pair in saved["following"]},
        saved["max_followers"],
    )


async def seed_products(client: aiohttp.ClientSession, count: int) -> None:
    """A seller with `count` products, so feeds have recommendations (cold start)."""
    username = f"ms_{secrets.token_hex(5)}"
    body = await seed_call(
        client, "POST", "/v1/accounts", json={"username": username, "password": PASSWORD, "role": "SELLER"}
    )
    auth = signed_in(body)
    for n in range(count):
        await seed_call(
            client,
            "POST",
            "/v1/products",
            headers=auth,
            json={
                "title": f"bench product {n}",
                "description": "seeded by the mixed bench",
                "priceMinor": str(500 + n),
                "currency": "USD",
                "stock": "100000",
            },
        )


async def seed(
    client: aiohttp.ClientSession, users: int, posts_per_user: int, celebrity_posts: int, threshold: int, follows: int
) -> World:
    """`users` ordinary users in a ring, each following the next `follows` users
    (at most threshold-1, so each has fewer followers than the threshold: posts
    fan out on write, and a bench follow adds at most one more without making
    anyone a celebrity), plus one celebrity followed by everyone (merged at
    read time)."""
    sem = asyncio.Semaphore(8)

    async def limited(coro):
        async with sem:
            return await coro

    celebrity = await sign_up(client, "mc")
    accounts = list(await asyncio.gather(*(limited(sign_up(client, "mu")) for _ in range(users))))
    ring = max(0, min(follows, users - 1))
    edges = [(u, celebrity) for u in accounts]
    edges += [(u, accounts[(i + k) % users]) for i, u in enumerate(accounts) for k in range(1, ring + 1)]
    await asyncio.gather(
        *(limited(seed_call(client, "PUT", f"/v1/users/me/following/{a['id']}", headers=u["auth"])) for u, a in edges)
    )
    posts = await asyncio.gather(
        *(
            limited(
                seed_call(client, "POST", "/v1/posts", json={"text": f"mixed bench post {n} #bench"}, headers=a["auth"])
            )
            for a, count in [(celebrity, celebrity_posts), *((u, posts_per_user) for u in accounts)]
            for n in range(count)
        )
    )
    celeb = await seed_call(client, "GET", f"/v1/users/{celebrity['id']}", headers=celebrity["auth"])
    sample = await seed_call(client, "GET", f"/v1/users/{accounts[0]['id']}", headers=celebrity["auth"])
    print(
        f"celebrity followerCount={celeb.get('followerCount')} (threshold {threshold}); "
        f"ordinary user followerCount={sample.get('followerCount')}",
        file=sys.stderr,
    )
    await asyncio.sleep(2)  # let fanout drain before measuring
    return World(
        accounts,
        celebrity,
        [p["id"] for p in posts],
        {u["id"]: ring for u in accounts},
        {(u["id"], a["id"]) for u, a in edges if a is not celebrity},
        threshold,
    )


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {op: [] for op in OPS}
        # Only the 2xx answers': under overload, what the shed calls (fast
        # 503s) would pull down in `latencies`.
        self.ok_latencies: dict[str, list[float]] = {op: [] for op in OPS}
        self.errors: dict[str, collections.Counter] = {op: collections.Counter() for op in OPS}
        self.error_samples: dict[str, str] = {}  # "op status" -> first response body
        self.follow_methods: collections.Counter = collections.Counter()
        self.max_send_lag_ms = 0.0
        # (seconds into the run, op, latency ms): the per-window series that
        # shows whether latency drifts over a long run.
        self.timeline: list[tuple[float, str, float]] = []


def op_picker(args: argparse.Namespace) -> OpPicker:
    write_share = 1.0 / (args.read_write_ratio + 1.0)
    rsum, wsum = sum(args.read_mix.values()), sum(args.write_mix.values())
    weights = {op: (1 - write_share) * w / rsum for op, w in args.read_mix.items()}
    weights.update({op: write_share * w / wsum for op, w in args.write_mix.items()})
    return OpPicker(weights)


def planner(world: World, args: argparse.Namespace, rng: random.Random, stats: Stats):
    """plan(op) -> (method, path, request kwargs, on-success callback(body)) for one call."""
    page = {"pageSize": args.page_size}

    def remember_feed_token(user: dict, body: bytes) -> None:
        token = json.loads(body).get("nextPageToken")
        if token:
            world.feed_tokens[user["id"]] = token

    def plan(op: str) -> tuple[str, str, dict, object]:
        """(method, path, request kwargs, on-success callback(body)) for one call, chosen at send time."""
        user = rng.choice(world.users)
        auth = user["auth"]
        if op == "home":
            return "GET", "/v1/timelines/home", {"params": page, "headers": auth}, None
        if op == "get_post":
            return "GET", f"/v1/posts/{rng.choice(world.post_ids)}", {"headers": auth}, None
        if op == "feed" or (op == "feed_scroll" and user["id"] not in world.feed_tokens):
            params = {"pageSize": args.page_size}
            return "GET", "/v1/feed", {"params": params, "headers": auth}, lambda body: remember_feed_token(user, body)
        if op == "feed_scroll":
            params = {"pageSize": args.page_size, "pageToken": world.feed_tokens.pop(user["id"])}
            return "GET", "/v1/feed", {"params": params, "headers": auth}, lambda body: remember_feed_token(user, body)
        if op == "user_posts":
            # One profile view in ten is the celebrity's.
            author = world.celebrity if rng.random() < 0.1 else rng.choice(world.users)
            return "GET", f"/v1/users/{author['id']}/posts", {"params": page, "headers": auth}, None
        if op in ("create_post", "reply"):
            body = {"text": f"mixed bench {op} {secrets.token_hex(4)} #bench"}
            if op == "reply":
                body["replyToId"] = rng.choice(world.post_ids)
            elif rng.random() < 1 / (len(world.users) + 1):
                auth = world.celebrity["auth"]  # the celebrity posts its share too
            return (
                "POST",
                "/v1/posts",
                {"json": body, "headers": auth},
                lambda body: world.post_ids.append(json.loads(body)["id"]),
            )
        if op == "like":
            return "POST", f"/v1/posts/{rng.choice(world.post_ids)}:like", {"json": {}, "headers": auth}, None
        # follow: alternate with undoing the oldest completed bench follow.
        unfollow, world.unfollow_next = world.unfollow_next, not world.unfollow_next
        if unfollow and world.bench_follows:
            follower, followee = world.bench_follows.popleft()
            stats.follow_methods["DELETE"] += 1

            def unfollowed(_body: bytes) -> None:
                world.following.discard((follower["id"], followee["id"]))
                world.followers[followee["id"]] -= 1

            return "DELETE", f"/v1/users/me/following/{followee['id']}", {"headers": follower["auth"]}, unfollowed
        # Follow someone new whose followers stay within the threshold, so
        # nobody but the celebrity crosses it.
        for _ in range(50):
            followee = rng.choice(world.users)
            if (
                followee is not user
                and world.followers[followee["id"]] < world.max_followers
                and (user["id"], followee["id"]) not in world.following
            ):
                break
        else:
            followee = world.celebrity  # nobody has room (tiny graphs): a no-op re-follow
        if followee is not world.celebrity:
            world.following.add((user["id"], followee["id"]))
            world.followers[followee["id"]] += 1
        stats.follow_methods["PUT"] += 1

        def followed(_body: bytes) -> None:
            if followee is not world.celebrity:
                world.bench_follows.append((user, followee))

        return "PUT", f"/v1/users/me/following/{followee['id']}", {"headers": auth}, followed

    return plan


async def run_load(
    client: aiohttp.ClientSession, world: World, args: argparse.Namespace, duration: float, rng: random.Random
) -> dict:
    stats = Stats()
    picker = op_picker(args)
    plan = planner(world, args, rng, stats)

    async def one(op: str, scheduled: float) -> None:
        method, path, kwargs, on_success = plan(op)
        stats.max_send_lag_ms = max(stats.max_send_lag_ms, (time.perf_counter() - scheduled) * 1000)
        ok = False
        try:
            status, body = await request(client, method, path, **kwargs)
            if 200 <= status < 300:
                ok = True
                if on_success is not None:
                    on_success(body)
            else:
                stats.errors[op][str(status)] += 1
                stats.error_samples.setdefault(
                    f"{op} {status}", f"{method} {path.split('?')[0]}: {body[:300].decode(errors='replace')}"
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
            stats.errors[op][type(exc).__name__] += 1
            stats.error_samples.setdefault(f"{op} {type(exc).__name__}", f"{method} {path}: {exc!r}"[:300])
        latency_ms = (time.perf_counter() - scheduled) * 1000
        stats.latencies[op].append(latency_ms)
        if ok:
            stats.ok_latencies[op].append(latency_ms)
        stats.timeline.append((scheduled - start, op, latency_ms))

    offsets = schedule(args.rps, duration, args.arrivals, rng)
    tasks = []
    start = time.perf_counter() + 0.1
    for offset in offsets:
        scheduled = start + offset
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(picker.next(), scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return summarize(stats, elapsed, args.window)


# Ops whose requests depend on earlier answers (a follow's undo, the next
# feed page): vegeta's requests are all written before the run.
CHAINED_OPS = frozenset({"follow", "feed_scroll"})


def vegeta_binary() -> str:
    found = shutil.which("vegeta") or os.path.expanduser("~/go/bin/vegeta")
    if not os.access(found, os.X_OK):
        raise SystemExit("--generator vegeta: no vegeta binary (make up installs it with the Go tools)")
    return found


def vegeta_target(base_url: str, method: str, path: str, kwargs: dict) -> dict:
    """One request as vegeta's JSON target format has it."""
    url = base_url + path
    if kwargs.get("params"):
        url += "?" + urllib.parse.urlencode(kwargs["params"])
    headers = {name: [value] for name, value in kwargs.get("headers", {}).items()}
    target = {"method": method, "url": url, "header": headers}
    if "json" in kwargs:
        headers["Content-Type"] = ["application/json"]
        target["body"] = base64.b64encode(json.dumps(kwargs["json"]).encode()).decode()
    return target


def run_load_vegeta(world: World, args: argparse.Namespace, duration: float, rng: random.Random) -> dict:
    """The same mix sent by vegeta, a compiled open-loop generator, at a fixed
    rate: a fraction of the Python client's CPU per request, which shares
    the machine with the stack it measures. Each request is planned before
    the run; latency counts from its scheduled send time, as run_load's does."""
    stats = Stats()
    picker, plan = op_picker(args), planner(world, args, rng, stats)
    count = max(1, int(args.rps * duration))
    ops = [picker.next() for _ in range(count)]
    vegeta = vegeta_binary()
    with tempfile.TemporaryDirectory() as tmp:
        targets, results = os.path.join(tmp, "targets.json"), os.path.join(tmp, "results.bin")
        with open(targets, "w") as f:
            for op in ops:
                method, path, kwargs, _ = plan(op)
                f.write(json.dumps(vegeta_target(args.url, method, path, kwargs)) + "\n")
        attack = [
            *(vegeta, "attack", "-format=json", f"-targets={targets}", f"-output={results}"),
            *(f"-rate={args.rps:g}/1s", f"-duration={duration:g}s", "-timeout=10s", "-workers=64", "-max-body=300"),
        ]
        own_before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(attack, check=True)
        elapsed = time.perf_counter() - started
        own = resource.getrusage(resource.RUSAGE_CHILDREN)
        hits = subprocess.run([vegeta, "encode", "--to", "json", results], check=True, capture_output=True).stdout
    answered = [json.loads(line) for line in hits.splitlines()]
    first_sent = min((_sent_at(hit) for hit in answered), default=0.0)
    for hit in answered:
        op, scheduled = ops[hit["seq"] % count], hit["seq"] / args.rps
        # Sent late (vegeta itself short of CPU): the wait counts, as in run_load.
        lag_ms = max(0.0, (_sent_at(hit) - first_sent - scheduled) * 1000)
        stats.max_send_lag_ms = max(stats.max_send_lag_ms, lag_ms)
        latency_ms = lag_ms + hit["latency"] / 1e6
        stats.latencies[op].append(latency_ms)
        stats.timeline.append((scheduled, op, latency_ms))
        status = hit["code"]
        if 200 <= status < 300:
            stats.ok_latencies[op].append(latency_ms)
        else:
            label = str(status) if status else _error_kind(hit.get("error") or "no answer")
            stats.errors[op][label] += 1
            body = base64.b64decode(hit.get("body") or "").decode(errors="replace")
            stats.error_samples.setdefault(f"{op} {label}", f"{hit['method']} {hit['url'].split('?')[0]}: {body}")
    result = summarize(stats, elapsed, args.window)
    cpu = (own.ru_utime + own.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    result["load_generator_cores"] = round(cpu / elapsed, 3)
    return result


def _error_kind(error: str) -> str:
    """vegeta's error without the URL it names, so errors of a kind count together."""
    return re.sub(r'^\w+ "[^"]*": ', "", error)[:80]


def _sent_at(hit: dict) -> float:
    return datetime.datetime.fromisoformat(hit["timestamp"]).timestamp()


def windows(stats: Stats, seconds: float) -> list[dict]:
    """Each target's p95 per stretch of `seconds` (by send time), so a run
    that starts well and degrades shows it."""
    buckets: dict[int, list[tuple[str, float]]] = collections.defaultdict(list)
    for at, op, latency in stats.timeline:
        buckets[int(at // seconds)].append((op, latency))
    series = []
    for index in sorted(buckets):
        row = {"from_s": round(index * seconds, 1), "count": len(buckets[index])}
        for name, pooled, _limit in P95_TARGETS:
            values = sorted(latency for op, latency in buckets[index] if op in pooled)
            if values:
                row[name] = rounded(percentile(values, 0.95))
        series.append(row)
    return series


def summarize(stats: Stats, elapsed: float, window_seconds: float) -> dict:
    def block(latencies: list[float], errors: collections.Counter, ok: list[float]) -> dict:
        latencies, ok = sorted(latencies), sorted(ok)
        return {
            "count": len(latencies),
            "errors": sum(errors.values()),
            "errors_by_status": dict(sorted(errors.items())),
            "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": rounded(percentile(latencies, 0.50)),
            "p95_ms": rounded(percentile(latencies, 0.95)),
            "p99_ms": rounded(percentile(latencies, 0.99)),
            "max_ms": rounded(latencies[-1] if latencies else None),
            # Goodput: the answers that were not errors, and how long they took.
            "ok_rps": round(len(ok) / elapsed, 1),
            "ok_p99_ms": rounded(percentile(ok, 0.99)),
        }

    ops = {op: block(stats.latencies[op], stats.errors[op], stats.ok_latencies[op]) for op in OPS}
    ops["follow"]["methods"] = dict(stats.follow_methods)
    all_errors = sum(stats.errors.values(), collections.Counter())
    overall = block(
        [x for op in OPS for x in stats.latencies[op]], all_errors, [x for op in OPS for x in stats.ok_latencies[op]]
    )
    overall["reads"] = sum(ops[op]["count"] for op in READ_OPS)
    overall["writes"] = sum(ops[op]["count"] for op in WRITE_OPS)
    targets = {}
    for name, pooled, limit in P95_TARGETS:
        if not any(stats.latencies[op] for op in pooled):
            continue  # not in this run's mix
        value = percentile(sorted(x for op in pooled for x in stats.latencies[op]), 0.95)
        targets[name] = {
            "ops": list(pooled),
            "limit_ms": limit,
            "value_ms": rounded(value),
            "pass": value is not None and value < limit,
        }
    targets["zero_errors"] = {"limit": 0, "value": overall["errors"], "pass": overall["errors"] == 0}
    return {
        "overall": overall,
        "ops": ops,
        "targets": targets,
        "pass": all(t["pass"] for t in targets.values()),
        "duration_s": round(elapsed, 1),
        "max_send_lag_ms": round(stats.max_send_lag_ms, 2),
        "windows": windows(stats, window_seconds),
        "error_samples": stats.error_samples,
    }


async def drained(client: aiohttp.ClientSession, timeout: float) -> dict | None:
    """Waits for every consumer to catch up (nothing when `timeout` is 0)."""
    return await wait_for_consumers(client, timeout=timeout) if timeout > 0 else None


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("AVIARY_EDGE_URL", "http://127.0.0.1:8080"),
        help="Envoy base URL (default: $AVIARY_EDGE_URL or %(default)s)",
    )
    parser.add_argument(
        "--rps", type=float, default=300, help="target total requests/s, reads + writes (default %(default)s)"
    )
    parser.add_argument("--duration", type=float, default=30, help="measured seconds (default %(default)s)")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=240,
        help="after seeding, wait up to this many seconds for every Kafka consumer to catch up "
        "with the seed before the warm-up; 0 skips the wait (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=10,
        help="seconds of the same load before measuring, not reported (default %(default)s)",
    )
    parser.add_argument("--read-write-ratio", type=float, default=100, help="reads per write (default %(default)s)")
    parser.add_argument(
        "--read-mix",
        default="home=80,get_post=10,user_posts=10",
        help="relative read weights over home, get_post, user_posts, feed, feed_scroll (default %(default)s)",
    )
    parser.add_argument(
        "--products", type=int, default=12, help="products seeded when the mix reads the feed (default %(default)s)"
    )
    parser.add_argument(
        "--write-mix",
        default="create_post=25,like=25,follow=25,reply=25",
        help="relative write weights over create_post, like, follow, reply (default %(default)s)",
    )
    parser.add_argument(
        "--arrivals",
        choices=("poisson", "fixed"),
        default="poisson",
        help="send schedule: Poisson arrivals or a fixed interval (default %(default)s)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=200,
        help="ordinary users sharing the load; enough that each stays far under the "
        "gateway's per-user limits (50 reads/s, 20 writes/s) (default %(default)s)",
    )
    parser.add_argument(
        "--posts-per-user", type=int, default=5, help="seeded posts per ordinary user (default %(default)s)"
    )
    parser.add_argument(
        "--celebrity-posts", type=int, default=20, help="seeded posts by the celebrity (default %(default)s)"
    )
    parser.add_argument(
        "--fanout-threshold",
        type=int,
        default=int(os.environ.get("AVIARY_FANOUT_THRESHOLD", "3")),
        help="the stack's fanout threshold, which shapes the graph "
        "(default: $AVIARY_FANOUT_THRESHOLD or 3, the devstack's)",
    )
    parser.add_argument(
        "--follows",
        type=int,
        default=None,
        help="how many of the next users in the ring each user follows, under the threshold "
        "(default: the threshold - 1)",
    )
    parser.add_argument(
        "--page-size", type=int, default=20, help="pageSize for home and user posts (default %(default)s)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=15,
        help="seconds per stretch in the output's per-window p95 series (default %(default)s)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5,
        help="seconds the stack's idle CPU is measured before the load, to report CPU per request "
        "net of it (0: not measured) (default %(default)s)",
    )
    parser.add_argument(
        "--world",
        default=None,
        help="a file to keep the seeded users and posts in: a later run with the same seeding settings "
        "signs them in again instead of seeding (the stack's data must still be there)",
    )
    parser.add_argument(
        "--generator",
        choices=("python", "vegeta"),
        default="python",
        help="what sends the load: this process (aiohttp), or vegeta, a compiled open-loop generator that "
        "leaves the stack more of the machine; vegeta sends at a fixed rate and cannot run follow or "
        "feed_scroll, whose requests depend on earlier answers (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the schedule and choices")
    args = parser.parse_args()
    if args.rps <= 0 or args.duration <= 0 or args.read_write_ratio < 0:
        parser.error("--rps and --duration must be > 0, --read-write-ratio >= 0")
    if args.users <= args.fanout_threshold:
        parser.error("--users must exceed --fanout-threshold, or the celebrity is not above it")
    if args.follows is None:
        args.follows = args.fanout_threshold - 1
    if not 0 <= args.follows < args.fanout_threshold:
        parser.error("--follows must be at least 0 and under --fanout-threshold")
    args.read_mix = parse_mix(args.read_mix, READ_OPS, "--read-mix")
    args.write_mix = parse_mix(args.write_mix, WRITE_OPS, "--write-mix")
    if args.generator == "vegeta":
        chained = sorted(op for op in CHAINED_OPS if {**args.read_mix, **args.write_mix}[op] > 0)
        if chained:
            parser.error(f"--generator vegeta cannot send {', '.join(chained)}: each depends on an earlier answer")
        vegeta_binary()
        args.arrivals = "fixed"
    rng = random.Random(args.seed)
    running = stack_fanout_threshold()
    if running != str(args.fanout_threshold):
        # Then the world's ordinary users may all be celebrities to the stack, or none.
        print(f"warning: the stack runs with fanout threshold {running}, not {args.fanout_threshold}", file=sys.stderr)

    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(base_url=args.url, connector=connector, timeout=timeout) as client,
        fresh_tokens(client),
    ):
        t0 = time.perf_counter()
        if args.read_mix["feed"] or args.read_mix["feed_scroll"]:
            await seed_products(client, args.products)
        seeded_with = {
            k: getattr(args, k)
            for k in ("url", "users", "posts_per_user", "celebrity_posts", "fanout_threshold", "follows")
        }
        world = await load_world(client, args.world, seeded_with) if args.world else None
        if world is None:
            world = await seed(
                client, args.users, args.posts_per_user, args.celebrity_posts, args.fanout_threshold, args.follows
            )
            if args.world:
                save_world(args.world, world, seeded_with)
        print(
            f"seeded {len(world.users)} users + 1 celebrity, "
            f"{len(world.post_ids)} posts in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        settled = await drained(client, args.settle_timeout)
        if settled is not None:
            print(
                f"settle: consumers {'caught up' if settled['caught_up'] else 'NOT caught up'} "
                f"after {settled['seconds']} s (most records behind: {settled['max_lag_seen']:g})",
                file=sys.stderr,
            )

        async def load(seconds: float) -> dict:
            if args.generator == "vegeta":
                return await asyncio.to_thread(run_load_vegeta, world, args, seconds, rng)
            return await run_load(client, world, args, seconds, rng)

        if args.warmup > 0:
            warm = await load(args.warmup)
            print(
                f"warmup: {warm['overall']['count']} requests, {warm['overall']['errors']} errors, "
                f"p95 {warm['overall']['p95_ms']} ms",
                file=sys.stderr,
            )
            # The warm-up's records still being applied are not the idle stack.
            await drained(client, args.settle_timeout)
        idle = await idle_cores(args.idle_seconds)
        cpu_before, started, own_before = stack_cpu_seconds(), time.perf_counter(), time.process_time()
        result = await load(args.duration)
        requests, elapsed = result["overall"]["count"], time.perf_counter() - started
        result["cpu_ms_per_request"] = cpu_ms_per_request(cpu_before, stack_cpu_seconds(), requests, idle, elapsed)
        # It shares the machine's cores with the stack it measures (vegeta's run reports its own).
        result.setdefault("load_generator_cores", round((time.process_time() - own_before) / elapsed, 3))
    result["settle"] = settled
    result["config"] = {
        "url": args.url,
        "target_rps": args.rps,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "arrivals": args.arrivals,
        "generator": args.generator,
        "read_write_ratio": args.read_write_ratio,
        "read_mix": args.read_mix,
        "write_mix": args.write_mix,
        "page_size": args.page_size,
        "users": len(world.users),
        "fanout_threshold": args.fanout_threshold,
        "stack_fanout_threshold": running,
        "follows": args.follows,
        "seed": args.seed,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main())
