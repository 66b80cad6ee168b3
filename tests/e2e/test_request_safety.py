"""Input no route may answer with a 5xx, through Envoy: text that is not
UTF-8 or holds NUL, undefined enum numbers, and page tokens the server did
not issue or whose cursor is out of range. Each is a 400 naming the field,
with a google.rpc.BadRequest in `details`, and writes nothing."""

from __future__ import annotations

import base64
import json

import pytest

from services.kit.server.paging import encode_token
from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_seller
from tests.e2e.edge import error_message, post, sign_up

pytestmark = pytest.mark.e2e


def _unsigned(cursor: dict, version: int = 1) -> str:
    """A token as a client could write one (the format before tokens were signed)."""
    raw = json.dumps({"v": version, **cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refused_naming(r, *names: str) -> str:
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert any(message.startswith(f"{name}:") for name in names), message
    assert "Error" not in message and "<class" not in message and "aviary." not in message
    return message


def _violations(r) -> list[dict]:
    return [
        v
        for d in r.json().get("details", [])
        if d.get("@type", "").endswith("google.rpc.BadRequest")
        for v in d["fieldViolations"]
    ]


@pytest.fixture(scope="module")
def reader(http):
    return sign_up(http, "rs")


@pytest.mark.parametrize(
    "path, names",
    [
        ("/v1/users:lookup?username=%FF", ("username",)),
        ("/v1/posts/%FF", ("post_id", "postId")),
        ("/v1/search/posts?q=%FF", ("q",)),
        ("/v1/search/products?q=%C3%28", ("q",)),
        ("/v1/products?pageToken=%FF", ("page_token", "pageToken")),
    ],
    ids=["lookup", "post", "search-posts", "search-products", "products-token"],
)
def test_text_that_is_not_utf8_is_400_naming_the_parameter(http, path, names):
    _refused_naming(http.get(path), *names)


@pytest.mark.parametrize(
    "path, names",
    [
        ("/v1/users:lookup?username=a%00b", ("username",)),
        ("/v1/search/posts?q=tea%00", ("q",)),
    ],
    ids=["lookup", "search"],
)
def test_nul_in_a_query_parameter_is_400_naming_it(http, path, names):
    r = http.get(path)
    assert "NUL" in _refused_naming(r, *names)
    assert [v["field"] for v in _violations(r)] == [names[-1]]


_LISTS = {
    "products": ("/v1/products", False),
    "user-posts": ("/v1/users/{me}/posts", False),
    "replies": ("/v1/posts/{post}/replies", False),
    "home": ("/v1/timelines/home", True),
    "feed": ("/v1/feed", True),
    "notifications": ("/v1/notifications", True),
    "orders": ("/v1/orders", True),
    "followers": ("/v1/users/{me}/followers", False),
    "search": ("/v1/search/posts", False),
}


@pytest.fixture(scope="module")
def lists(http, reader):
    parent = post(http, reader, "a post to reply to")
    return {
        name: (path.format(me=reader.id, post=parent["id"]), needs_token)
        for name, (path, needs_token) in _LISTS.items()
    }


def _list(http, reader, lists, name: str, token: str):
    path, needs_token = lists[name]
    params = {"pageToken": token, **({"q": "tea"} if name == "search" else {})}
    return http.get(path, params=params, headers=reader.auth if needs_token else {})


@pytest.mark.parametrize("name", list(_LISTS))
def test_a_cursor_of_2_to_the_63_is_400_not_500(http, reader, lists, name):
    key = {"feed": "feed", "replies": "after", "followers": "after", "search": "offset"}.get(name, "before")
    cursor = {key: 2**63} if name != "feed" else {"feed": 2**63, "offset": 1}
    # Signed as the services sign them, so it is the range check that refuses it.
    _refused_naming(_list(http, reader, lists, name, encode_token(cursor)), "page_token")
    # Unsigned, as in the repro: refused before its cursor is read.
    r = _list(http, reader, lists, name, _unsigned(cursor))
    _refused_naming(r, "page_token")
    assert [v["field"] for v in _violations(r)] == ["pageToken"]


@pytest.mark.parametrize("name", ["products", "user-posts", "home", "notifications"])
def test_a_token_not_issued_by_the_server_is_400_even_with_a_sane_cursor(http, reader, lists, name):
    _refused_naming(_list(http, reader, lists, name, _unsigned({"before": 5})), "page_token")
    _refused_naming(_list(http, reader, lists, name, _unsigned({"before": 5}, version=2)), "page_token")


def test_an_issued_token_pages_and_an_altered_one_is_refused(http):
    seller = sign_up_seller(http)
    for _ in range(3):
        create_product(http, seller, stock=1)
    first = http.get("/v1/products", params={"sellerId": seller.id, "pageSize": 2})
    assert first.status_code == 200, first.text
    token = first.json()["nextPageToken"]
    second = http.get("/v1/products", params={"sellerId": seller.id, "pageSize": 2, "pageToken": token})
    assert second.status_code == 200, second.text
    assert len(second.json()["products"]) == 1
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    r = http.get("/v1/products", params={"sellerId": seller.id, "pageSize": 2, "pageToken": altered})
    _refused_naming(r, "page_token")


@pytest.fixture(scope="module")
def sale(http):
    seller = sign_up_seller(http)
    item = create_product(http, seller, stock=2)
    buyer = sign_up(http, "rsb")
    add_to_cart(http, buyer, item["id"], 1)
    r = checkout(http, buyer)
    assert r.status_code == 200, r.text
    return seller, buyer, r.json()


def _history(http, buyer, order_id: str) -> list:
    r = http.get(f"/v1/orders/{order_id}", headers=buyer.auth)
    assert r.status_code == 200, r.text
    return r.json()["deliveryHistory"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"status": 99}, "status"),
        ({"status": -1}, "status"),
        ({"status": 1000}, "status"),
        ({"status": "DELIVERY_STATUS_PACKED", "note": "left\u0000right"}, "note"),
    ],
    ids=["99", "-1", "1000", "nul-note"],
)
def test_advance_delivery_with_an_undefined_status_or_a_nul_is_400_and_changes_nothing(http, sale, body, field):
    seller, buyer, order = sale
    before = _history(http, buyer, order["id"])
    r = http.post(f"/v1/orders/{order['id']}:advanceDelivery", headers=seller.auth, json=body)
    message = _refused_naming(r, field)
    if field == "status":
        assert "DELIVERY_STATUS_PACKED" in message and "DELIVERY_STATUS_DELIVERED" in message
    assert [v["field"] for v in _violations(r)] == [field]
    assert _history(http, buyer, order["id"]) == before


def test_nul_in_a_post_is_400_and_nothing_is_posted(http):
    author = sign_up(http, "rsn")
    r = http.post("/v1/posts", json={"text": "hello\u0000world"}, headers=author.auth)
    _refused_naming(r, "text")
    assert http.get(f"/v1/users/{author.id}/posts").json().get("posts", []) == []


def test_an_update_that_sets_nothing_names_what_can_be_set_and_no_wrong_field(http, reader):
    r = http.patch("/v1/users/me", json={}, headers=reader.auth)
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert message.startswith("nothing to change: set at least one of ")
    assert all(name in message for name in ("displayName", "bio", "avatarMediaId"))
    assert _violations(r) == []
