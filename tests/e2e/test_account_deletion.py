"""Deleting one's own account, as identity answers it through Envoy: the
password, the refusal of a seller with unfulfilled orders, and what is left
of the account afterwards (no profile, no log-in, a held username)."""

from __future__ import annotations

import pytest

from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_seller
from tests.e2e.edge import PASSWORD, error_message, sign_up

pytestmark = pytest.mark.e2e


def delete_account(http, account, password: str | None = PASSWORD):
    body = {} if password is None else {"password": password}
    return http.post("/v1/users/me:delete", json=body, headers=account.auth)


def violations(response) -> list[dict]:
    return [v for detail in response.json()["details"] for v in detail.get("fieldViolations", [])]


def log_in(http, username: str):
    return http.post("/v1/sessions", json={"username": username, "password": PASSWORD})


def test_deleting_needs_the_current_password(http):
    account = sign_up(http, "dl")
    missing = delete_account(http, account, password=None)
    assert missing.status_code == 400, missing.text
    assert error_message(missing).startswith("password:")
    wrong = delete_account(http, account, password="not my password")
    assert wrong.status_code == 403, wrong.text
    assert error_message(wrong).startswith("password:")
    # The same shape as a wrong current password on a password change.
    changing = http.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": "not my password", "newPassword": "another good phrase"},
        headers=account.auth,
    )
    assert changing.status_code == 403
    (deleting_violation,) = violations(wrong)
    (changing_violation,) = violations(changing)
    assert deleting_violation["field"] == "password" and changing_violation["field"] == "currentPassword"
    assert deleting_violation["description"] == changing_violation["description"]
    assert http.get(f"/v1/users/{account.id}").status_code == 200


def test_a_deleted_account_cannot_be_seen_used_or_deleted_again(http):
    account, friend = sign_up(http, "dl"), sign_up(http, "fr")
    assert http.put(f"/v1/users/me/following/{account.id}", headers=friend.auth).status_code == 200

    r = delete_account(http, account)
    assert r.status_code == 200, r.text

    assert http.get(f"/v1/users/{account.id}").status_code == 404
    assert http.get(f"/v1/users/{account.id}", headers=friend.auth).status_code == 404
    assert http.get("/v1/users:lookup", params={"username": account.username}).status_code == 404
    assert log_in(http, account.username).status_code == 401
    assert http.post("/v1/sessions:refresh", json={"refreshToken": account.refresh_token}).status_code == 401
    # Its access token still verifies until it expires, but finds no account.
    assert delete_account(http, account).status_code == 404
    assert http.patch("/v1/users/me", json={"bio": "back"}, headers=account.auth).status_code == 404
    assert http.get("/v1/users/me:export", headers=account.auth).status_code == 404


def test_a_deleted_username_is_held(http):
    account = sign_up(http, "dl")
    assert delete_account(http, account).status_code == 200
    for name in [account.username, account.username.upper()]:
        r = http.post("/v1/accounts", json={"username": name, "password": PASSWORD})
        assert r.status_code == 409, r.text
        assert "already taken" in error_message(r)


def test_a_seller_with_an_unshipped_order_is_refused_until_it_ships(http):
    seller, buyer = sign_up_seller(http), sign_up(http, "by")
    item = create_product(http, seller, stock=3)
    add_to_cart(http, buyer, item["id"])
    placed = checkout(http, buyer)
    assert placed.status_code == 200, placed.text
    order = placed.json()
    assert order["status"] == "ORDER_STATUS_CONFIRMED"

    refused = delete_account(http, seller)
    assert refused.status_code == 412, refused.text
    assert "unfulfilled" in error_message(refused)
    assert http.get(f"/v1/users/{seller.id}").status_code == 200
    assert log_in(http, seller.username).status_code == 200

    shipped = http.post(
        f"/v1/orders/{order['id']}:advanceDelivery", headers=seller.auth, json={"status": "DELIVERY_STATUS_SHIPPED"}
    )
    assert shipped.status_code == 200, shipped.text
    r = delete_account(http, seller)
    assert r.status_code == 200, r.text
    assert http.get(f"/v1/users/{seller.id}").status_code == 404


def test_a_seller_without_sales_is_deleted(http):
    seller = sign_up_seller(http)
    create_product(http, seller, stock=1)
    r = delete_account(http, seller)
    assert r.status_code == 200, r.text
    assert log_in(http, seller.username).status_code == 401
