"""Account deletion and commerce, end to end through Envoy: a seller with an
order still to ship is refused (412) until it is shipped or cancelled; a
deleted seller's products go off sale; a deleted buyer's orders stay in the
sellers' views with the buyer anonymised, and their cart goes."""

from __future__ import annotations

import secrets

from tests.e2e.commerce import add_to_cart, checkout, create_product, product, sign_up_seller
from tests.e2e.edge import PASSWORD, error_message, sign_up, wait_until


def delete_account(http, account, password: str = PASSWORD):
    return http.post("/v1/users/me:delete", json={"password": password}, headers=account.auth)


def buy(http, buyer, *products: dict) -> dict:
    for p in products:
        add_to_cart(http, buyer, p["id"])
    r = checkout(http, buyer)
    assert r.status_code == 200, r.text
    return r.json()


def advance(http, seller, order_id: str, status: str):
    r = http.post(
        f"/v1/orders/{order_id}:advanceDelivery", headers=seller.auth, json={"status": f"DELIVERY_STATUS_{status}"}
    )
    assert r.status_code == 200, r.text
    return r.json()


def found_in_search(http, word: str) -> list[str]:
    r = http.get("/v1/search/products", params={"q": word})
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json().get("products", [])]


def seller_orders(http, seller) -> list[dict]:
    r = http.get("/v1/orders", headers=seller.auth, params={"asSeller": "true", "pageSize": 100})
    assert r.status_code == 200, r.text
    return r.json().get("orders", [])


def test_a_seller_with_an_order_to_ship_is_refused_until_it_ships_then_its_products_go_off_sale(http):
    seller = sign_up_seller(http)
    word = f"zd{secrets.token_hex(4)}"
    shipped_later = create_product(http, seller, stock=5, title=f"Carved {word} spoon")
    cancelled = create_product(http, seller, stock=5)
    assert wait_until(lambda: found_in_search(http, word) == [shipped_later["id"]], timeout=15)
    buyer, shopper = sign_up(http, "buy"), sign_up(http, "shop")
    to_ship = buy(http, buyer, shipped_later)
    to_cancel = buy(http, buyer, cancelled)

    r = delete_account(http, seller)
    assert r.status_code == 412, r.text
    assert "2 unfulfilled" in error_message(r)
    # Still there: nothing was deleted.
    assert product(http, shipped_later["id"]).get("active") is True

    r = http.post(f"/v1/orders/{to_cancel['id']}:cancel", headers=buyer.auth, json={})
    assert r.status_code == 200, r.text
    advance(http, seller, to_ship["id"], "PACKED")
    r = delete_account(http, seller)
    assert r.status_code == 412, r.text
    assert "1 unfulfilled" in error_message(r)

    advance(http, seller, to_ship["id"], "SHIPPED")
    r = delete_account(http, seller)
    assert r.status_code == 200, r.text

    # Off sale: inactive, out of the seller's listing, refused by carts.
    for p in (shipped_later, cancelled):
        assert wait_until(lambda p=p: not product(http, p["id"]).get("active"), timeout=20), p["id"]
    r = http.get("/v1/products", params={"sellerId": seller.id})
    assert r.status_code == 200, r.text
    assert r.json().get("products", []) == []
    r = http.post("/v1/cart/items", headers=shopper.auth, json={"productId": shipped_later["id"], "quantity": 1})
    assert r.status_code == 412, r.text
    assert wait_until(lambda: found_in_search(http, word) == [], timeout=15)
    # The buyer's order stays, with its lines.
    r = http.get(f"/v1/orders/{to_ship['id']}", headers=buyer.auth)
    assert r.status_code == 200, r.text
    assert [i["productId"] for i in r.json()["items"]] == [shipped_later["id"]]


def test_a_deleted_buyers_order_stays_in_the_sellers_view_anonymised(http):
    seller = sign_up_seller(http)
    thing = create_product(http, seller, stock=5)
    buyer = sign_up(http, "buy")
    order = buy(http, buyer, thing)
    assert order["buyerId"] == buyer.id
    add_to_cart(http, buyer, thing["id"])  # a cart to be removed with the account

    r = delete_account(http, buyer)
    assert r.status_code == 200, r.text

    def anonymised():
        found = [o for o in seller_orders(http, seller) if o["id"] == order["id"]]
        return found and found[0].get("buyerDeleted") and found[0]

    seen = wait_until(anonymised, timeout=20)
    assert seen, seller_orders(http, seller)
    # Nothing says who bought it (the edge prints empty fields as "").
    assert seen.get("buyerId", "") == ""
    assert seen.get("idempotencyKey", "") == ""
    assert [i["productId"] for i in seen["items"]] == [thing["id"]]
    assert seen["status"] == "ORDER_STATUS_CONFIRMED"
    # The sale stands: the seller ships it as any other.
    moved = advance(http, seller, order["id"], "SHIPPED")
    assert moved["buyerDeleted"] is True and moved["deliveryStatus"] == "DELIVERY_STATUS_SHIPPED"

    # The buyer's access token may verify for a while yet: their cart is gone
    # and they buy nothing more.
    def cart_items():
        r = http.get("/v1/cart", headers=buyer.auth)
        assert r.status_code == 200, r.text
        return r.json().get("items", [])

    assert wait_until(lambda: cart_items() == [], timeout=20), cart_items()
    r = checkout(http, buyer)
    # (orders applied the deletion above: the order is anonymised)
    assert r.status_code == 401, r.text
    assert "deleted" in error_message(r)
