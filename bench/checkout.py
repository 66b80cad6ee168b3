"""Checkout under concurrency, through Envoy, on the real stack.

N buyers run at once, each in a loop: browse for a while (--think, mean
seconds, exponential; 0 makes it a closed loop that checks out back to back),
put 1..2 units of a random product in the cart, check out with a fresh
idempotency key, and now and then retry a key
that already succeeded (which must return the same order and charge nothing
more). One scarce product holds far fewer units than the buyers want, so the
run also races for the last units.

Afterwards the benchmark counts, by itself, from what the stack says:
- oversells: units sold beyond the scarce product's stock, or a product whose
  remaining stock is not its initial stock minus what the confirmed orders hold;
- double charges: a checkout key with more than one successful authorization
  or capture in the payments ledger, or a retried key answered with another order.

Prints one JSON object: checkout latency p50/p95/p99 (ms), throughput, outcomes,
oversells, double charges, and the stack's CPU per checkout (every devstack
process, from /proc, net of the idle CPU measured before the run; a checkout
here is its cart add, the checkout call, the saga and every consumer of its
events).

    .venv/bin/python bench/checkout.py --buyers 50 --duration 30              # saturation
    .venv/bin/python bench/checkout.py --buyers 50 --duration 30 --think 3    # buyers who browse
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import time
import uuid
from collections import Counter

import aiohttp

from aviary.payments.v1 import payments_pb2, payments_pb2_grpc
from loadgen import (
    cpu_ms_per_request,
    fresh_tokens,
    idle_cores,
    percentile,
    rounded,
    seed_call,
    signed_in,
    stack_cpu_seconds,
    wait_for_consumers,
)
from services.kit.settings import load
from services.orders.settings import OrdersSettings
from devstack.mesh_channels import open_channel

PASSWORD = "bench password 1"


async def sign_up(client: aiohttp.ClientSession, role: str = "USER") -> dict:
    name = f"ck_{secrets.token_hex(5)}"
    body = await seed_call(client, "POST", "/v1/accounts", json={"username": name, "password": PASSWORD, "role": role})
    return {"id": body["user"]["id"], "auth": signed_in(body)}


async def create_product(client, seller, stock: int, price: int) -> str:
    body = await seed_call(
        client,
        "POST",
        "/v1/products",
        headers=seller["auth"],
        json={
            "title": f"bench item {secrets.token_hex(3)}",
            "priceMinor": str(price),
            "currency": "USD",
            "stock": str(stock),
        },
    )
    return body["id"]


class Run:
    def __init__(self, products: list[str], scarce: str) -> None:
        self.products = products
        self.scarce = scarce
        self.latencies: list[float] = []
        self.outcomes: Counter = Counter()
        self.confirmed: list[dict] = []  # orders the API confirmed
        self.retry_mismatches = 0
        self.sold: Counter = Counter()  # units per product in confirmed orders

    async def buyer_loop(self, client: aiohttp.ClientSession, buyer: dict, stop_at: float, think: float) -> None:
        # Buyers start spread over one think time, so arrivals do not come in waves.
        await asyncio.sleep(min(random.uniform(0, think), max(0.0, stop_at - time.monotonic())))
        while time.monotonic() < stop_at:
            if think:
                await asyncio.sleep(min(random.expovariate(1 / think), max(0.0, stop_at - time.monotonic())))
                if time.monotonic() >= stop_at:
                    break
            product = self.scarce if random.random() < 0.2 else random.choice(self.products)
            async with client.post(
                "/v1/cart/items", headers=buyer["auth"], json={"productId": product, "quantity": random.randint(1, 2)}
            ) as r:
                if r.status != 200:
                    self.outcomes[f"cart_{r.status}"] += 1
                    await asyncio.sleep(0.05)
                    continue
            key = f"bench-{uuid.uuid4().hex}"
            started = time.perf_counter()
            async with client.post(
                "/v1/checkouts", headers=buyer["auth"], json={"idempotencyKey": key, "paymentMethod": "pm_card_visa"}
            ) as r:
                body = await r.json(content_type=None)
                status = r.status
            self.latencies.append(time.perf_counter() - started)
            self.outcomes[str(status)] += 1
            if status == 200:
                self.confirmed.append(body)
                for item in body["items"]:
                    self.sold[item["productId"]] += int(item["quantity"])
                if random.random() < 0.1:
                    await self.retry(client, buyer, key, body["id"])
            elif status != 200:
                # A refused checkout (e.g. the scarce product ran out) keeps
                # its cart: empty it so the next round starts clean.
                for pid in {product, self.scarce}:
                    async with client.delete(f"/v1/cart/items/{pid}", headers=buyer["auth"]):
                        pass

    async def retry(self, client, buyer, key: str, order_id: str) -> None:
        async with client.post(
            "/v1/checkouts", headers=buyer["auth"], json={"idempotencyKey": key, "paymentMethod": "pm_card_visa"}
        ) as r:
            body = await r.json(content_type=None)
            if r.status != 200 or body.get("id") != order_id:
                self.retry_mismatches += 1


def double_charged_checkouts(buyer_ids: list[str]) -> tuple[int, int]:
    """(checked checkouts, checkouts with more than one successful authorize or capture)."""
    import psycopg

    dsn = load(OrdersSettings).pg_dsn.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, attempt FROM orders.checkouts WHERE buyer_id = ANY(%s) AND state = 'SUCCEEDED'",
            ([int(b) for b in buyer_ids],),
        ).fetchall()
    bad = 0
    with open_channel("payments") as ch:
        stub = payments_pb2_grpc.PaymentsServiceStub(ch)
        for checkout_id, attempt in rows:
            payment = stub.GetPayment(
                payments_pb2.GetPaymentRequest(idempotency_key=f"checkout-{checkout_id}-{attempt}")
            )
            entries = stub.ListLedgerEntries(payments_pb2.ListLedgerEntriesRequest(payment_id=payment.id)).entries
            ok = Counter(e.operation for e in entries if e.outcome == payments_pb2.LEDGER_OUTCOME_SUCCEEDED)
            if ok[payments_pb2.LEDGER_OPERATION_AUTHORIZE] > 1 or ok[payments_pb2.LEDGER_OPERATION_CAPTURE] > 1:
                bad += 1
    return len(rows), bad


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge", default="http://127.0.0.1:8080")
    ap.add_argument("--buyers", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--products", type=int, default=20)
    ap.add_argument("--scarce-stock", type=int, default=25)
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds a buyer browses between checkouts (0: closed loop, back to back)",
    )
    ap.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="seconds the stack's idle CPU is measured before the run, to report CPU per checkout net of it",
    )
    args = ap.parse_args()

    connector = aiohttp.TCPConnector(limit=args.buyers * 2)
    async with (
        aiohttp.ClientSession(args.edge, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client,
        fresh_tokens(client),
    ):
        seller = await sign_up(client, "SELLER")
        stock = {}
        products = []
        for _ in range(args.products):
            pid = await create_product(client, seller, stock=1_000_000, price=random.randint(100, 10_000))
            products.append(pid)
            stock[pid] = 1_000_000
        scarce = await create_product(client, seller, stock=args.scarce_stock, price=4_999)
        stock[scarce] = args.scarce_stock
        buyers = [await sign_up(client) for _ in range(args.buyers)]

        run = Run(products, scarce)
        # The sign-ups' and products' records still being applied, or a bench
        # run just before, are not the idle stack.
        settled = await wait_for_consumers(client)
        idle = await idle_cores(args.idle_seconds)
        cpu_before, started = stack_cpu_seconds(), time.monotonic()
        await asyncio.gather(*(run.buyer_loop(client, b, started + args.duration, args.think) for b in buyers))
        elapsed = time.monotonic() - started
        cpu = cpu_ms_per_request(cpu_before, stack_cpu_seconds(), len(run.latencies), idle, elapsed)

        remaining = {}
        for pid in [scarce, *products]:
            async with client.get(f"/v1/products/{pid}") as r:
                remaining[pid] = int((await r.json())["stock"])

    oversold_units = max(0, run.sold[scarce] - args.scarce_stock)
    stock_mismatches = [pid for pid in stock if remaining[pid] != stock[pid] - run.sold[pid]]
    checked, double = await asyncio.to_thread(double_charged_checkouts, [b["id"] for b in buyers])
    lat = sorted(run.latencies)
    print(
        json.dumps(
            {
                "buyers": args.buyers,
                "think_s": args.think,
                "duration_s": round(elapsed, 1),
                "checkouts": len(lat),
                "throughput_per_s": rounded(len(lat) / elapsed),
                "confirmed_per_s": rounded(len(run.confirmed) / elapsed),
                "outcomes": dict(run.outcomes),
                "checkout_ms": {
                    name: rounded(percentile(lat, q) * 1000 if lat else None, 1)
                    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
                },
                "scarce_product": {
                    "stock": args.scarce_stock,
                    "sold": run.sold[scarce],
                    "remaining": remaining[scarce],
                },
                "oversells": oversold_units + len(stock_mismatches),
                "stock_mismatches": stock_mismatches,
                "retried_keys_answered_differently": run.retry_mismatches,
                "checkouts_checked_in_ledger": checked,
                "double_charges": double + run.retry_mismatches,
                "cpu_ms_per_checkout": cpu,
                "settle": settled,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
