"""Orders with more than one seller, and the buyer's cancel, through Envoy:
each seller reads and moves only their own part (fulfilment), the delivery
follows its state machine, a cancel before shipping refunds through the
provider (the payments ledger) and restocks, and sellers hear of their orders."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest

from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from aviary.payments.v1 import payments_pb2
from tests.e2e.commerce import (
    add_to_cart,
    checkout,
    checkouts_of,
    create_product,
    ledger,
    payment_by_key,
    pg_connect,
    sign_up_seller,
    stock_of,
)
from tests.e2e.edge import error_message, sign_up, wait_until
from tests.e2e.fanout_support import devstack, pid_info, process_gone
from devstack.mesh_channels import open_channel

pytestmark = pytest.mark.serial

PS = payments_pb2.PaymentStatus


@pytest.fixture()
def two_sellers(http):
    """(seller a, seller b, buyer, order, a's product, b's product): the buyer
    bought 2 of a's product at 10.00 and 1 of b's at 7.00 in one checkout."""
    a, b = sign_up_seller(http), sign_up_seller(http)
    product_a = create_product(http, a, stock=5, price_minor=1000)
    product_b = create_product(http, b, stock=5, price_minor=700)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, product_a["id"], 2)
    add_to_cart(http, buyer, product_b["id"], 1)
    r = checkout(http, buyer)
    assert r.status_code == 200, r.text
    return a, b, buyer, r.json(), product_a, product_b


def advance(http, who, order_id: str, status: str, note: str = ""):
    return http.post(
        f"/v1/orders/{order_id}:advanceDelivery",
        headers=who.auth,
        json={"status": f"DELIVERY_STATUS_{status}", "note": note},
    )


def cancel(http, who, order_id: str, reason: str = ""):
    return http.post(f"/v1/orders/{order_id}:cancel", headers=who.auth, json={"reason": reason} if reason else {})


def get_order(http, who, order_id: str) -> dict:
    r = http.get(f"/v1/orders/{order_id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def parts(order: dict) -> dict[str, str]:
    return {f["sellerId"]: f["deliveryStatus"] for f in order["fulfilments"]}


def payment_of(buyer) -> payments_pb2.Payment:
    [row] = checkouts_of(buyer.id)
    return payment_by_key(f"checkout-{row['id']}-{row['attempt']}")


def test_the_buyer_sees_one_fulfilment_per_seller_with_its_lines_and_subtotal(http, two_sellers):
    a, b, buyer, order, product_a, product_b = two_sellers
    got = get_order(http, buyer, order["id"])
    assert [
        (f["sellerId"], [i["productId"] for i in f["items"]], f["subtotalMinor"], f["deliveryStatus"])
        for f in got["fulfilments"]
    ] == [
        (a.id, [product_a["id"]], "2000", "DELIVERY_STATUS_PENDING"),
        (b.id, [product_b["id"]], "700", "DELIVERY_STATUS_PENDING"),
    ]
    assert got["totalMinor"] == "2700" and len(got["items"]) == 2


def test_a_seller_reads_only_their_own_part_of_the_order(http, two_sellers):
    a, b, buyer, order, product_a, _ = two_sellers
    for seller_view in (
        get_order(http, a, order["id"]),
        *[
            o
            for o in http.get("/v1/orders", headers=a.auth, params={"asSeller": True}).json()["orders"]
            if o["id"] == order["id"]
        ],
    ):
        assert [i["productId"] for i in seller_view["items"]] == [product_a["id"]]
        assert seller_view["totalMinor"] == "2000"
        assert [f["sellerId"] for f in seller_view["fulfilments"]] == [a.id]
        assert seller_view.get("idempotencyKey", "") == ""
        # B's line (its price, its seller) is nowhere in A's view.
        assert [i["unitPriceMinor"] for i in seller_view["items"]] == ["1000"] and b.id not in str(seller_view)


def test_each_seller_advances_only_their_own_part_and_the_order_is_its_least_advanced_part(http, two_sellers):
    a, b, buyer, order, _, _ = two_sellers
    r = advance(http, a, order["id"], "SHIPPED", "tracking A-1")
    assert r.status_code == 200, r.text
    assert r.json()["deliveryStatus"] == "DELIVERY_STATUS_SHIPPED"

    got = get_order(http, buyer, order["id"])
    assert parts(got) == {a.id: "DELIVERY_STATUS_SHIPPED", b.id: "DELIVERY_STATUS_PENDING"}
    assert got["deliveryStatus"] == "DELIVERY_STATUS_PENDING"
    # B's view is untouched by A's move, and A's note is not in it.
    b_view = get_order(http, b, order["id"])
    assert b_view["deliveryStatus"] == "DELIVERY_STATUS_PENDING"
    assert "tracking A-1" not in str(b_view)

    for status in ("SHIPPED", "DELIVERED"):
        assert advance(http, b, order["id"], status).status_code == 200
    assert advance(http, a, order["id"], "DELIVERED").status_code == 200
    got = get_order(http, buyer, order["id"])
    assert got["deliveryStatus"] == "DELIVERY_STATUS_DELIVERED"
    moves = [(h["sellerId"], h["status"]) for h in got["deliveryHistory"][1:]]
    assert moves == [
        (a.id, "DELIVERY_STATUS_SHIPPED"),
        (b.id, "DELIVERY_STATUS_SHIPPED"),
        (b.id, "DELIVERY_STATUS_DELIVERED"),
        (a.id, "DELIVERY_STATUS_DELIVERED"),
    ]


def test_pending_to_delivered_is_a_412_naming_the_next_status(http, two_sellers):
    a, _, buyer, order, _, _ = two_sellers
    r = advance(http, a, order["id"], "DELIVERED")
    assert r.status_code == 412, r.text
    assert "packed or shipped" in error_message(r)
    assert get_order(http, buyer, order["id"])["deliveryHistory"][-1]["status"] == "DELIVERY_STATUS_PENDING"


@pytest.mark.parametrize(
    "body", [{"status": 99}, {"status": 5}, {"status": -1}, {"status": "DELIVERY_STATUS_SHIPPED", "note": "a\u0000b"}]
)
def test_undefined_statuses_and_control_characters_are_400s(http, two_sellers, body):
    a, _, _, order, _, _ = two_sellers
    r = http.post(f"/v1/orders/{order['id']}:advanceDelivery", headers=a.auth, json=body)
    assert r.status_code == 400, r.text


def test_operators_name_the_part_they_move_when_the_order_has_several(http, two_sellers):
    _, b, buyer, order, _, _ = two_sellers
    with open_channel("orders") as ch:
        stub = orders_pb2_grpc.OrdersServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.OperatorAdvanceDelivery(
                orders_pb2.OperatorAdvanceDeliveryRequest(
                    order_id=order["id"], status=orders_pb2.DELIVERY_STATUS_PACKED
                ),
                timeout=5,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "seller_id" in err.value.details()
        stub.OperatorAdvanceDelivery(
            orders_pb2.OperatorAdvanceDeliveryRequest(
                order_id=order["id"], status=orders_pb2.DELIVERY_STATUS_PACKED, seller_id=b.id
            ),
            timeout=5,
        )
    assert parts(get_order(http, buyer, order["id"]))[b.id] == "DELIVERY_STATUS_PACKED"


def test_a_cancel_before_shipping_refunds_through_the_provider_and_restocks(http, two_sellers):
    a, b, buyer, order, product_a, product_b = two_sellers
    assert advance(http, a, order["id"], "PACKED").status_code == 200
    assert (stock_of(http, product_a["id"]), stock_of(http, product_b["id"])) == (3, 4)

    r = cancel(http, buyer, order["id"], "found it cheaper")

    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED"
    assert cancelled["paymentStatus"] == "PAYMENT_STATUS_REFUNDED"
    assert cancelled["deliveryStatus"] == "DELIVERY_STATUS_CANCELLED"
    assert cancelled["cancelReason"] == "found it cheaper" and cancelled["cancelTime"]
    assert set(parts(cancelled).values()) == {"DELIVERY_STATUS_CANCELLED"}
    assert (stock_of(http, product_a["id"]), stock_of(http, product_b["id"])) == (5, 5)
    payment = payment_of(buyer)
    assert payment.status == PS.PAYMENT_STATUS_REFUNDED
    refunds = [
        e
        for e in ledger(payment.id)
        if e.operation == payments_pb2.LEDGER_OPERATION_REFUND and e.outcome == payments_pb2.LEDGER_OUTCOME_SUCCEEDED
    ]
    assert [e.amount_minor for e in refunds] == [2700]

    # A repeat answers the cancelled order and refunds nothing more.
    again = cancel(http, buyer, order["id"])
    assert again.status_code == 200 and again.json()["status"] == "ORDER_STATUS_CANCELLED"
    assert len([e for e in ledger(payment.id) if e.operation == payments_pb2.LEDGER_OPERATION_REFUND]) == 1
    assert (stock_of(http, product_a["id"]), stock_of(http, product_b["id"])) == (5, 5)
    # Nothing moves once cancelled.
    assert advance(http, b, order["id"], "SHIPPED").status_code == 412


def test_a_cancel_after_any_part_shipped_is_a_412_and_changes_nothing(http, two_sellers):
    _, b, buyer, order, _, product_b = two_sellers
    assert advance(http, b, order["id"], "SHIPPED").status_code == 200

    r = cancel(http, buyer, order["id"])

    assert r.status_code == 412, r.text
    assert "shipped" in error_message(r)
    got = get_order(http, buyer, order["id"])
    assert got["status"] == "ORDER_STATUS_CONFIRMED" and got["paymentStatus"] == "PAYMENT_STATUS_CAPTURED"
    assert stock_of(http, product_b["id"]) == 4
    assert payment_of(buyer).status == PS.PAYMENT_STATUS_CAPTURED


def test_only_the_buyer_may_cancel(http, two_sellers):
    a, _, buyer, order, _, _ = two_sellers
    stranger = sign_up(http, "str")
    assert cancel(http, stranger, order["id"]).status_code == 404
    assert cancel(http, a, order["id"]).status_code == 403
    r = http.post(f"/v1/orders/{order['id']}:cancel", json={})
    assert r.status_code == 401
    r = cancel(http, buyer, order["id"], "x" * 281)
    assert r.status_code == 400 and error_message(r).startswith("reason")
    assert get_order(http, buyer, order["id"])["status"] == "ORDER_STATUS_CONFIRMED"


def _notices(http, who, kind: str, order_id: str) -> list[dict]:
    r = http.get("/v1/notifications", headers=who.auth, params={"pageSize": 50})
    assert r.status_code == 200, r.text
    return [n for n in r.json()["notifications"] if n["kind"] == kind and n.get("orderId") == order_id]


def test_each_seller_is_notified_of_the_confirmed_order_and_of_its_cancel_with_only_their_lines(http, two_sellers):
    a, b, buyer, order, _, _ = two_sellers
    kind = "NOTIFICATION_KIND_NEW_ORDER"
    got_a = wait_until(lambda: _notices(http, a, kind, order["id"]), timeout=15)
    got_b = wait_until(lambda: _notices(http, b, kind, order["id"]), timeout=15)
    assert [n["text"] for n in got_a] == [f"New order {order['id']}: 2 items of yours (USD 20.00)"]
    assert [n["text"] for n in got_b] == [f"New order {order['id']}: 1 item of yours (USD 7.00)"]
    assert _notices(http, buyer, kind, order["id"]) == []

    assert cancel(http, buyer, order["id"]).status_code == 200
    kind = "NOTIFICATION_KIND_ORDER_CANCELLED"
    got_b = wait_until(lambda: _notices(http, b, kind, order["id"]), timeout=15)
    assert got_b and "1 item of yours (USD 7.00)" in got_b[0]["text"]
    told = wait_until(
        lambda: (
            _notices(http, buyer, "NOTIFICATION_KIND_ORDER_STATUS", order["id"])
            if any(
                "cancelled" in n["text"] for n in _notices(http, buyer, "NOTIFICATION_KIND_ORDER_STATUS", order["id"])
            )
            else None
        ),
        timeout=15,
    )
    assert told and "USD 27.00 will be refunded" in told[0]["text"]


def _cancel_state(order_id: str) -> str | None:
    with pg_connect() as conn:
        return conn.execute("SELECT cancel_state FROM orders.orders WHERE id = %s", (int(order_id),)).fetchone()[0]


def test_a_cancel_whose_process_was_killed_mid_refund_is_finished_by_the_sweep_once(http):
    seller = sign_up_seller(http)
    item = create_product(http, seller, stock=4)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 2)
    # pm_fault_slow: every provider call takes 3 s, so the cancel is caught in its refund.
    r = checkout(http, buyer, payment_method="pm_fault_slow")
    assert r.status_code == 200, r.text
    order = r.json()
    assert stock_of(http, item["id"]) == 2

    thread = threading.Thread(target=_try, args=(lambda: cancel(http, buyer, order["id"]),))
    thread.start()
    assert wait_until(lambda: _cancel_state(order["id"]) == "RESTOCKED", timeout=10)
    time.sleep(0.5)  # the refund is now with the (slow) provider
    info = pid_info("orders")
    assert info is not None, "orders is not running"
    try:
        os.killpg(info["pgid"], signal.SIGKILL)
        assert wait_until(lambda: process_gone(info["pid"]), timeout=10)
    finally:
        devstack("up", "orders")
    thread.join(timeout=30)

    # The restarted service's sweep takes the cancel over once its lease ran out.
    assert wait_until(lambda: _cancel_state(order["id"]) == "DONE", timeout=60, interval=0.5)
    got = get_order(http, buyer, order["id"])
    assert got["status"] == "ORDER_STATUS_CANCELLED" and got["paymentStatus"] == "PAYMENT_STATUS_REFUNDED"
    assert stock_of(http, item["id"]) == 4
    payment = payment_of(buyer)
    assert payment.status == PS.PAYMENT_STATUS_REFUNDED
    assert [e.outcome for e in ledger(payment.id) if e.operation == payments_pb2.LEDGER_OPERATION_REFUND] == [
        payments_pb2.LEDGER_OUTCOME_SUCCEEDED
    ]


def _try(call):
    try:
        return call()
    except Exception as exc:  # the connection dies with the process
        return exc
