"""Orders after checkout: sellers (and operators, over internal gRPC) move
the delivery along, the history records every step, the buyer is notified of
the confirmation and of every change (through Kafka)."""

from __future__ import annotations

import pytest

from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_seller
from tests.e2e.edge import error_message, sign_up, wait_until
from devstack.mesh_channels import open_channel


@pytest.fixture()
def sale(http):
    """(seller, buyer, confirmed order)"""
    seller = sign_up_seller(http)
    item = create_product(http, seller, stock=3)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    r = checkout(http, buyer)
    assert r.status_code == 200, r.text
    return seller, buyer, r.json()


def advance(http, who, order_id: str, status: str, note: str = ""):
    return http.post(
        f"/v1/orders/{order_id}:advanceDelivery",
        headers=who.auth,
        json={"status": f"DELIVERY_STATUS_{status}", "note": note},
    )


def order_notices(http, buyer, order_id: str) -> list[dict]:
    r = http.get("/v1/notifications", headers=buyer.auth, params={"pageSize": 50})
    assert r.status_code == 200, r.text
    return [
        n
        for n in r.json()["notifications"]
        if n["kind"] == "NOTIFICATION_KIND_ORDER_STATUS" and n.get("orderId") == order_id
    ]


def test_the_seller_moves_delivery_forward_and_the_history_records_it(http, sale):
    seller, buyer, order = sale
    for status, note in [("PACKED", ""), ("SHIPPED", "tracking ZX-42"), ("DELIVERED", "")]:
        r = advance(http, seller, order["id"], status, note)
        assert r.status_code == 200, r.text
        assert r.json()["deliveryStatus"] == f"DELIVERY_STATUS_{status}"

    got = http.get(f"/v1/orders/{order['id']}", headers=buyer.auth).json()
    history = got["deliveryHistory"]
    assert [h["status"] for h in history] == [
        "DELIVERY_STATUS_PENDING",
        "DELIVERY_STATUS_PACKED",
        "DELIVERY_STATUS_SHIPPED",
        "DELIVERY_STATUS_DELIVERED",
    ]
    assert history[2]["note"] == "tracking ZX-42" and history[2]["actor"] == seller.id
    times = [h["time"] for h in history]
    assert times == sorted(times)


def test_the_buyer_is_notified_of_the_confirmation_and_of_each_delivery_change(http, sale):
    seller, buyer, order = sale
    confirmed = wait_until(lambda: order_notices(http, buyer, order["id"]), timeout=15)
    assert len(confirmed) == 1 and "confirm" in confirmed[0]["text"].lower()
    assert advance(http, seller, order["id"], "SHIPPED", "on its way").status_code == 200

    notices = wait_until(
        lambda: (lambda ns: ns if len(ns) >= 2 else None)(order_notices(http, buyer, order["id"])), timeout=15
    )

    assert notices and len(notices) == 2, notices
    assert "ship" in notices[0]["text"].lower()
    # The seller is not notified of their own order's delivery.
    assert order_notices(http, seller, order["id"]) == []


def test_delivery_only_moves_forward(http, sale):
    seller, _, order = sale
    assert advance(http, seller, order["id"], "SHIPPED").status_code == 200
    for status in ("PACKED", "SHIPPED"):
        r = advance(http, seller, order["id"], status)
        assert r.status_code == 412, r.text
        assert "forward" in error_message(r)
    r = advance(http, seller, order["id"], "PENDING")
    assert r.status_code == 400 and error_message(r).startswith("status")


def test_only_the_orders_seller_may_advance_it(http, sale):
    _, buyer, order = sale
    stranger = sign_up(http, "str")
    other_seller = sign_up_seller(http)
    assert advance(http, buyer, order["id"], "PACKED").status_code == 403
    assert advance(http, stranger, order["id"], "PACKED").status_code == 404
    assert advance(http, other_seller, order["id"], "PACKED").status_code == 404
    got = http.get(f"/v1/orders/{order['id']}", headers=buyer.auth).json()
    assert got["deliveryStatus"] == "DELIVERY_STATUS_PENDING" and len(got["deliveryHistory"]) == 1


def test_operators_advance_any_order_over_internal_grpc_which_the_edge_does_not_route(http, sale):
    _, buyer, order = sale
    with open_channel("orders") as ch:
        stub = orders_pb2_grpc.OrdersServiceStub(ch)
        updated = stub.OperatorAdvanceDelivery(
            orders_pb2.OperatorAdvanceDeliveryRequest(
                order_id=order["id"], status=orders_pb2.DELIVERY_STATUS_PACKED, operator_name="ops-ann"
            ),
            timeout=5,
        )
    assert updated.delivery_status == orders_pb2.DELIVERY_STATUS_PACKED
    assert updated.delivery_history[-1].actor == "ops-ann"
    # The same method through Envoy, even with a valid token, goes nowhere.
    r = http.post(
        "/aviary.orders.v1.OrdersService/OperatorAdvanceDelivery",
        headers={**buyer.auth, "content-type": "application/json"},
        json={"orderId": order["id"], "status": "SHIPPED"},
    )
    assert r.status_code == 404


def test_an_unknown_or_malformed_order_id_is_refused(http):
    buyer = sign_up(http, "buy")
    assert http.get("/v1/orders/123456789", headers=buyer.auth).status_code == 404
    r = http.get("/v1/orders/abc", headers=buyer.auth)
    assert r.status_code == 400 and error_message(r).startswith("order_id")
