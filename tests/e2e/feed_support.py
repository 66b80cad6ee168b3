"""Helpers for the mixed home feed's end-to-end tests (test_feed, test_feed_outages):
a page of the feed as a reader sees it through Envoy, an item's identity, a
reader whose home timeline fanout has filled, and a shop of fresh products."""

from __future__ import annotations

from tests.e2e.commerce import create_product, sign_up_seller
from tests.e2e.edge import follow, home_ids, post, sign_up, wait_until


def feed_page(http, reader, token: str = "", size: int = 4) -> dict:
    params = {"pageSize": size}
    if token:
        params["pageToken"] = token
    r = http.get("/v1/feed", params=params, headers=reader.auth)
    assert r.status_code == 200, r.text
    return r.json()


def item_key(item: dict) -> tuple[str, str]:
    return ("post", item["post"]["id"]) if "post" in item else ("product", item["product"]["id"])


def open_shop(http) -> list[dict]:
    """A seller with fresh products: the newest ones are everyone's cold-start candidates."""
    seller = sign_up_seller(http)
    return [create_product(http, seller, stock=50, title=f"feed product {n}") for n in range(4)]


def reader_of(http, author, posts: int, text: str = "feed post") -> tuple[object, list[str]]:
    """A reader following author, with author's new posts delivered to their home timeline."""
    reader = sign_up(http, "fr")
    home_ids(http, reader)  # an active reader: fanout materializes their timeline
    follow(http, reader, author)
    ids = [post(http, author, f"{text} {n}")["id"] for n in range(posts)]
    assert wait_until(lambda: set(ids) <= set(home_ids(http, reader)), timeout=15), "fanout did not deliver"
    return reader, ids
