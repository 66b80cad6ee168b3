"""orders and account deletion, against the running services: CountOpenSales
(identity asks it before deleting an account), ExportBuyerOrders (identity's
data export), and identity's AccountDeleted (consumer group orders-accounts):
the buyer's orders stay for the sellers, anonymised, and the buyer's running
checkouts are stopped and compensated."""

from __future__ import annotations

import datetime
import json
import random

import grpc
import psycopg
import pytest

from aviary.cart.v1 import cart_pb2_grpc
from aviary.catalog.v1 import catalog_pb2
from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from aviary.payments.v1 import payments_pb2
from services.kit.server.ids import IdGenerator
from services.kit.settings import service_addr
from tests.integration.account_events import account_deleted, publish, wait_until
from tests.integration.commerce_calls import buy, create_product, open_sales, pg_connect, ship, sign_up
from tests.integration.support import wait_serving

_ids = IdGenerator(random.randrange(1024))
PS = payments_pb2.PaymentStatus


@pytest.fixture(scope="module")
def orders():
    channel = wait_serving(service_addr("orders"))
    yield orders_pb2_grpc.OrdersServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def cart():
    channel = wait_serving(service_addr("cart"))
    yield cart_pb2_grpc.CartServiceStub(channel)
    channel.close()


def export(orders, buyer_id: str | int) -> list[orders_pb2.Order]:
    return list(orders.ExportBuyerOrders(orders_pb2.ExportBuyerOrdersRequest(buyer_id=str(buyer_id)), timeout=30))


def checkout_rows(buyer_id: str | int) -> list[dict]:
    with pg_connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM orders.checkouts WHERE buyer_id = %s", (int(buyer_id),))
        return cur.fetchall()


def test_open_sales_count_parts_not_yet_shipped_or_cancelled(identity, catalog, cart, orders):
    seller, other_seller, buyer = sign_up(identity, "SELLER"), sign_up(identity, "SELLER"), sign_up(identity)
    product, others = create_product(catalog, seller), create_product(catalog, other_seller)
    first = buy(cart, orders, buyer, product, others)
    second = buy(cart, orders, buyer, product)
    assert open_sales(orders, seller.id) == 2
    assert open_sales(orders, other_seller.id) == 1

    ship(orders, seller, first.id)
    assert open_sales(orders, seller.id) == 1
    # The other seller's part of the same order is still open.
    assert open_sales(orders, other_seller.id) == 1

    orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=second.id), metadata=buyer.auth, timeout=30)
    assert open_sales(orders, seller.id) == 0
    assert open_sales(orders, buyer.id) == 0


def test_open_sales_count_checkouts_already_priced_with_the_sellers_lines(orders):
    seller_id, buyer_id = _ids.next_id(), _ids.next_id()
    lines = [{"product_id": 1, "seller_id": seller_id, "title": "t", "quantity": 1, "unit_price_minor": 100}]
    in_flight = {}
    with pg_connect() as conn:
        # Leased far ahead, so the recovery sweep leaves them alone.
        for state in ("STARTED", "RESERVED", "ORDER_CREATED", "COMPENSATING"):
            checkout_id = _ids.next_id()
            in_flight[state] = checkout_id
            conn.execute(
                """INSERT INTO orders.checkouts (id, buyer_id, idempotency_key, payment_method, state, lines,
                                                 total_minor, currency, lease_until)
                   VALUES (%s, %s, %s, 'pm_card_visa', %s, %s, 100, 'USD', now() + interval '1 hour')""",
                (checkout_id, buyer_id, f"key-{checkout_id}", state, json.dumps(lines if state != "STARTED" else None)),
            )
        try:
            # RESERVED and ORDER_CREATED write the seller's part when they succeed.
            assert open_sales(orders, seller_id) == 2
        finally:
            conn.execute("UPDATE orders.checkouts SET state = 'FAILED' WHERE id = ANY(%s)", (list(in_flight.values()),))
    assert open_sales(orders, seller_id) == 0


