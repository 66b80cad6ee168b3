"""How an order whose buyer deleted their account reads (buyer id 0 in the
store): anonymised for everyone, its sellers' parts as before."""

from __future__ import annotations

import datetime

from aviary.orders.v1 import orders_pb2
from services.orders.model import Line
from services.orders.servicer import _order_proto, _order_view
from services.orders.store import DeliveryRecord, OrderRecord

AT = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def order(buyer_id: int) -> OrderRecord:
    return OrderRecord(
        id=10,
        checkout_id=11,
        buyer_id=buyer_id,
        idempotency_key="" if buyer_id == 0 else "k-12345678",
        status="ORDER_STATUS_CONFIRMED",
        total_minor=3000,
        currency="USD",
        payment_status="PAYMENT_STATUS_CAPTURED",
        delivery_status="DELIVERY_STATUS_PENDING",
        created_at=AT,
        lines=[Line(1, 7, "mug", 1, 1000), Line(2, 8, "spoon", 2, 1000)],
        history=[DeliveryRecord("DELIVERY_STATUS_PENDING", "checkout", "order confirmed", AT)],
        parts={7: "DELIVERY_STATUS_PENDING", 8: "DELIVERY_STATUS_SHIPPED"},
    )


def test_an_anonymised_order_names_no_buyer_and_says_so():
    whole = _order_proto(order(0))
    assert (whole.buyer_id, whole.buyer_deleted, whole.idempotency_key) == ("", True, "")
    assert whole.total_minor == 3000 and len(whole.fulfilments) == 2


def test_a_seller_still_reads_their_own_part_of_an_anonymised_order():
    part = _order_view(order(0), 8)
    assert (part.buyer_id, part.buyer_deleted) == ("", True)
    assert [i.product_id for i in part.items] == ["2"]
    assert part.total_minor == 2000
    assert part.delivery_status == orders_pb2.DELIVERY_STATUS_SHIPPED


def test_an_order_of_a_live_buyer_is_not_marked():
    whole = _order_view(order(5), 5)
    assert (whole.buyer_id, whole.buyer_deleted, whole.idempotency_key) == ("5", False, "k-12345678")
