"""Product tags on posts, end to end through Envoy: a seller's product shows on
posts and in followers' home timelines; unknown products are refused."""

from __future__ import annotations

import pytest

from tests.e2e.edge import error_message, follow, sign_up, wait_until
from tests.e2e.test_catalog import new_product, sign_up_seller

pytestmark = pytest.mark.e2e


def test_a_post_tagging_a_product_shows_its_details_everywhere(http):
    _, seller_auth = sign_up_seller(http)
    product = new_product(http, seller_auth, title="Walnut desk lamp")
    author, reader = sign_up(http, "a"), sign_up(http, "r")
    follow(http, reader, author)

    r = http.post("/v1/posts", json={"text": "my new lamp", "productIds": [product["id"]]}, headers=author.auth)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["productIds"] == [product["id"]]
    assert created["products"][0]["title"] == "Walnut desk lamp"
    assert created["products"][0]["priceMinor"] == "2450"

    r = http.get(f"/v1/posts/{created['id']}")
    assert r.status_code == 200, r.text
    assert [p["title"] for p in r.json()["products"]] == ["Walnut desk lamp"]

    def home_entry():
        page = http.get("/v1/timelines/home", headers=reader.auth).json()
        return next((p for p in page.get("posts", []) if p["id"] == created["id"]), None)

    entry = wait_until(home_entry, timeout=5.0)
    assert entry, "the post did not reach the follower's home timeline"
    assert entry["products"][0]["id"] == product["id"]
    assert entry["products"][0]["title"] == "Walnut desk lamp"


def test_tagging_an_unknown_product_is_400_naming_the_tag_and_writes_nothing(http):
    author = sign_up(http, "a")
    r = http.post("/v1/posts", json={"text": "look", "productIds": ["987654321"]}, headers=author.auth)
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert message.startswith("product_ids[0]:") and "987654321" in message
    r = http.get(f"/v1/users/{author.id}/posts")
    assert r.json().get("posts", []) == []
    assert http.get(f"/v1/users/{author.id}").json().get("postCount", 0) == 0


def test_tagging_a_deactivated_product_is_400_saying_it_is_not_available(http):
    _, seller_auth = sign_up_seller(http)
    product = new_product(http, seller_auth)
    r = http.patch(f"/v1/products/{product['id']}", json={"active": False}, headers=seller_auth)
    assert r.status_code == 200, r.text
    # The product exists (anyone can read it), it just cannot be tagged.
    shown = http.get(f"/v1/products/{product['id']}")
    assert shown.status_code == 200 and shown.json()["active"] is False
    on_sale = new_product(http, seller_auth)
    author = sign_up(http, "a")
    r = http.post("/v1/posts", json={"text": "gone", "productIds": [on_sale["id"], product["id"]]}, headers=author.auth)
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert message == f"product_ids[1]: product {product['id']} is not available (inactive); tag an active product"
    assert "no such product" not in message
    assert http.get(f"/v1/users/{author.id}/posts").json().get("posts", []) == []
