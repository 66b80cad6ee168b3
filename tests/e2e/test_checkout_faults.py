"""Checkout under faults, on the real stack: the payment provider really
stopped, and the orders orchestrator really killed (SIGKILL) mid-saga.

These tests stop and start stack components, so they restore them in
`finally` blocks whatever happens."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time

import pytest

from aviary.payments.v1 import payments_pb2
from tests.e2e.commerce import (
    add_to_cart,
    checkout,
    checkouts_of,
    create_product,
    new_key,
    orders_of,
    payments_of_checkout,
    sign_up_seller,
    stock_of,
    successful_authorizations,
)
from tests.e2e.edge import error_message, follow, post, sign_up, wait_until
from tests.e2e.fanout_support import devstack, pid_info, process_gone

pytestmark = pytest.mark.serial

PS = payments_pb2.PaymentStatus


@pytest.fixture(scope="module")
def seller(http):
    return sign_up_seller(http)


def _home_latencies(http, reader, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        r = http.get("/v1/timelines/home", headers=reader.auth, params={"pageSize": 20})
        out.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
    return out


def test_a_stopped_payment_provider_fails_checkouts_fast_and_leaves_timelines_alone(http, seller):
    item = create_product(http, seller, stock=20)
    author, reader = sign_up(http, "au"), sign_up(http, "rd")
    follow(http, reader, author)
    for i in range(5):
        post(http, author, f"outage test post {i}")
    buyers = [sign_up(http, "buy") for _ in range(6)]
    for b in buyers:
        add_to_cart(http, b, item["id"], 1)
    before = _home_latencies(http, reader, 20)
    keys = {b.id: new_key() for b in buyers}

    devstack("down", "stripe-mock")
    try:
        during, elapsed, responses = [], [], []
        for b in buyers:
            started = time.perf_counter()
            responses.append(checkout(http, b, keys[b.id]))
            elapsed.append(time.perf_counter() - started)
            during += _home_latencies(http, reader, 4)
        # Posting still works during the outage.
        post(http, author, "posted while payments are down")
    finally:
        devstack("up", "stripe-mock")

    assert [r.status_code for r in responses] == [503] * len(buyers), [r.text for r in responses]
    assert all("nothing was charged" in error_message(r) for r in responses)
    # Fast: no checkout waits for a provider timeout, let alone retries.
    assert max(elapsed) < 3.0, elapsed
    # Nothing is held or charged, and the timeline did not slow down (a
    # generous bound: this is about isolation, not a benchmark).
    assert stock_of(http, item["id"]) == 20
    assert statistics.median(during) < 5 * statistics.median(before) + 0.05, (before, during)
    for b in buyers:
        [row] = checkouts_of(b.id)
        assert row["state"] == "FAILED" and row["retryable"]
        assert all(p.status in (PS.PAYMENT_STATUS_VOIDED,) for p in payments_of_checkout(row))
    # Once the provider is back (and the breaker closes), the same key goes through.
    b = buyers[0]
    r = wait_until(
        lambda: (lambda resp: resp if resp.status_code == 200 else None)(checkout(http, b, keys[b.id])),
        timeout=20,
        interval=1.0,
    )
    assert r is not None, "checkout did not recover after stripe-mock came back"
    assert r.json()["status"] == "ORDER_STATUS_CONFIRMED"
    assert stock_of(http, item["id"]) == 19


def _kill_orders() -> None:
    info = pid_info("orders")
    assert info is not None, "orders is not running"
    os.killpg(info["pgid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(info["pid"]), timeout=10)


def test_an_orchestrator_killed_mid_saga_leaves_every_saga_completed_or_compensated(http, seller):
    item = create_product(http, seller, stock=10)
    buyers = [sign_up(http, "buy") for _ in range(3)]
    for b in buyers:
        add_to_cart(http, b, item["id"], 2)
    keys = {b.id: new_key() for b in buyers}
    # pm_fault_slow: every provider call takes 3 s (payments' test-only fault
    # injection), so the sagas are caught at known steps: the first in its
    # capture, the others in their authorization.
    results: dict[str, object] = {}

    def run(b):
        try:
            results[b.id] = checkout(http, b, keys[b.id], payment_method="pm_fault_slow")
        except Exception as exc:  # the connection dies with the orchestrator
            results[b.id] = exc

    threads = [threading.Thread(target=run, args=(buyers[0],))]
    threads[0].start()
    time.sleep(4.5)
    threads += [threading.Thread(target=run, args=(b,)) for b in buyers[1:]]
    for t in threads[1:]:
        t.start()
    time.sleep(1.5)
    states_at_kill = {b.id: [r["state"] for r in checkouts_of(b.id)] for b in buyers}
    try:
        _kill_orders()
    finally:
        devstack("up", "orders")
    for t in threads:
        t.join(timeout=30)

    assert states_at_kill[buyers[0].id] == ["ORDER_CREATED"], states_at_kill
    assert all(states_at_kill[b.id] == ["RESERVED"] for b in buyers[1:]), states_at_kill
    # The restarted orchestrator takes the sagas over once their lease runs out.
    done = wait_until(
        lambda: all(r["state"] in ("SUCCEEDED", "FAILED") for b in buyers for r in checkouts_of(b.id)),
        timeout=60,
        interval=0.5,
    )
    assert done, {b.id: [r["state"] for r in checkouts_of(b.id)] for b in buyers}

    sold = 0
    for b in buyers:
        [row] = checkouts_of(b.id)
        payments = payments_of_checkout(row)
        orders = orders_of(http, b)
        if row["state"] == "SUCCEEDED":
            sold += 2
            [order] = orders
            assert order["status"] == "ORDER_STATUS_CONFIRMED" and order["paymentStatus"] == "PAYMENT_STATUS_CAPTURED"
            [payment] = payments
            assert payment.status == PS.PAYMENT_STATUS_CAPTURED and successful_authorizations(payment.id) == 1
        else:
            assert all(o["status"] == "ORDER_STATUS_CANCELLED" for o in orders)
            assert all(
                p.status in (PS.PAYMENT_STATUS_VOIDED, PS.PAYMENT_STATUS_REFUNDED, PS.PAYMENT_STATUS_DECLINED)
                for p in payments
            )
        # The client's retry of its key gets the saga's final answer.
        again = checkout(http, b, keys[b.id], payment_method="pm_fault_slow")
        if row["state"] == "SUCCEEDED":
            assert again.status_code == 200 and again.json()["id"] == orders[0]["id"]
        else:
            assert again.status_code >= 400 and row["failure_message"]
    # Stock adds up: nothing oversold, nothing left held.
    assert stock_of(http, item["id"]) == 10 - sold
