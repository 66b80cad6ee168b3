"""Direct messages live through Envoy: milliseconds from a send being issued
(POST /v1/conversations/{id}/messages) to the message arriving on the
recipient's GET /v1/conversations:watch stream.

Signs up --pairs pairs of users, one conversation per pair, and opens the
recipient's watch stream. Then --messages messages are sent at a steady
--rate per second in all, round-robin over the pairs (each sender stays far
below the per-user write limit at the defaults). The whole path is measured:
the send's LOGGED batch with its outbox event, the relay to Kafka, the live
pusher (consumer group conversations-live) hydrating and publishing on Redis,
the watcher's hub and Envoy's JSON line.

Prints one JSON object: count, delivered, lost (not seen within --timeout),
p50/p95/p99/max/mean milliseconds from send issued to delivery, the send
request's own latency, target_p99_ms 1000 and whether it was met.

    .venv/bin/python bench/conversations_live.py --pairs 20 --messages 600
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
TARGET_P99_MS = 1000.0


@dataclass
class Pair:
    sender: dict
    recipient: dict
    conversation_id: str
    arrived: dict[str, float] = field(default_factory=dict)  # message text -> perf_counter at arrival
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Results:
    latency_ms: list[float] = field(default_factory=list)
    send_ms: list[float] = field(default_factory=list)
    lost: int = 0
    send_errors: Counter = field(default_factory=Counter)


async def sign_up(client: aiohttp.ClientSession) -> tuple[str, dict]:
    name = f"cl_{secrets.token_hex(5)}"
    body = await seed_call(client, "POST", "/v1/accounts", json={"username": name, "password": PASSWORD})
    return body["user"]["id"], signed_in(body)


async def make_pair(client: aiohttp.ClientSession) -> Pair:
    (_, sender), (recipient_id, recipient) = await sign_up(client), await sign_up(client)
    body = await seed_call(client, "POST", "/v1/conversations", json={"participantIds": [recipient_id]}, headers=sender)
    return Pair(sender, recipient, body["id"])


async def watch(client: aiohttp.ClientSession, pair: Pair) -> None:
    """Reads the recipient's stream until cancelled, noting when each message arrives."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with client.get("/v1/conversations:watch", headers=pair.recipient, timeout=timeout) as r:
        if r.status != 200:
            raise SystemExit(f"watch -> {r.status}: {(await r.read())[:200]!r}")
        pair.opened.set()
        async for line in r.content:
            if not line.strip():
                continue
            message = json.loads(line).get("message")
            if message:
                pair.arrived.setdefault(message.get("text", ""), time.perf_counter())


async def probe(client, pair: Pair, text: str, at: float, timeout: float, results: Results) -> None:
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    issued = time.perf_counter()
    path = f"/v1/conversations/{pair.conversation_id}/messages"
    try:
        async with client.post(path, json={"text": text}, headers=pair.sender) as r:
            await r.read()
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        results.send_errors[type(exc).__name__] += 1
        return
    results.send_ms.append((time.perf_counter() - issued) * 1000)
    if status != 200:
        results.send_errors[str(status)] += 1
        return
    deadline = issued + timeout
    while text not in pair.arrived and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    if text in pair.arrived:
        results.latency_ms.append((pair.arrived[text] - issued) * 1000)
    else:
        results.lost += 1


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50_ms": rounded(percentile(ordered, 0.5), 1),
        "p95_ms": rounded(percentile(ordered, 0.95), 1),
        "p99_ms": rounded(percentile(ordered, 0.99), 1),
        "max_ms": rounded(ordered[-1] if ordered else None, 1),
        "mean_ms": rounded(sum(ordered) / len(ordered) if ordered else None, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("AVIARY_EDGE_URL", "http://127.0.0.1:8080"),
        help="Envoy base URL (default: $AVIARY_EDGE_URL or %(default)s)",
    )
    parser.add_argument("--pairs", type=int, default=20, help="conversations, one watcher each (default %(default)s)")
    parser.add_argument("--messages", type=int, default=600, help="measured messages (default %(default)s)")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second in all (default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds after which a message counts as lost (default %(default)s)"
    )
    args = parser.parse_args()
    if args.pairs < 1 or args.messages < 1 or args.rate <= 0 or args.timeout <= 0:
        parser.error("--pairs, --messages, --rate and --timeout must be positive")

    connector = aiohttp.TCPConnector(limit=512)
    async with (
        aiohttp.ClientSession(
            base_url=args.url, connector=connector, timeout=aiohttp.ClientTimeout(total=15)
        ) as client,
        fresh_tokens(client),
    ):
        pairs = await asyncio.gather(*(make_pair(client) for _ in range(args.pairs)))
        watchers = [asyncio.create_task(watch(client, p)) for p in pairs]
        await asyncio.wait_for(asyncio.gather(*(p.opened.wait() for p in pairs)), timeout=30)
        # Warm-up: one message per pair, not measured (the pusher may still be joining its group).
        warm = Results()
        await asyncio.gather(
            *(probe(client, p, f"warm-{i}", time.perf_counter(), 30.0, warm) for i, p in enumerate(pairs))
        )
        print(f"{len(pairs)} pairs watching; warm-up lost {warm.lost}", file=sys.stderr)

        results = Results()
        began = time.perf_counter() + 0.1
        await asyncio.gather(
            *(
                probe(client, pairs[i % len(pairs)], f"m-{i}", began + i / args.rate, args.timeout, results)
                for i in range(args.messages)
            )
        )
        elapsed = time.perf_counter() - began
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    stats = summary(results.latency_ms)
    met = results.lost == 0 and not results.send_errors and (stats["p99_ms"] or 1e9) < TARGET_P99_MS
    print(
        json.dumps(
            {
                "count": args.messages,
                "delivered": len(results.latency_ms),
                "lost": results.lost,
                **stats,
                "target_p99_ms": TARGET_P99_MS,
                "met": met,
                "send_ms": {k: v for k, v in summary(results.send_ms).items() if k in ("p50_ms", "p95_ms", "p99_ms")},
                "send_errors": dict(results.send_errors),
                "duration_s": round(elapsed, 1),
                "config": {"url": args.url, "pairs": args.pairs, "rate_per_s": args.rate, "timeout_s": args.timeout},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
