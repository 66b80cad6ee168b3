"""Orders migration 0003 against the devstack's PostgreSQL, in a scratch
database of its own: orders written before fulfilments existed get one per
seller at the order's delivery status, their moves are credited to the
seller when there is one, and the store reads them as parts."""

from __future__ import annotations

import dataclasses
import secrets

import psycopg
import pytest
import sqlalchemy as sa

from services.kit.stores import migrations, pg
from devstack.backends import pg_dsn as devstack_pg_dsn
from services.kit.settings import load
from services.orders.settings import OrdersSettings
from services.orders.store import OrdersStore

SINGLE, MULTI, UNCONFIRMED = 101, 102, 103


def _plain(dsn: str) -> str:
    return dsn.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def scratch_dsn():
    # The devstack's own role may create databases; the services' roles may not.
    dsn = devstack_pg_dsn()
    name = f"aviary_orders_mig_{secrets.token_hex(4)}"
    with psycopg.connect(_plain(dsn), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield sa.engine.make_url(dsn).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _legacy_orders(dsn: str) -> None:
    """Orders as revision 0002 knew them: one delivery status per order."""
    orders = [
        (SINGLE, "ORDER_STATUS_CONFIRMED", "DELIVERY_STATUS_SHIPPED", [10]),
        (MULTI, "ORDER_STATUS_CONFIRMED", "DELIVERY_STATUS_DELIVERED", [10, 20]),
        (UNCONFIRMED, "ORDER_STATUS_PENDING", "DELIVERY_STATUS_UNSPECIFIED", [30]),
    ]
    moves = {SINGLE: ["DELIVERY_STATUS_PACKED", "DELIVERY_STATUS_SHIPPED"], MULTI: ["DELIVERY_STATUS_DELIVERED"]}
    with psycopg.connect(_plain(dsn), autocommit=True) as conn:
        for order_id, status, delivery, sellers in orders:
            conn.execute(
                """INSERT INTO orders.orders (id, checkout_id, buyer_id, idempotency_key, status, total_minor,
                                currency, payment_status, delivery_status)
                            VALUES (%s, %s, 7, 'k-legacy', %s, 1000, 'USD', 'PAYMENT_STATUS_CAPTURED', %s)""",
                (order_id, order_id, status, delivery),
            )
            for line, seller in enumerate(sellers):
                conn.execute(
                    """INSERT INTO orders.order_items (order_id, line, product_id, seller_id, title, quantity,
                                    unit_price_minor) VALUES (%s, %s, %s, %s, 'thing', 1, 500)""",
                    (order_id, line, 1000 + line, seller),
                )
            if status == "ORDER_STATUS_CONFIRMED":
                history = ["DELIVERY_STATUS_PENDING", *moves[order_id]]
                for seq, step in enumerate(history):
                    conn.execute(
                        "INSERT INTO orders.delivery_events (order_id, seq, status, actor) VALUES (%s, %s, %s, %s)",
                        (order_id, seq, step, "checkout" if seq == 0 else "s"),
                    )


async def test_existing_orders_get_a_fulfilment_per_seller_and_keep_reading_the_same(scratch_dsn):
    migrations.upgrade("orders", "orders", scratch_dsn, revision="0002")
    _legacy_orders(scratch_dsn)

    migrations.upgrade("orders", "orders", scratch_dsn)

    with psycopg.connect(_plain(scratch_dsn)) as conn:
        parts = set(conn.execute("SELECT order_id, seller_id, delivery_status FROM orders.fulfilments").fetchall())
        credited = conn.execute(
            "SELECT order_id, seq, seller_id FROM orders.delivery_events ORDER BY order_id, seq"
        ).fetchall()
    assert parts == {
        (SINGLE, 10, "DELIVERY_STATUS_SHIPPED"),
        (MULTI, 10, "DELIVERY_STATUS_DELIVERED"),
        (MULTI, 20, "DELIVERY_STATUS_DELIVERED"),
        (UNCONFIRMED, 30, "DELIVERY_STATUS_UNSPECIFIED"),
    }
    # The confirmation is about the whole order; a multi-seller order's old moves moved all of it.
    assert credited == [(SINGLE, 0, None), (SINGLE, 1, 10), (SINGLE, 2, 10), (MULTI, 0, None), (MULTI, 1, None)]

    engine = pg.engine(dataclasses.replace(load(OrdersSettings), pg_dsn=scratch_dsn), pool_size=1)
    try:
        store = OrdersStore(engine, outbox=None, lease_seconds=10)
        single, multi = await store.get_order(SINGLE), await store.get_order(MULTI)
    finally:
        await engine.dispose()
    assert single.parts == {10: "DELIVERY_STATUS_SHIPPED"} and [h.seller_id for h in single.history] == [None, 10, 10]
    assert multi.parts == {10: "DELIVERY_STATUS_DELIVERED", 20: "DELIVERY_STATUS_DELIVERED"}
    assert (multi.cancel_state, multi.cancel_reason) == (None, "")
