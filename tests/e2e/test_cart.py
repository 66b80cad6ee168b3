"""The cart through Envoy's HTTP/JSON edge: always the caller's own cart,
priced from the catalog's current prices, bad input refused with the field named."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, Account, error_message, sign_up

pytestmark = pytest.mark.e2e


def sign_up_seller(http) -> Account:
    username = unique_username("s")
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "role": "SELLER"})
    assert r.status_code == 200, r.text
    return Account.signed_up(username, r.json())


@pytest.fixture(scope="module")
def seller(http) -> Account:
    return sign_up_seller(http)


def new_product(http, seller: Account, *, price: int = 1250, currency: str = "USD", title: str = "") -> dict:
    r = http.post(
        "/v1/products",
        json={
            "title": title or f"thing {secrets.token_hex(3)}",
            "priceMinor": price,
            "currency": currency,
            "stock": 50,
        },
        headers=seller.auth,
    )
    assert r.status_code == 200, r.text
    return r.json()


def change_product(http, seller: Account, product: dict, **fields) -> None:
    r = http.patch(f"/v1/products/{product['id']}", json=fields, headers=seller.auth)
    assert r.status_code == 200, r.text


def get_cart(http, who: Account) -> dict:
    r = http.get("/v1/cart", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def add(http, who: Account, product: dict, quantity: int) -> dict:
    r = http.post("/v1/cart/items", json={"productId": product["id"], "quantity": quantity}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def lines(cart: dict) -> list[tuple[str, int]]:
    return [(item["productId"], item["quantity"]) for item in cart.get("items", [])]


def test_add_update_remove(http, seller):
    buyer = sign_up(http, "c")
    mug, pen = new_product(http, seller, price=1250, title="mug"), new_product(http, seller, price=199)

    assert lines(get_cart(http, buyer)) == []
    add(http, buyer, mug, 1)
    add(http, buyer, pen, 2)
    cart = add(http, buyer, mug, 2)  # adds to the existing line, which keeps its place
    assert lines(cart) == [(mug["id"], 3), (pen["id"], 2)]
    assert cart["items"][0]["title"] == "mug" and cart["items"][0]["unitPriceMinor"] == "1250"
    assert cart["items"][0]["available"] is True
    assert cart["totalMinor"] == str(3 * 1250 + 2 * 199) and cart["currency"] == "USD"
    assert cart["userId"] == buyer.id and cart["expiresAt"]

    r = http.patch(f"/v1/cart/items/{pen['id']}", json={"quantity": 7}, headers=buyer.auth)
    assert r.status_code == 200, r.text
    assert lines(r.json()) == [(mug["id"], 3), (pen["id"], 7)]

    for _ in range(2):  # removing is idempotent
        r = http.delete(f"/v1/cart/items/{mug['id']}", headers=buyer.auth)
        assert r.status_code == 200, r.text
        assert lines(r.json()) == [(pen["id"], 7)]
    assert get_cart(http, buyer)["totalMinor"] == str(7 * 199)

    r = http.delete(f"/v1/cart/items/{pen['id']}", headers=buyer.auth)
    emptied = r.json()
    assert lines(emptied) == [] and emptied["totalMinor"] == "0" and "expiresAt" not in emptied


def test_totals_follow_the_current_catalog_price(http, seller):
    buyer = sign_up(http, "c")
    product, other = new_product(http, seller, price=1000), new_product(http, seller, price=300)
    add(http, buyer, product, 2)
    add(http, buyer, other, 1)
    assert get_cart(http, buyer)["totalMinor"] == "2300"

    change_product(http, seller, product, priceMinor=1500)
    cart = get_cart(http, buyer)
    assert cart["items"][0]["unitPriceMinor"] == "1500"
    assert cart["totalMinor"] == "3300"

    # A deactivated product stays in the cart, marked unavailable, out of the total.
    change_product(http, seller, other, active=False)
    cart = get_cart(http, buyer)
    assert [item.get("available", False) for item in cart["items"]] == [True, False]
    assert cart["totalMinor"] == "3000"


def price_view(cart: dict) -> list[tuple[str, str, bool]]:
    return [(item["unitPriceMinor"], item["addedUnitPriceMinor"], item["priceChanged"]) for item in cart["items"]]


def test_the_cart_shows_what_changed_since_each_line_was_added(http, seller):
    buyer = sign_up(http, "c")
    rising, falling = new_product(http, seller, price=1000), new_product(http, seller, price=500)
    add(http, buyer, rising, 1)
    cart = add(http, buyer, falling, 2)
    assert price_view(cart) == [("1000", "1000", False), ("500", "500", False)]
    assert cart["priceIncreased"] is False

    change_product(http, seller, falling, priceMinor=400)
    cart = get_cart(http, buyer)
    assert price_view(cart) == [("1000", "1000", False), ("400", "500", True)]
    assert cart["priceIncreased"] is False  # a lower price needs nobody's consent

    change_product(http, seller, rising, priceMinor=1200)
    cart = get_cart(http, buyer)
    assert price_view(cart) == [("1200", "1000", True), ("400", "500", True)]
    assert cart["priceIncreased"] is True and cart["totalMinor"] == "2000"
    # A quantity change keeps the agreed price; adding the product again agrees to today's.
    r = http.patch(f"/v1/cart/items/{rising['id']}", json={"quantity": 2}, headers=buyer.auth)
    assert r.status_code == 200 and r.json()["priceIncreased"] is True, r.text
    cart = add(http, buyer, rising, 1)
    assert price_view(cart) == [("1200", "1200", False), ("400", "500", True)]
    assert cart["priceIncreased"] is False and cart["totalMinor"] == str(3 * 1200 + 2 * 400)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"productId": "abc", "quantity": 1}, "product_id"),
        ({"productId": "-5", "quantity": 1}, "product_id"),
        ({"quantity": 1}, "product_id"),
        ({"productId": "PRODUCT", "quantity": 0}, "quantity"),
        ({"productId": "PRODUCT", "quantity": -3}, "quantity"),
        ({"productId": "PRODUCT", "quantity": 101}, "quantity"),
        ({"productId": "PRODUCT", "quantity": 99_999_999_999}, "quantity"),
        ({"productId": "PRODUCT"}, "quantity"),
    ],
    ids=["letters", "negative-id", "no-id", "zero", "negative", "101", "huge", "no-quantity"],
)
def test_bad_add_is_400_naming_the_field_and_writes_nothing(http, seller, body, field):
    buyer = sign_up(http, "c")
    product = new_product(http, seller)
    add(http, buyer, product, 1)
    body = {k: (product["id"] if v == "PRODUCT" else v) for k, v in body.items()}
    r = http.post("/v1/cart/items", json=body, headers=buyer.auth)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith(f"{field}: "), error_message(r)
    assert lines(get_cart(http, buyer)) == [(product["id"], 1)]


def test_bad_update_and_remove_are_400_naming_the_field(http, seller):
    buyer = sign_up(http, "c")
    product = new_product(http, seller)
    add(http, buyer, product, 4)
    for quantity in (0, -1, 101):
        r = http.patch(f"/v1/cart/items/{product['id']}", json={"quantity": quantity}, headers=buyer.auth)
        assert r.status_code == 400, r.text
        assert error_message(r) == "quantity: must be 1..100"
    r = http.delete("/v1/cart/items/not-an-id", headers=buyer.auth)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith("product_id: ")
    assert lines(get_cart(http, buyer)) == [(product["id"], 4)]


def test_a_line_holds_at_most_100(http, seller):
    buyer = sign_up(http, "c")
    product = new_product(http, seller)
    add(http, buyer, product, 60)
    r = http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 41}, headers=buyer.auth)
    assert r.status_code == 400, r.text
    assert error_message(r) == "quantity: a line may hold at most 100 (it has 60)"
    assert lines(add(http, buyer, product, 40)) == [(product["id"], 100)]


def test_unknown_product_is_404_and_unbuyable_ones_are_412(http, seller):
    buyer = sign_up(http, "c")
    usd, eur, retired = new_product(http, seller), new_product(http, seller, currency="EUR"), new_product(http, seller)
    change_product(http, seller, retired, active=False)

    r = http.post("/v1/cart/items", json={"productId": "999999999999", "quantity": 1}, headers=buyer.auth)
    assert r.status_code == 404, r.text
    assert error_message(r) == "product 999999999999 not found"

    r = http.post("/v1/cart/items", json={"productId": retired["id"], "quantity": 1}, headers=buyer.auth)
    assert r.status_code == 412, r.text
    assert retired["id"] in error_message(r)

    add(http, buyer, usd, 1)
    r = http.post("/v1/cart/items", json={"productId": eur["id"], "quantity": 1}, headers=buyer.auth)
    assert r.status_code == 412, r.text
    assert "EUR" in error_message(r) and "USD" in error_message(r)

    r = http.patch(f"/v1/cart/items/{eur['id']}", json={"quantity": 2}, headers=buyer.auth)
    assert r.status_code == 404, r.text
    assert lines(get_cart(http, buyer)) == [(usd["id"], 1)]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/v1/cart", None),
        ("POST", "/v1/cart/items", {"productId": "1", "quantity": 1}),
        ("PATCH", "/v1/cart/items/1", {"quantity": 1}),
        ("DELETE", "/v1/cart/items/1", None),
    ],
)
def test_no_token_is_401(http, method, path, body):
    r = http.request(method, path, json=body)
    assert r.status_code == 401, r.text
    r = http.request(method, path, json=body, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401, r.text


def test_users_only_ever_see_and_change_their_own_cart(http, seller):
    alice, mallory = sign_up(http, "c"), sign_up(http, "m")
    product = new_product(http, seller)
    add(http, alice, product, 3)

    # Mallory's reads show only Mallory's (empty) cart, whatever she claims to be.
    claims = {"x-aviary-user-id": alice.id, "x-jwt-payload": "e30"}
    assert lines(get_cart(http, mallory)) == []
    r = http.get("/v1/cart", params={"userId": alice.id}, headers={**mallory.auth, **claims})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json()["userId"] == mallory.id and lines(r.json()) == []

    # Her changes naming Alice's product, or Alice, touch only her own cart.
    r = http.delete(f"/v1/cart/items/{product['id']}", headers={**mallory.auth, **claims})
    assert r.status_code == 200 and r.json()["userId"] == mallory.id
    r = http.patch(f"/v1/cart/items/{product['id']}", json={"quantity": 1, "userId": alice.id}, headers=mallory.auth)
    assert r.status_code in (400, 404), r.text
    r = http.post(
        "/v1/cart/items", json={"productId": product["id"], "quantity": 1, "userId": alice.id}, headers=mallory.auth
    )
    if r.status_code == 200:
        assert r.json()["userId"] == mallory.id and lines(r.json()) == [(product["id"], 1)]
    else:
        assert r.status_code == 400, r.text

    mine = get_cart(http, alice)
    assert mine["userId"] == alice.id and lines(mine) == [(product["id"], 3)]

    # The internal methods (by user id) cannot be reached through the edge at all.
    for method in ("GetUserCart", "ClearCheckedOutItems"):
        path = f"/aviary.cart.v1.CartService/{method}"
        r = http.post(
            path,
            json={"userId": alice.id, "checkoutId": "x", "items": [{"productId": product["id"], "quantity": 3}]},
            headers=mallory.auth,
        )
        assert r.status_code == 404, r.text
        r = http.post(
            path, content=b"\x00\x00\x00\x00\x00", headers={**mallory.auth, "content-type": "application/grpc"}
        )
        assert r.status_code == 404 or r.headers.get("grpc-status") not in (None, "0"), path
    assert lines(get_cart(http, alice)) == [(product["id"], 3)]