def test_open_sales_refuse_a_malformed_seller_id(orders):
    for bad in ("", "seller", "-4"):
        with pytest.raises(grpc.RpcError) as err:
            open_sales(orders, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "seller_id" in err.value.details()


def test_export_streams_every_order_the_buyer_placed_newest_first_as_the_buyer_sees_it(identity, catalog, cart, orders):
    seller_a, seller_b, buyer = sign_up(identity, "SELLER"), sign_up(identity, "SELLER"), sign_up(identity)
    a, b = create_product(catalog, seller_a), create_product(catalog, seller_b)
    placed = [buy(cart, orders, buyer, a, b), buy(cart, orders, buyer, a)]
    exported = export(orders, buyer.id)
    assert [o.id for o in exported] == [o.id for o in reversed(placed)]
    # The buyer's view: every part, the whole total, the checkout key.
    assert exported[1] == placed[0]
    assert {f.seller_id for f in exported[1].fulfilments} == {seller_a.id, seller_b.id}
    assert exported[1].idempotency_key
    assert export(orders, sign_up(identity).id) == []


def test_export_pages_through_more_orders_than_one_page(orders):
    """More rows than one PostgreSQL page (100): all of them, in order, once."""
    buyer_id = _ids.next_id()
    order_ids = [_ids.next_id() for _ in range(230)]
    with pg_connect() as conn:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO orders.orders (id, checkout_id, buyer_id, idempotency_key, status, total_minor,
                                              currency, payment_status, delivery_status)
                   VALUES (%s, %s, %s, 'k', 'ORDER_STATUS_CANCELLED', 100, 'USD', 'PAYMENT_STATUS_VOIDED',
                           'DELIVERY_STATUS_UNSPECIFIED')""",
                [(order_id, -order_id, buyer_id) for order_id in order_ids],
            )
    assert [o.id for o in export(orders, buyer_id)] == [str(i) for i in sorted(order_ids, reverse=True)]


def test_export_refuses_a_malformed_buyer_id(orders):
    with pytest.raises(grpc.RpcError) as err:
        export(orders, "x")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "buyer_id" in err.value.details()


def test_a_deleted_buyers_orders_stay_for_the_seller_anonymised(identity, catalog, cart, orders):
    seller, buyer = sign_up(identity, "SELLER"), sign_up(identity)
    product = create_product(catalog, seller)
    order = buy(cart, orders, buyer, product)
    publish(account_deleted(buyer.id))

    def seller_sees_it_anonymised():
        got = orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.id), metadata=seller.auth, timeout=10)
        return got if got.buyer_deleted else None

    seen = wait_until(seller_sees_it_anonymised)
    assert seen.buyer_id == ""
    assert [i.product_id for i in seen.items] == [product.id]
    assert seen.status == orders_pb2.ORDER_STATUS_CONFIRMED
    listed = orders.ListOrders(orders_pb2.ListOrdersRequest(as_seller=True), metadata=seller.auth, timeout=10)
    assert [(o.id, o.buyer_deleted) for o in listed.orders] == [(order.id, True)]
    # Still the seller's to ship: deleting the buyer does not close the sale.
    assert open_sales(orders, seller.id) == 1
    # Nothing ties the rows to the buyer any more.
    assert checkout_rows(buyer.id) == []
    assert export(orders, buyer.id) == []
    with pg_connect() as conn:
        key = conn.execute("SELECT idempotency_key, buyer_id FROM orders.orders WHERE id = %s", (int(order.id),))
        assert key.fetchone() == ("", 0)
    # The buyer's token outlives the session for a while: no new checkout with it.
    with pytest.raises(grpc.RpcError) as err:
        buy(cart, orders, buyer, product)
    assert err.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    # A redelivery changes nothing.
    publish(account_deleted(buyer.id))
    again = orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.id), metadata=seller.auth, timeout=10)
    assert again == seen


def test_a_deleted_buyers_running_checkout_is_stopped_and_compensated(orders):
    """A saga under way (here RESERVED, its orchestrator gone) moves to
    COMPENSATING, undoing the step under way (authorize), and the recovery
    sweep ends it FAILED: nothing is left hanging."""
    buyer_id, checkout_id = _ids.next_id(), _ids.next_id()
    lines = [{"product_id": 1, "seller_id": 2, "title": "t", "quantity": 1, "unit_price_minor": 100}]
    with pg_connect() as conn:
        conn.execute(
            """INSERT INTO orders.checkouts (id, buyer_id, idempotency_key, payment_method, state, lines,
                                             total_minor, currency, lease_until)
               VALUES (%s, %s, 'key-in-flight', 'pm_card_visa', 'RESERVED', %s, 100, 'USD',
                       now() + interval '1 hour')""",
            (checkout_id, buyer_id, json.dumps(lines)),
        )
    publish(account_deleted(buyer_id))

    def row():
        with pg_connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT * FROM orders.checkouts WHERE id = %s", (checkout_id,))
            return cur.fetchone()

    stopped = wait_until(lambda: (r := row()) is not None and r["state"] == "COMPENSATING" and r)
    assert stopped["failed_step"] == "authorize"
    assert stopped["failure_code"] == "FAILED_PRECONDITION"
    assert "deleted" in stopped["failure_message"]
    assert (stopped["buyer_id"], stopped["idempotency_key"]) == (0, f"deleted-{checkout_id}")
    # As if its orchestrator had died: the sweep takes it over once the lease runs out.
    with pg_connect() as conn:
        conn.execute(
            "UPDATE orders.checkouts SET lease_until = %s WHERE id = %s",
            (datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), checkout_id),
        )
    ended = wait_until(lambda: (r := row())["state"] == "FAILED" and r, timeout=30)
    assert ended["failed_step"] == "authorize"


def test_a_deleted_sellers_running_checkouts_stop_and_new_ones_cannot_reserve_their_lines(
    identity, catalog, cart, orders
):
    seller, buyer = sign_up(identity, "SELLER"), sign_up(identity)
    product = create_product(catalog, seller)
    buyer_id, checkout_id = _ids.next_id(), _ids.next_id()
    lines = [
        {
            "product_id": int(product.id),
            "seller_id": int(seller.id),
            "title": "t",
            "quantity": 1,
            "unit_price_minor": 1000,
        }
    ]
    with pg_connect() as conn:
        conn.execute(
            """INSERT INTO orders.checkouts (id, buyer_id, idempotency_key, payment_method, state, lines,
                                             total_minor, currency, lease_until)
               VALUES (%s, %s, 'key-in-flight', 'pm_card_visa', 'ORDER_CREATED', %s, 1000, 'USD',
                       now() + interval '1 hour')""",
            (checkout_id, buyer_id, json.dumps(lines)),
        )
    publish(account_deleted(seller.id, role="SELLER"))

    def row():
        with pg_connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT * FROM orders.checkouts WHERE id = %s", (checkout_id,))
            return cur.fetchone()

    stopped = wait_until(lambda: (r := row())["state"] == "COMPENSATING" and r)
    assert stopped["failed_step"] == "capture"
    assert "seller" in stopped["failure_message"]
    with pg_connect() as conn:
        conn.execute("UPDATE orders.checkouts SET state = 'FAILED' WHERE id = %s", (checkout_id,))
    # Whether catalog has deactivated the product yet or not, a checkout of it is refused.
    with pytest.raises(grpc.RpcError) as err:
        buy(cart, orders, buyer, product)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert product.id in err.value.details()


def test_an_order_confirmed_just_before_its_seller_was_deleted_is_cancelled_for_the_buyer(
    identity, catalog, cart, orders
):
    """Identity counts open sales, then deletes: an order confirmed between
    the two (simulated here by deleting without asking) is cancelled, refunded
    and restocked; an order of which another part shipped stands."""
    seller, other_seller, buyer = sign_up(identity, "SELLER"), sign_up(identity, "SELLER"), sign_up(identity)
    product, others = create_product(catalog, seller, stock=3), create_product(catalog, other_seller)
    slipped = buy(cart, orders, buyer, product)
    partly_shipped = buy(cart, orders, buyer, product, others)
    ship(orders, other_seller, partly_shipped.id)
    publish(account_deleted(seller.id, role="SELLER"))

    def as_buyer(order_id):
        return orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), metadata=buyer.auth, timeout=10)

    done = wait_until(lambda: (o := as_buyer(slipped.id)).payment_status == PS.PAYMENT_STATUS_REFUNDED and o)
    assert done.status == orders_pb2.ORDER_STATUS_CANCELLED
    assert done.cancel_reason == "the seller's account was deleted"
    assert done.delivery_history[-1].actor == "system"
    stands = as_buyer(partly_shipped.id)
    assert stands.status == orders_pb2.ORDER_STATUS_CONFIRMED
    assert open_sales(orders, seller.id) == 1


def test_checkout_refuses_lines_of_a_seller_orders_knows_is_deleted_even_while_catalog_sells_them(
    identity, catalog, cart, orders
):
    """Orders' own guard, apart from catalog's deactivation: the seller is
    recorded as deleted in orders alone, so the catalog still has the product
    on sale; the checkout is refused at the move to RESERVED and its stock
    hold released."""
    seller, buyer = sign_up(identity, "SELLER"), sign_up(identity)
    product = create_product(catalog, seller, stock=2)
    with pg_connect() as conn:
        conn.execute("INSERT INTO orders.deleted_sellers (seller_id) VALUES (%s)", (int(seller.id),))
    with pytest.raises(grpc.RpcError) as err:
        buy(cart, orders, buyer, product)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "seller's account was deleted" in err.value.details()
    [failed] = checkout_rows(buyer.id)
    assert (failed["state"], failed["failed_step"]) == ("FAILED", "reserve")
    assert catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id), timeout=10).stock == 2
