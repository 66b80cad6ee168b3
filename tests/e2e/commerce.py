"""Helpers for the commerce end-to-end tests: sellers, products, carts and
checkouts through Envoy, plus read-only looks at the orders and payments
state behind them (PostgreSQL, and payments' internal gRPC API) for the
invariants a client cannot see: one authorization, nothing held."""

from __future__ import annotations

import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import psycopg

from aviary.payments.v1 import payments_pb2, payments_pb2_grpc
from services.kit.settings import load
from services.orders.settings import OrdersSettings
from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, Account, sign_up
from devstack.mesh_channels import open_channel


def sign_up_seller(http: httpx.Client) -> Account:
    username = unique_username("sl")
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "role": "SELLER"})
    assert r.status_code == 200, r.text
    return Account.signed_up(username, r.json())


def sign_up_many(http: httpx.Client, n: int, prefix: str = "b", workers: int = 8) -> list[Account]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: sign_up(http, prefix), range(n)))


def create_product(
    http: httpx.Client,
    seller: Account,
    *,
    stock: int,
    price_minor: int = 1250,
    currency: str = "USD",
    title: str | None = None,
) -> dict:
    r = http.post(
        "/v1/products",
        headers=seller.auth,
        json={
            "title": title or f"Thing {secrets.token_hex(3)}",
            "description": "made for tests",
            "priceMinor": str(price_minor),
            "currency": currency,
            "stock": str(stock),
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def product(http: httpx.Client, product_id: str) -> dict:
    r = http.get(f"/v1/products/{product_id}")
    assert r.status_code == 200, r.text
    return r.json()


def stock_of(http: httpx.Client, product_id: str) -> int:
    return int(product(http, product_id).get("stock", "0"))


def add_to_cart(http: httpx.Client, buyer: Account, product_id: str, quantity: int = 1) -> dict:
    r = http.post("/v1/cart/items", headers=buyer.auth, json={"productId": product_id, "quantity": quantity})
    assert r.status_code == 200, r.text
    return r.json()


def new_key() -> str:
    return f"k-{uuid.uuid4().hex}"


def checkout(
    http: httpx.Client,
    buyer: Account,
    key: str | None = None,
    payment_method: str = "pm_card_visa",
    timeout: float = 30.0,
    expected_total: int | None = None,
) -> httpx.Response:
    body = {"idempotencyKey": key or new_key(), "paymentMethod": payment_method}
    if expected_total is not None:
        body["expectedTotalMinor"] = str(expected_total)
    return http.post("/v1/checkouts", headers=buyer.auth, timeout=timeout, json=body)


def orders_of(http: httpx.Client, buyer: Account) -> list[dict]:
    r = http.get("/v1/orders", headers=buyer.auth, params={"pageSize": 100})
    assert r.status_code == 200, r.text
    return r.json()["orders"]


# --- behind the API (read-only) ---------------------------------------------------


def pg_connect() -> psycopg.Connection:
    """The orders service's own database (read-only here)."""
    return psycopg.connect(
        load(OrdersSettings).pg_dsn.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )


def checkouts_of(buyer_id: str) -> list[dict]:
    with pg_connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM orders.checkouts WHERE buyer_id = %s ORDER BY id", (int(buyer_id),))
        return cur.fetchall()


def payment_by_key(key: str) -> payments_pb2.Payment | None:
    with open_channel("payments") as ch:
        stub = payments_pb2_grpc.PaymentsServiceStub(ch)
        try:
            return stub.GetPayment(payments_pb2.GetPaymentRequest(idempotency_key=key), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise


def ledger(payment_id: str) -> list[payments_pb2.LedgerEntry]:
    with open_channel("payments") as ch:
        stub = payments_pb2_grpc.PaymentsServiceStub(ch)
        return list(
            stub.ListLedgerEntries(payments_pb2.ListLedgerEntriesRequest(payment_id=payment_id), timeout=5).entries
        )


def payments_of_checkout(checkout_row: dict) -> list[payments_pb2.Payment]:
    """Every payment any attempt of a checkout made (keys are per attempt)."""
    found = []
    for attempt in range(1, checkout_row["attempt"] + 1):
        p = payment_by_key(f"checkout-{checkout_row['id']}-{attempt}")
        if p is not None:
            found.append(p)
    return found


def successful_authorizations(payment_id: str) -> int:
    return sum(
        1
        for e in ledger(payment_id)
        if e.operation == payments_pb2.LEDGER_OPERATION_AUTHORIZE and e.outcome == payments_pb2.LEDGER_OUTCOME_SUCCEEDED
    )
