"""The checkout saga end to end through Envoy, against the real stack:
inventory in PostgreSQL, payments through stripe-mock, orders, carts in Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from aviary.payments.v1 import payments_pb2
from services.kit.settings import service_addr
from tests.e2e.fanout_support import counter_value
from tests.e2e.commerce import (
    add_to_cart,
    checkout,
    checkouts_of,
    create_product,
    new_key,
    orders_of,
    payment_by_key,
    payments_of_checkout,
    sign_up_many,
    sign_up_seller,
    stock_of,
    successful_authorizations,
)
from tests.e2e.edge import error_message, sign_up

pytestmark = pytest.mark.serial

PS = payments_pb2.PaymentStatus


@pytest.fixture(scope="module")
def seller(http):
    return sign_up_seller(http)


def test_a_checkout_confirms_an_order_charges_once_and_empties_the_cart(http, seller):
    item = create_product(http, seller, stock=5, price_minor=1250)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 2)
    key = new_key()

    r = checkout(http, buyer, key)

    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    assert order["paymentStatus"] == "PAYMENT_STATUS_CAPTURED"
    assert order["deliveryStatus"] == "DELIVERY_STATUS_PENDING"
    assert order["buyerId"] == buyer.id
    assert order["totalMinor"] == "2500" and order["currency"] == "USD"
    assert [(i["productId"], i["quantity"], i["unitPriceMinor"]) for i in order["items"]] == [(item["id"], "2", "1250")]
    assert stock_of(http, item["id"]) == 3
    cart = http.get("/v1/cart", headers=buyer.auth).json()
    assert cart.get("items", []) == []
    # The order reads back, alone and in the buyer's list.
    got = http.get(f"/v1/orders/{order['id']}", headers=buyer.auth)
    assert got.status_code == 200 and got.json()["id"] == order["id"]
    assert [o["id"] for o in orders_of(http, buyer)] == [order["id"]]
    # One payment, authorized once and captured once.
    [row] = checkouts_of(buyer.id)
    payment = payment_by_key(f"checkout-{row['id']}-1")
    assert payment.status == PS.PAYMENT_STATUS_CAPTURED and payment.amount_minor == 2500
    assert successful_authorizations(payment.id) == 1


def test_retrying_a_key_returns_the_first_order_and_charges_nothing_more(http, seller):
    item = create_product(http, seller, stock=5)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    key = new_key()
    first = checkout(http, buyer, key)
    assert first.status_code == 200, first.text
    # The buyer fills the cart again: a retry of the old key must not buy it.
    add_to_cart(http, buyer, item["id"], 1)

    again = checkout(http, buyer, key)

    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert stock_of(http, item["id"]) == 4
    assert len(orders_of(http, buyer)) == 1


def test_the_same_key_five_times_at_once_makes_one_order_and_one_authorization(http, seller):
    item = create_product(http, seller, stock=10)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    key = new_key()

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: checkout(http, buyer, key), range(5)))

    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    [row] = checkouts_of(buyer.id)
    [payment] = payments_of_checkout(row)
    assert successful_authorizations(payment.id) == 1
    assert stock_of(http, item["id"]) == 9
    assert len(orders_of(http, buyer)) == 1


def test_200_buyers_for_10_units_make_exactly_10_paid_orders(http, seller):
    item = create_product(http, seller, stock=10, price_minor=999)
    buyers = sign_up_many(http, 200, "rush")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda b: add_to_cart(http, b, item["id"], 1), buyers))

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda b: checkout(http, b), buyers))

    codes = [r.status_code for r in responses]
    assert codes.count(200) == 10, codes
    # Everyone else is refused cleanly: 412 saying the stock ran out.
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} == {412}, {r.text for r in refused}
    assert all("stock" in error_message(r).lower() or "left" in error_message(r).lower() for r in refused)
    assert stock_of(http, item["id"]) == 0
    winners = [b for b, r in zip(buyers, responses) if r.status_code == 200]
    for buyer in winners:
        [order] = orders_of(http, buyer)
        assert order["status"] == "ORDER_STATUS_CONFIRMED" and order["paymentStatus"] == "PAYMENT_STATUS_CAPTURED"
    # Losers were never charged: their checkouts failed before any payment.
    for buyer, r in zip(buyers, responses):
        if r.status_code != 200:
            [row] = checkouts_of(buyer.id)
            assert row["state"] == "FAILED" and payments_of_checkout(row) == []
            assert orders_of(http, buyer) == []


def test_a_declined_card_releases_the_stock_and_makes_no_order(http, seller):
    item = create_product(http, seller, stock=3)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 2)
    key = new_key()

    r = checkout(http, buyer, key, payment_method="pm_card_chargeDeclined")

    assert r.status_code == 412, r.text
    assert "declined" in error_message(r)
    assert stock_of(http, item["id"]) == 3
    assert orders_of(http, buyer) == []
    [row] = checkouts_of(buyer.id)
    assert row["state"] == "FAILED"
    [payment] = payments_of_checkout(row)
    assert payment.status == PS.PAYMENT_STATUS_DECLINED
    # The cart is kept for another try, and the key keeps its answer.
    assert len(http.get("/v1/cart", headers=buyer.auth).json()["items"]) == 1
    again = checkout(http, buyer, key, payment_method="pm_card_chargeDeclined")
    assert again.status_code == 412 and "declined" in error_message(again)
    # Another card is another request: it needs a key of its own.
    other_card = checkout(http, buyer, key, payment_method="pm_card_visa")
    assert other_card.status_code == 409 and "payment_method" in error_message(other_card), other_card.text
    assert stock_of(http, item["id"]) == 3 and orders_of(http, buyer) == []


def test_a_failed_capture_voids_the_payment_cancels_the_order_and_returns_the_stock(http, seller):
    item = create_product(http, seller, stock=4)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)

    r = checkout(http, buyer, payment_method="pm_fault_capture_unavailable")

    assert r.status_code == 503, r.text
    assert "nothing was charged" in error_message(r)
    assert stock_of(http, item["id"]) == 4
    [order] = orders_of(http, buyer)
    assert order["status"] == "ORDER_STATUS_CANCELLED"
    assert order["paymentStatus"] == "PAYMENT_STATUS_VOIDED"
    [row] = checkouts_of(buyer.id)
    [payment] = payments_of_checkout(row)
    assert payment.status == PS.PAYMENT_STATUS_VOIDED


def _set_price(http, seller, item: dict, price_minor: int) -> None:
    r = http.patch(f"/v1/products/{item['id']}", headers=seller.auth, json={"priceMinor": str(price_minor)})
    assert r.status_code == 200, r.text


def _price_changed_total(r) -> str:
    """The new total, as the machine-readable ErrorInfo detail gives it."""
    [info] = [d for d in r.json().get("details", []) if d.get("@type", "").endswith("google.rpc.ErrorInfo")]
    assert info["reason"] == "PRICE_CHANGED", info
    return info["metadata"]["totalMinor"]


def test_a_price_raised_after_add_to_cart_is_412_with_the_new_total_and_nothing_is_held_or_charged(http, seller):
    item = create_product(http, seller, stock=5, price_minor=1000)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 2)
    _set_price(http, seller, item, 1500)
    key = new_key()

    r = checkout(http, buyer, key)

    assert r.status_code == 412, r.text
    assert "3000" in error_message(r) and "from 1000 to 1500" in error_message(r)
    assert _price_changed_total(r) == "3000"
    # Nothing reserved, no payment (so no ledger entry), no order.
    assert stock_of(http, item["id"]) == 5
    [row] = checkouts_of(buyer.id)
    assert row["state"] == "FAILED" and payments_of_checkout(row) == []
    assert orders_of(http, buyer) == []
    # The cart says what changed.
    cart = http.get("/v1/cart", headers=buyer.auth).json()
    assert cart["priceIncreased"] is True and cart["totalMinor"] == "3000"
    assert cart["items"][0]["addedUnitPriceMinor"] == "1000" and cart["items"][0]["unitPriceMinor"] == "1500"
    # A plain retry hears the same, details included.
    again = checkout(http, buyer, key)
    assert again.status_code == 412 and _price_changed_total(again) == "3000", again.text

    # Agreeing to the new total (the same key may run again: nothing was kept) buys at it.
    accepted = checkout(http, buyer, key, expected_total=3000)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["totalMinor"] == "3000"
    assert stock_of(http, item["id"]) == 3
    [row] = checkouts_of(buyer.id)
    [payment] = payments_of_checkout(row)
    assert payment.amount_minor == 3000 and successful_authorizations(payment.id) == 1


def test_an_expected_total_that_differs_either_way_is_412_and_holds_nothing(http, seller):
    item = create_product(http, seller, stock=5, price_minor=1000)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)

    for expected in (999, 1001):
        r = checkout(http, buyer, expected_total=expected)
        assert r.status_code == 412, r.text
        assert f"not the {expected} you expected" in error_message(r) and _price_changed_total(r) == "1000"

    assert stock_of(http, item["id"]) == 5 and orders_of(http, buyer) == []
    assert all(payments_of_checkout(row) == [] for row in checkouts_of(buyer.id))
    assert checkout(http, buyer, expected_total=1000).status_code == 200


def test_a_price_that_fell_is_charged_without_asking(http, seller):
    item = create_product(http, seller, stock=5, price_minor=1000)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    _set_price(http, seller, item, 800)

    r = checkout(http, buyer)

    assert r.status_code == 200, r.text
    assert r.json()["totalMinor"] == "800"


def test_adding_a_product_again_agrees_to_its_new_price(http, seller):
    item = create_product(http, seller, stock=5, price_minor=1000)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    _set_price(http, seller, item, 1100)
    assert checkout(http, buyer).status_code == 412
    add_to_cart(http, buyer, item["id"], 1)

    r = checkout(http, buyer)

    assert r.status_code == 200, r.text
    assert r.json()["totalMinor"] == "2200"


def test_a_key_reused_with_other_parameters_is_409_while_a_plain_retry_returns_the_order(http, seller):
    item = create_product(http, seller, stock=5, price_minor=700)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    key = new_key()
    first = checkout(http, buyer, key)
    assert first.status_code == 200, first.text
    add_to_cart(http, buyer, item["id"], 1)

    other_card = checkout(http, buyer, key, payment_method="pm_card_mastercard")
    with_total = checkout(http, buyer, key, expected_total=700)
    plain = checkout(http, buyer, key)

    assert other_card.status_code == 409, other_card.text
    assert "payment_method" in error_message(other_card) and "new key" in error_message(other_card)
    assert with_total.status_code == 409 and "expected_total_minor" in error_message(with_total)
    assert plain.status_code == 200 and plain.json()["id"] == first.json()["id"]
    [row] = checkouts_of(buyer.id)
    [payment] = payments_of_checkout(row)
    assert successful_authorizations(payment.id) == 1
    assert stock_of(http, item["id"]) == 4 and len(orders_of(http, buyer)) == 1


def test_a_payment_method_the_provider_does_not_accept_is_400_before_anything_is_held(http, seller):
    item = create_product(http, seller, stock=5)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)

    r = checkout(http, buyer, payment_method="pm_bogus_xyz")

    assert r.status_code == 400, r.text
    assert error_message(r).startswith("payment_method: ") and "pm_bogus_xyz" in error_message(r)
    assert stock_of(http, item["id"]) == 5
    assert checkouts_of(buyer.id) == [] and orders_of(http, buyer) == []


def _payment_method_checks() -> float:
    port = int(service_addr("payments").rsplit(":", 1)[1]) + 1000
    return counter_value(port, "aviary_rpc_server_seconds_count", method="CheckPaymentMethod")


def test_a_payment_method_payments_accepted_is_not_asked_about_again_for_a_while(http, seller):
    item = create_product(http, seller, stock=5)
    buyers = [sign_up(http, "buy") for _ in range(3)]
    checks = _payment_method_checks()
    for buyer in buyers:
        add_to_cart(http, buyer, item["id"], 1)
        assert checkout(http, buyer, payment_method="pm_card_mastercard").status_code == 200
    # Asked once at most (not at all if an earlier checkout used it lately).
    assert _payment_method_checks() - checks <= 1
    # A method refused is asked about every time.
    checks = _payment_method_checks()
    for buyer in buyers[:2]:
        add_to_cart(http, buyer, item["id"], 1)
        assert checkout(http, buyer, payment_method="pm_bogus_xyz").status_code == 400
    assert _payment_method_checks() - checks == 2


def test_an_item_deactivated_after_it_was_carted_stops_the_checkout(http, seller):
    item = create_product(http, seller, stock=5)
    buyer = sign_up(http, "buy")
    add_to_cart(http, buyer, item["id"], 1)
    assert http.patch(f"/v1/products/{item['id']}", headers=seller.auth, json={"active": False}).status_code == 200

    r = checkout(http, buyer)

    assert r.status_code == 412, r.text
    assert item["id"] in error_message(r)
    assert stock_of(http, item["id"]) == 5


@pytest.mark.parametrize(
    "body, field",
    [
        ({"paymentMethod": "pm_card_visa"}, "idempotency_key"),
        ({"idempotencyKey": "short", "paymentMethod": "pm_card_visa"}, "idempotency_key"),
        ({"idempotencyKey": "has spaces in it", "paymentMethod": "pm_card_visa"}, "idempotency_key"),
        ({"idempotencyKey": "k-0123456789"}, "payment_method"),
        ({"idempotencyKey": "k-0123456789", "paymentMethod": "card_visa"}, "payment_method"),
        (
            {"idempotencyKey": "k-0123456789", "paymentMethod": "pm_card_visa", "expectedTotalMinor": "-1"},
            "expected_total_minor",
        ),
    ],
)
def test_bad_checkout_input_is_a_400_naming_the_field(http, body, field):
    buyer = sign_up(http, "buy")
    r = http.post("/v1/checkouts", headers=buyer.auth, json=body)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith(field)
    assert checkouts_of(buyer.id) == []


def test_an_empty_cart_cannot_be_checked_out_and_the_key_stays_usable(http, seller):
    buyer = sign_up(http, "buy")
    key = new_key()
    r = checkout(http, buyer, key)
    assert r.status_code == 412 and "empty" in error_message(r)
    # Nothing happened, so the same key works once the cart has something.
    item = create_product(http, seller, stock=1)
    add_to_cart(http, buyer, item["id"], 1)
    r = checkout(http, buyer, key)
    assert r.status_code == 200, r.text


def test_checkout_needs_a_token(http):
    r = http.post("/v1/checkouts", json={"idempotencyKey": new_key(), "paymentMethod": "pm_card_visa"})
    assert r.status_code == 401


def test_someone_elses_order_is_not_found(http, seller):
    item = create_product(http, seller, stock=2)
    buyer, stranger = sign_up(http, "buy"), sign_up(http, "str")
    add_to_cart(http, buyer, item["id"], 1)
    order = checkout(http, buyer).json()

    r = http.get(f"/v1/orders/{order['id']}", headers=stranger.auth)

    assert r.status_code == 404, r.text
    assert orders_of(http, stranger) == []
    # The seller of its items sees it.
    assert http.get(f"/v1/orders/{order['id']}", headers=seller.auth).status_code == 200
    listed = http.get("/v1/orders", headers=seller.auth, params={"asSeller": True, "pageSize": 100}).json()["orders"]
    assert order["id"] in [o["id"] for o in listed]


def test_orders_page_newest_first_without_repeats(http, seller):
    item = create_product(http, seller, stock=10)
    buyer = sign_up(http, "buy")
    made = []
    for _ in range(3):
        add_to_cart(http, buyer, item["id"], 1)
        made.append(checkout(http, buyer).json()["id"])
    seen, token = [], ""
    while True:
        r = http.get("/v1/orders", headers=buyer.auth, params={"pageSize": 2, "pageToken": token})
        assert r.status_code == 200, r.text
        seen += [o["id"] for o in r.json()["orders"]]
        token = r.json().get("nextPageToken", "")
        if not token:
            break
    assert seen == list(reversed(made))
