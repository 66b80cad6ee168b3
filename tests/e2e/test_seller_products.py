"""A seller's own listing, end to end through Envoy: `sellerId=me` with
`includeInactive=true` shows their inactive products too; nobody else sees
inactive products in any listing."""

from __future__ import annotations

import pytest

from tests.e2e.commerce import create_product, sign_up_seller
from tests.e2e.edge import error_message, sign_up

pytestmark = pytest.mark.e2e


def listed(http, params: dict, headers: dict | None = None) -> list[dict]:
    products, token = [], ""
    while True:
        r = http.get("/v1/products", params={**params, "pageSize": 2, "pageToken": token}, headers=headers or {})
        assert r.status_code == 200, r.text
        products += r.json().get("products", [])
        token = r.json().get("nextPageToken", "")
        if not token:
            return products


def deactivate(http, seller, product_id: str) -> None:
    r = http.patch(f"/v1/products/{product_id}", json={"active": False}, headers=seller.auth)
    assert r.status_code == 200, r.text


@pytest.fixture
def seller_with_products(http):
    seller = sign_up_seller(http)
    made = [create_product(http, seller, stock=3, title=f"item {i}") for i in range(3)]
    deactivate(http, seller, made[1]["id"])
    return seller, made


def test_the_seller_sees_inactive_products_newest_first_paged(http, seller_with_products):
    seller, made = seller_with_products
    own = listed(http, {"sellerId": "me", "includeInactive": "true"}, seller.auth)
    assert [p["id"] for p in own] == [p["id"] for p in reversed(made)]
    assert [p.get("active", False) for p in own] == [True, False, True]
    assert own[1]["stock"] == "3"
    # By id as well as "me".
    by_id = listed(http, {"sellerId": seller.id, "includeInactive": "true"}, seller.auth)
    assert [p["id"] for p in by_id] == [p["id"] for p in own]


def test_without_include_inactive_the_listing_stays_active_only(http, seller_with_products):
    seller, made = seller_with_products
    active_ids = [made[2]["id"], made[0]["id"]]
    assert [p["id"] for p in listed(http, {"sellerId": "me"}, seller.auth)] == active_ids
    assert [p["id"] for p in listed(http, {"sellerId": seller.id})] == active_ids


def test_nobody_else_sees_a_sellers_inactive_products(http, seller_with_products):
    seller, _ = seller_with_products
    buyer, other_seller = sign_up(http, "sp"), sign_up_seller(http)
    for who in (buyer, other_seller):
        r = http.get("/v1/products", params={"sellerId": seller.id, "includeInactive": "true"}, headers=who.auth)
        assert r.status_code == 403, r.text
        assert "include_inactive" in error_message(r)
    r = http.get("/v1/products", params={"sellerId": seller.id, "includeInactive": "true"})
    assert r.status_code == 403, r.text
    r = http.get("/v1/products", params={"includeInactive": "true"}, headers=seller.auth)
    assert r.status_code == 400 and "include_inactive" in error_message(r), r.text
    # "me" needs a signed-in caller.
    assert http.get("/v1/products", params={"sellerId": "me"}).status_code == 401
    # Another seller's own listing holds only their products.
    assert listed(http, {"sellerId": "me", "includeInactive": "true"}, other_seller.auth) == []


def test_a_reactivated_product_is_public_again(http, seller_with_products):
    seller, made = seller_with_products
    r = http.patch(f"/v1/products/{made[1]['id']}", json={"active": True}, headers=seller.auth)
    assert r.status_code == 200, r.text
    assert made[1]["id"] in [p["id"] for p in listed(http, {"sellerId": seller.id})]
