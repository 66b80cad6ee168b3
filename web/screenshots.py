"""Takes the README's screenshots of the web client from the running devstack
(`make up` seeds the demo they show): alice's home timeline, and checkout with
a demo product in her cart. Run with `make screenshots`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.seed import BASE, PASSWORD, PRODUCTS, SELLER  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
VIEWPORT = {"width": 1200, "height": 820}
USER = "alice"


def _fill_cart(token: str) -> None:
    """Alice's cart holds exactly one demo mug, whatever earlier runs left."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=BASE, headers=auth, timeout=15.0) as client:
        for item in client.get("/v1/cart").raise_for_status().json().get("items", []):
            client.delete(f"/v1/cart/items/{item['productId']}").raise_for_status()
        seller = client.get("/v1/users:lookup", params={"username": SELLER[0]}).raise_for_status().json()["id"]
        listed = client.get("/v1/products", params={"sellerId": seller, "pageSize": 100}).raise_for_status()
        products = listed.json()["products"]
        mug = next(p for p in products if p["title"] == PRODUCTS[0]["title"])
        client.post("/v1/cart/items", json={"productId": mug["id"], "quantity": 1}).raise_for_status()


def _log_in(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()


def _settled(page: Page) -> None:
    expect(page.locator(".loading")).to_have_count(0, timeout=15_000)
    # The live stream keeps the network busy, so "settled" is: every image loaded.
    page.wait_for_function("[...document.images].every((image) => image.complete)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    token = httpx.post(f"{BASE}/v1/sessions", json={"username": USER, "password": PASSWORD}, timeout=15.0)
    _fill_cart(token.raise_for_status().json()["accessToken"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(base_url=BASE.replace("127.0.0.1", "localhost"), viewport=VIEWPORT).new_page()
        _log_in(page)
        _settled(page)
        page.screenshot(path=str(OUT / "home.png"))
        page.goto("/checkout")
        expect(page.get_by_role("list", name="Items to buy")).to_be_visible()
        _settled(page)
        page.screenshot(path=str(OUT / "checkout.png"))
        browser.close()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
