"""Exporting one's own data through Envoy: one JSON object per line, the
profile first, then posts (newest first), follows and orders, and a closing
record that says the export is whole."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_seller
from tests.e2e.edge import follow, post, sign_up

pytestmark = pytest.mark.e2e

# More than one page of the export's reads of posts (100).
POSTS = 130


def export(http, account) -> list[dict]:
    records = []
    with http.stream("GET", "/v1/users/me:export", headers=account.auth, timeout=60.0) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.strip():
                records.append(json.loads(line))
    return records


def post_paced(http, author, text: str) -> str:
    """Posts, waiting out the edge's per-user write limit (a burst of 100)."""
    deadline = time.monotonic() + 30
    while True:
        r = http.post("/v1/posts", json={"text": text}, headers=author.auth)
        if r.status_code != 429 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()["id"]
        time.sleep(float(r.headers.get("retry-after", "1")))


def kind(record: dict) -> str:
    (name,) = record
    return name


def test_an_export_holds_the_profile_posts_follows_and_orders_in_that_order(http):
    seller = sign_up_seller(http)
    item = create_product(http, seller, stock=5, price_minor=700)
    account, followed_a, followed_b = sign_up(http, "ex"), sign_up(http, "fa"), sign_up(http, "fb")
    first = post(http, account, "first of mine")
    second = post(http, account, "second of mine")
    reply = http.post("/v1/posts", json={"text": "answering myself", "replyToId": first["id"]}, headers=account.auth)
    assert reply.status_code == 200, reply.text
    follow(http, account, followed_a)
    follow(http, account, followed_b)
    add_to_cart(http, account, item["id"], 2)
    placed = checkout(http, account)
    assert placed.status_code == 200, placed.text

    records = export(http, account)

    assert [kind(r) for r in records] == ["profile", "post", "post", "post", "follow", "follow", "order", "complete"]
    profile = records[0]["profile"]
    assert (profile["id"], profile["username"], profile["postCount"]) == (account.id, account.username, 3)
    posts = [r["post"] for r in records if kind(r) == "post"]
    assert [p["id"] for p in posts] == [reply.json()["id"], second["id"], first["id"]]
    assert posts[0]["replyToId"] == first["id"] and posts[2]["text"] == "first of mine"
    follows = {r["follow"]["userId"]: r["follow"]["username"] for r in records if kind(r) == "follow"}
    assert follows == {followed_a.id: followed_a.username, followed_b.id: followed_b.username}
    (order,) = [r["order"] for r in records if kind(r) == "order"]
    assert (order["id"], order["status"], order["totalMinor"]) == (placed.json()["id"], "CONFIRMED", "1400")
    assert order["lines"] == [{"productId": item["id"], "quantity": 2, "unitPriceMinor": "700"}]
    assert records[-1]["complete"] == {"postCount": 3, "followCount": 2, "orderCount": 1}


def test_an_export_pages_through_more_posts_than_one_page_holds(http):
    account = sign_up(http, "ex")
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda n: post_paced(http, account, f"post number {n}"), range(POSTS)))

    records = export(http, account)

    exported = [r["post"]["id"] for r in records if kind(r) == "post"]
    assert exported == sorted(written, key=int, reverse=True)
    assert records[-1]["complete"]["postCount"] == POSTS


def test_an_export_needs_a_token(http):
    assert http.get("/v1/users/me:export").status_code == 401
