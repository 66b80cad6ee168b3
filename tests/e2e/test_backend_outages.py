"""A backend that is down is an outage to retry, not a server bug: requests
that need it get 503 with a readable message (not 500), write nothing, and
work again once it is back, without restarting any service."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.commerce import create_product, sign_up_seller
from tests.e2e.edge import error_message, wait_until
from tests.e2e.fanout_support import devstack

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


@pytest.fixture
def postgres_restored():
    yield
    devstack("up", "postgres")


def test_with_postgresql_down_commerce_answers_503_writes_nothing_and_recovers(http, postgres_restored):
    seller = sign_up_seller(http)
    existing = create_product(http, seller, stock=3)

    devstack("down", "postgres")
    r = http.get(f"/v1/products/{existing['id']}")
    assert r.status_code == 503, r.text
    assert "try again" in error_message(r)
    title = f"Outage {secrets.token_hex(4)}"
    r = http.post(
        "/v1/products", headers=seller.auth, json={"title": title, "priceMinor": "500", "currency": "USD", "stock": "2"}
    )
    assert r.status_code == 503, r.text
    # Sign-up needs identity's tables: refused the same way.
    r = http.post("/v1/accounts", json={"username": f"pg{secrets.token_hex(4)}", "password": "outage password 1"})
    assert r.status_code == 503, r.text

    devstack("up", "postgres")
    # The services' pools reconnect by themselves.
    assert wait_until(lambda: http.get(f"/v1/products/{existing['id']}").status_code == 200, timeout=30.0)
    listed = http.get("/v1/products", params={"sellerId": seller.id, "pageSize": 100}).json().get("products", [])
    assert [p["id"] for p in listed] == [existing["id"]]
    assert title not in {p["title"] for p in listed}
    # And writes work again.
    create_product(http, seller, stock=1)
