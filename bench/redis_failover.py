"""A Redis Cluster master killed under a write load: what was refused while a
replica took over, and what was acknowledged and then lost.

Needs the devstack on its Redis Cluster (AVIARY_REDIS_CLUSTER=1 make up).
Seeds --authors authors, each followed by three readers (under the devstack's
fanout threshold, so their posts fan out on write into the readers' home
timelines), a seller with --products products, and has every account write
through Envoy, open loop, --rate writes per second each:

  like   POST /v1/posts/{id}:like   a post it has not liked yet
  cart   POST /v1/cart/items        a product not yet in its cart
  post   POST /v1/posts             authors only

After --before seconds it SIGKILLs a master (no shutdown, no handshake), keeps
writing until a replica has taken over and --after seconds more, restarts the
killed node, lets the consumers catch up, and then compares what every
acknowledged write should have left with what the API shows:

  likes  each post's likeCount against the likes acknowledged on it
  cart   each cart against the products acknowledged into it
  home   each reader's home timeline against the posts acknowledged by the
         author they follow

Prints one JSON object: when the master died and how long the takeover took,
and per kind the writes acknowledged, refused (by status) and lost.

    .venv/bin/python bench/redis_failover.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import secrets
import signal
import sys
import time

import aiohttp

from devstack import redis_cluster
from loadgen import fresh_tokens, seed_call, signed_in, wait_for_consumers

PASSWORD = "bench password 1"
READERS_PER_AUTHOR = 3


async def sign_up(client: aiohttp.ClientSession, role: str = "USER") -> dict:
    name = f"fo_{secrets.token_hex(5)}"
    body = await seed_call(client, "POST", "/v1/accounts", json={"username": name, "password": PASSWORD, "role": role})
    return {"id": body["user"]["id"], "auth": signed_in(body)}


class Writes:
    """What was sent, acknowledged and refused, per kind."""

    def __init__(self) -> None:
        self.acked: dict[str, list[tuple]] = collections.defaultdict(list)
        self.refused: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    async def send(self, client: aiohttp.ClientSession, kind: str, what: tuple, method: str, path: str, **kw) -> None:
        try:
            async with client.request(method, path, **kw) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.refused[kind][type(exc).__name__] += 1
            return
        if 200 <= status < 300:
            self.acked[kind].append((*what, json.loads(body).get("id") if kind == "post" else None))
        else:
            self.refused[kind][str(status)] += 1


async def writer(client, writes: Writes, account: dict, plan: list, rate: float, stop: asyncio.Event) -> None:
    """Sends this account's planned writes, one every 1/rate seconds (open loop), until stopped."""
    sent, started = [], time.perf_counter()
    for i, (kind, what, method, path, kw) in enumerate(plan):
        if stop.is_set():
            break
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(asyncio.create_task(writes.send(client, kind, what, method, path, headers=account["auth"], **kw)))
    await asyncio.gather(*sent)


def plan_for(account: dict, is_author: bool, post_ids: list[str], products: list[str], n: int) -> list:
    """Alternating likes, cart adds and (for authors) posts, each like and product once."""
    likes = iter(post_ids)
    adds = iter(products)
    out = []
    for i in range(n):
        turn = i % (3 if is_author else 2)
        if turn == 0:
            post_id = next(likes)
            out.append(("like", (account["id"], post_id), "POST", f"/v1/posts/{post_id}:like", {"json": {}}))
        elif turn == 1:
            product = next(adds)
            cart = {"json": {"productId": product, "quantity": 1}}
            out.append(("cart", (account["id"], product), "POST", "/v1/cart/items", cart))
        else:
            out.append(("post", (account["id"],), "POST", "/v1/posts", {"json": {"text": f"during failover {i}"}}))
    return out


def a_master() -> int:
    return next(port for port in redis_cluster.PORTS if redis_cluster.role(port) == "master")


def taken_over(replica: int) -> bool:
    """The dead master's replica is a master now and sees every slot served."""
    try:
        return redis_cluster.role(replica) == "master" and redis_cluster.cluster_info(replica)["cluster_state"] == "ok"
    except (OSError, KeyError):
        return False


async def get_json(client, path: str, auth: dict) -> dict:
    async with client.get(path, headers=auth) as r:
        if r.status != 200:
            raise SystemExit(f"GET {path} -> {r.status}: {(await r.read())[:300]!r}")
        return await r.json()


