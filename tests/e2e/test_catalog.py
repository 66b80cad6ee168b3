"""The catalog over HTTP/JSON through Envoy: seller sign-up, products, listing, bad input."""

from __future__ import annotations

import pytest

from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, error_message, sign_up

pytestmark = pytest.mark.e2e


def sign_up_seller(http):
    username = unique_username("sel")
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "role": "SELLER"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["role"] == "SELLER"
    return body["user"]["id"], {"Authorization": f"Bearer {body['accessToken']}"}


def new_product(http, auth, **fields) -> dict:
    body = {"title": "Travel mug", "priceMinor": "2450", "currency": "eur", "stock": "3", **fields}
    r = http.post("/v1/products", json=body, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_seller_lists_a_product_anyone_can_read(http):
    seller_id, auth = sign_up_seller(http)
    created = new_product(http, auth, description="Keeps tea hot.")
    assert created["sellerId"] == seller_id
    assert created["title"] == "Travel mug" and created["description"] == "Keeps tea hot."
    # 64-bit integers are strings in protobuf JSON.
    assert (created["priceMinor"], created["currency"], created["stock"]) == ("2450", "EUR", "3")
    assert created["active"] is True and created["id"].isdigit()

    # Public reads: no token needed.
    r = http.get(f"/v1/products/{created['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == created
    r = http.get("/v1/products", params={"sellerId": seller_id})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["products"]] == [created["id"]]


def test_the_seller_updates_and_restocks_over_http(http):
    _, auth = sign_up_seller(http)
    product = new_product(http, auth)
    r = http.patch(f"/v1/products/{product['id']}", json={"priceMinor": "1999", "active": False}, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["priceMinor"], r.json().get("active", False)) == ("1999", False)

    body = {"quantity": "4", "idempotencyKey": "delivery-1"}
    for _ in range(2):  # the same key adds once
        r = http.post(f"/v1/products/{product['id']}:restock", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["stock"] == "7"


def test_listing_pages_through_products_newest_first(http):
    seller_id, auth = sign_up_seller(http)
    made = [new_product(http, auth, title=f"thing {i}")["id"] for i in range(3)]
    r = http.get("/v1/products", params={"sellerId": seller_id, "pageSize": 2})
    first = r.json()
    assert [p["id"] for p in first["products"]] == made[:0:-1]
    r = http.get("/v1/products", params={"sellerId": seller_id, "pageSize": 2, "pageToken": first["nextPageToken"]})
    second = r.json()
    assert [p["id"] for p in second["products"]] == [made[0]]
    assert second.get("nextPageToken", "") == ""


def test_a_user_account_cannot_create_products(http):
    user = sign_up(http, "u")
    r = http.post("/v1/products", json={"title": "x", "priceMinor": "1", "currency": "USD"}, headers=user.auth)
    assert r.status_code == 403, r.text
    assert "SELLER" in error_message(r)


def test_creating_a_product_needs_a_token(http):
    r = http.post("/v1/products", json={"title": "x", "priceMinor": "1", "currency": "USD"})
    assert r.status_code == 401, r.text


def test_someone_elses_product_cannot_be_changed(http):
    _, auth = sign_up_seller(http)
    _, other = sign_up_seller(http)
    product = new_product(http, auth)
    r = http.patch(f"/v1/products/{product['id']}", json={"title": "mine"}, headers=other)
    assert r.status_code == 403, r.text
    assert http.get(f"/v1/products/{product['id']}").json()["title"] == "Travel mug"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"title": ""}, "title"),
        ({"title": "t" * 121}, "title"),
        ({"priceMinor": "0"}, "price_minor"),
        ({"priceMinor": "100000001"}, "price_minor"),
        ({"currency": "dollars"}, "currency"),
        ({"stock": "-1"}, "stock"),
        ({"mediaIds": ["not-an-id"]}, "media_ids[0]"),
        ({"mediaIds": ["123456789"]}, "media_ids[0]"),
    ],
)
def test_bad_products_are_400_naming_the_field_and_nothing_is_written(http, fields, field):
    seller_id, auth = sign_up_seller(http)
    body = {"title": "Travel mug", "priceMinor": "2450", "currency": "USD", "stock": "3", **fields}
    r = http.post("/v1/products", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith(f"{field}:")
    assert http.get("/v1/products", params={"sellerId": seller_id}).json().get("products", []) == []


def test_unknown_and_malformed_product_ids(http):
    r = http.get("/v1/products/424242")
    assert r.status_code == 404, r.text
    assert "424242" in error_message(r)
    r = http.get("/v1/products/abc")
    assert r.status_code == 400, r.text
    assert "product_id" in error_message(r)
    r = http.get("/v1/products", params={"pageToken": "%%%"})
    assert r.status_code == 400, r.text
    assert "page_token" in error_message(r)


def test_an_unknown_role_at_sign_up_is_400(http):
    r = http.post("/v1/accounts", json={"username": unique_username("r"), "password": PASSWORD, "role": "ADMIN"})
    assert r.status_code == 400, r.text
    assert error_message(r) == "role: must be USER or SELLER"