async def losses(client, writes: Writes, accounts: dict, follows: dict) -> dict:
    liked = collections.Counter(post_id for _, post_id, _ in writes.acked["like"])
    likes_lost = 0
    for post_id, acked in liked.items():
        body = await get_json(client, f"/v1/posts/{post_id}", next(iter(accounts.values()))["auth"])
        likes_lost += max(0, acked - int(body.get("likeCount", 0)))
    carts: dict[str, set] = collections.defaultdict(set)
    for user_id, product, _ in writes.acked["cart"]:
        carts[user_id].add(product)
    cart_lost = 0
    for user_id, products in carts.items():
        body = await get_json(client, "/v1/cart", accounts[user_id]["auth"])
        held = {item["productId"] for item in body.get("items", [])}
        cart_lost += len(products - held)
    posted: dict[str, set] = collections.defaultdict(set)
    for author_id, post_id in writes.acked["post"]:
        posted[author_id].add(post_id)
    home_lost = 0
    for author_id, post_ids in posted.items():
        for reader_id in follows[author_id]:
            body = await get_json(client, "/v1/timelines/home?pageSize=100", accounts[reader_id]["auth"])
            home_lost += len(post_ids - {p["id"] for p in body.get("posts", [])})
    return {
        "like": {"lost": likes_lost},
        "cart": {"lost": cart_lost},
        "post": {"home_entries_expected": sum(len(p) * READERS_PER_AUTHOR for p in posted.values()), "lost": home_lost},
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--authors", type=int, default=8)
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--rate", type=float, default=4.0, help="writes per second per account (default %(default)s)")
    ap.add_argument("--before", type=float, default=4.0, help="seconds of load before the kill")
    ap.add_argument("--after", type=float, default=4.0, help="seconds of load after the takeover")
    args = ap.parse_args()
    if not redis_cluster.ENABLED:
        raise SystemExit("needs the devstack's Redis Cluster: AVIARY_REDIS_CLUSTER=1 (make up)")

    async with (
        aiohttp.ClientSession(args.url, timeout=aiohttp.ClientTimeout(total=30)) as client,
        fresh_tokens(client),
    ):
        seller = await sign_up(client, "SELLER")
        products = []
        for i in range(args.products):
            body = await seed_call(
                client,
                "POST",
                "/v1/products",
                headers=seller["auth"],
                json={"title": f"failover item {i}", "priceMinor": "100", "currency": "USD", "stock": "1000000"},
            )
            products.append(body["id"])
        authors = [await sign_up(client) for _ in range(args.authors)]
        follows: dict[str, list[str]] = {}
        accounts = {a["id"]: a for a in authors}
        for author in authors:
            readers = [await sign_up(client) for _ in range(READERS_PER_AUTHOR)]
            for reader in readers:
                accounts[reader["id"]] = reader
                await seed_call(client, "PUT", f"/v1/users/me/following/{author['id']}", headers=reader["auth"])
                await seed_call(client, "GET", "/v1/timelines/home", headers=reader["auth"])  # active
            follows[author["id"]] = [r["id"] for r in readers]
        post_ids = [
            (await seed_call(client, "POST", "/v1/posts", headers=a["auth"], json={"text": f"like me {i}"}))["id"]
            for a in authors
            for i in range(25)
        ]
        await wait_for_consumers(client)

        writes, stop = Writes(), asyncio.Event()
        longest = int(args.rate * 120)
        jobs = [
            asyncio.create_task(
                writer(
                    client,
                    writes,
                    account,
                    plan_for(account, user_id in follows, post_ids, products, min(longest, len(post_ids))),
                    args.rate,
                    stop,
                )
            )
            for user_id, account in accounts.items()
        ]
        await asyncio.sleep(args.before)
        dead = a_master()
        replica = redis_cluster.replica_of(dead)
        redis_cluster.signal_node(dead, signal.SIGKILL)
        killed = time.perf_counter()
        while not taken_over(replica):
            await asyncio.sleep(0.1)
        took_over = time.perf_counter() - killed
        await asyncio.sleep(args.after)
        stop.set()
        await asyncio.gather(*jobs)
        await asyncio.to_thread(redis_cluster.restart, dead)
        await wait_for_consumers(client)
        await asyncio.sleep(2.0)  # deliveries after the consumers' last commit
        lost = await losses(client, writes, accounts, follows)

    result = {
        "killed_master_port": dead,
        "took_over_s": round(took_over, 2),
        "accounts": len(accounts),
        "writes_per_s": round(args.rate * len(accounts), 1),
        "by_kind": {
            kind: {"acked": len(writes.acked[kind]), "refused": dict(writes.refused[kind]), **lost[kind]}
            for kind in ("like", "cart", "post")
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
