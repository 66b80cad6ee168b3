"""Shopping in the browser, two people in two browser contexts: a seller lists
a product and posts about it; a buyer opens the product card from the post,
buys it through the cart and checkout (a double click or a lost answer buys
once), and follows the order's delivery as the seller advances it. axe-core
checks the product, cart, checkout, orders and seller pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.accounts import Person, log_in
from tests.browser.conftest import Console, _context, _screenshot_on_failure

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def seller_page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The seller's own browser context, beside the buyer's `page`."""
    context = _context(browser, console)
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()


def create_product_in_browser(page: Page, title: str, price: str, stock: str) -> str:
    page.get_by_role("navigation", name="Shopping").get_by_role("link", name="Selling").click()
    expect(page.get_by_role("heading", level=1, name="Your products")).to_be_visible()
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Description (optional)").fill("Handmade, one at a time.")
    page.get_by_label("Price", exact=True).fill(price)
    page.get_by_label("Stock", exact=True).fill(stock)
    page.get_by_role("button", name="Create product").click()
    created = page.get_by_role("link", name=title).first
    expect(created).to_be_visible()
    expect(page.get_by_role("list", name="Your products")).to_contain_text(title)
    href = created.get_attribute("href") or ""
    match = re.fullmatch(r"/products/(\d+)", href)
    assert match, href
    return match.group(1)


def post_about(http: httpx.Client, seller: Person, product_id: str, text: str) -> str:
    r = http.post("/v1/posts", json={"text": text, "productIds": [product_id]}, headers=seller.auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def add_to_cart_from_post(page: Page, post_id: str, title: str) -> None:
    page.goto(f"/posts/{post_id}")
    page.get_by_role("list", name="Tagged products").get_by_role("link", name=re.compile(re.escape(title))).click()
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_text("In your cart: 1.")).to_be_visible()


def orders_of(http: httpx.Client, person: Person) -> list[dict]:
    r = http.get("/v1/orders", headers=person.auth)
    assert r.status_code == 200, r.text
    return r.json().get("orders", [])


def serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_a_buyer_buys_from_a_post_and_follows_the_delivery(page: Page, seller_page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    title = f"Teapot {seller.username}"

    log_in(seller_page, seller.username)
    product_id = create_product_in_browser(seller_page, title, "12.50", "5")
    post_id = post_about(http, seller, product_id, f"new in the shop: {title}")

    log_in(page, buyer.username)
    add_to_cart_from_post(page, post_id, title)
    expect(page.get_by_text("$12.50")).to_be_visible()
    expect(page.get_by_text("5 available")).to_be_visible()
    expect(page.get_by_text(f"(@{seller.username})")).to_be_visible()

    page.get_by_role("link", name="Go to cart").click()
    expect(page.get_by_role("list", name="Cart items")).to_contain_text(title)
    page.get_by_label(f"Quantity of {title}").fill("2")
    page.get_by_label(f"Quantity of {title}").press("Tab")
    expect(page.get_by_text("Total: $25.00")).to_be_visible()
    page.get_by_role("link", name="Check out").click()

    checkouts: list[str] = []
    page.on("request", lambda r: checkouts.append(r.url) if r.url.endswith("/v1/checkouts") else None)
    page.get_by_role("button", name=re.compile(r"^Place order")).dblclick()
    expect(page).to_have_url(re.compile(r"/orders/\d+$"))
    expect(page.get_by_role("heading", level=1, name="Order")).to_be_visible()
    orders = orders_of(http, buyer)
    assert len(orders) == 1 and len(checkouts) == 1, (orders, checkouts)
    order_id = orders[0]["id"]
    assert page.url.endswith(f"/orders/{order_id}")
    expect(page.get_by_text("Confirmed", exact=True)).to_be_visible()
    expect(page.get_by_role("list", name="Delivery history")).to_contain_text("Awaiting packing")

    # The seller moves their part along from their orders page.
    seller_page.get_by_role("navigation", name="Shopping").get_by_role("link", name="Selling").click()
    seller_page.get_by_role("link", name="Orders to fulfil").click()
    seller_page.get_by_role("list", name="Orders to fulfil").get_by_role("link").first.click()
    expect(seller_page).to_have_url(re.compile(rf"/orders/{order_id}$"))
    seller_page.get_by_label("Note for the buyer (optional, e.g. a tracking number)").fill("tracking 1Z999")
    seller_page.get_by_role("button", name="Mark as shipped").click()
    expect(seller_page.get_by_role("button", name="Mark as delivered")).to_be_visible()

    page.get_by_role("button", name="Refresh").click()
    history = page.get_by_role("list", name="Delivery history")
    expect(history).to_contain_text("Shipped")
    expect(history).to_contain_text("tracking 1Z999")
    # Shipped: too late to cancel.
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)

    page.get_by_role("navigation", name="Shopping").get_by_role("link", name="Orders").click()
    expect(page.get_by_role("list", name="Your orders")).to_contain_text(title)
    assert console.errors == []


def test_a_lost_answer_is_retried_with_the_same_key_and_buys_once(page: Page, http):
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    product = http.post(
        "/v1/products",
        json={"title": f"Mug {seller.username}", "priceMinor": "900", "currency": "USD", "stock": "3"},
        headers=seller.auth,
    ).json()
    r = http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 1}, headers=buyer.auth)
    assert r.status_code == 200, r.text
    log_in(page, buyer.username)
    page.goto("/checkout")

    keys: list[str] = []

    def lose_the_answer(route: Route) -> None:
        keys.append(route.request.post_data_json["idempotencyKey"])
        if len(keys) == 1:
            route.fetch()  # the server checks out; the browser never hears back
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/v1/checkouts", lose_the_answer)
    place = page.get_by_role("button", name=re.compile(r"^Place order"))
    place.click()
    expect(page.get_by_role("alert")).to_contain_text("you will not be charged twice")
    place.click()
    expect(page).to_have_url(re.compile(r"/orders/\d+$"))
    assert len(keys) == 2 and keys[0] == keys[1], keys
    assert len(orders_of(http, buyer)) == 1


def test_a_changed_total_is_refused_with_the_new_total_then_paid(page: Page, http):
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    title = f"Lamp {seller.username}"
    product = http.post(
        "/v1/products",
        json={"title": title, "priceMinor": "2000", "currency": "USD", "stock": "3"},
        headers=seller.auth,
    ).json()
    r = http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 1}, headers=buyer.auth)
    assert r.status_code == 200, r.text
    log_in(page, buyer.username)
    page.goto("/checkout")
    expect(page.get_by_role("button", name="Place order · $20.00")).to_be_visible()

    r = http.patch(f"/v1/products/{product['id']}", json={"priceMinor": "2600"}, headers=seller.auth)
    assert r.status_code == 200, r.text
    page.get_by_role("button", name=re.compile(r"^Place order")).click()
    expect(page.get_by_role("alert")).to_contain_text("The total changed to $26.00")
    assert orders_of(http, buyer) == []
    expect(page.get_by_text("was $20.00, now $26.00")).to_be_visible()

    page.get_by_role("button", name="Place order · $26.00").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+$"))
    assert len(orders_of(http, buyer)) == 1


def test_the_buyer_cancels_before_shipping(page: Page, http):
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    product = http.post(
        "/v1/products",
        json={"title": f"Rug {seller.username}", "priceMinor": "4000", "currency": "USD", "stock": "2"},
        headers=seller.auth,
    ).json()
    http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 1}, headers=buyer.auth)
    log_in(page, buyer.username)
    page.goto("/checkout")
    page.get_by_role("button", name=re.compile(r"^Place order")).click()
    expect(page).to_have_url(re.compile(r"/orders/\d+$"))
    page.get_by_label("Reason (optional)").fill("changed my mind")
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_text("Cancelled", exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"Cancelled .*: changed my mind"))).to_be_visible()


def test_the_seller_edits_restocks_and_deactivates(seller_page: Page, http):
    seller = Person(http, "sl", role="SELLER")
    log_in(seller_page, seller.username)
    title = f"Vase {seller.username}"
    product_id = create_product_in_browser(seller_page, title, "30", "1")
    row = seller_page.get_by_role("list", name="Your products").get_by_role("listitem").filter(has_text=title)
    row.get_by_label("New price (USD)").fill("35.00")
    row.get_by_role("button", name="Save price").click()
    expect(row).to_contain_text("$35.00")
    row.get_by_label("Units to add").fill("4")
    row.get_by_role("button", name="Restock").click()
    expect(row).to_contain_text("5 in stock")
    row.get_by_role("button", name=f"Deactivate {title}").click()
    expect(row).to_contain_text("inactive")
    product = http.get(f"/v1/products/{product_id}").json()
    assert (product["priceMinor"], product["stock"], product.get("active", False)) == ("3500", "5", False)
    # The seller's own listing keeps inactive products, so they can be reactivated after a reload.
    seller_page.reload()
    expect(row).to_contain_text("inactive")
    row.get_by_role("button", name=f"Reactivate {title}").click()
    expect(row.get_by_role("button", name=f"Deactivate {title}")).to_be_visible()


def test_the_shop_pages_have_no_serious_accessibility_violation(page: Page, http):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    page.add_init_script(path=str(AXE))
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    product = http.post(
        "/v1/products",
        json={"title": f"Bowl {seller.username}", "priceMinor": "1500", "currency": "USD", "stock": "4"},
        headers=seller.auth,
    ).json()
    http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 1}, headers=buyer.auth)
    # A price change since it was carted: the cart's notice is checked too.
    http.patch(f"/v1/products/{product['id']}", json={"priceMinor": "1400"}, headers=seller.auth)
    log_in(page, buyer.username)

    checks = {
        f"/products/{product['id']}": ("button", "Add to cart"),
        "/cart": ("list", "Cart items"),
        "/checkout": ("list", "Items to buy"),
    }
    for path, (role, name) in checks.items():
        page.goto(path)
        expect(page.get_by_role(role, name=name)).to_be_visible()
        assert serious_violations(page) == [], path
    page.get_by_role("button", name=re.compile(r"^Place order")).click()
    expect(page).to_have_url(re.compile(r"/orders/\d+$"))
    expect(page.get_by_role("list", name="Delivery history")).to_be_visible()
    assert serious_violations(page) == [], "order"
    page.goto("/orders")
    expect(page.get_by_role("list", name="Your orders")).to_be_visible()
    assert serious_violations(page) == [], "orders"
    page.emulate_media(color_scheme="dark")
    assert serious_violations(page) == [], "orders, dark"
    page.emulate_media(color_scheme="light")

    page.get_by_role("button", name="Log out").click()
    log_in(page, seller.username)
    page.goto("/seller/products")
    expect(page.get_by_role("list", name="Your products")).to_be_visible()
    assert serious_violations(page) == [], "seller products"
    page.goto("/seller/orders")
    expect(page.get_by_role("list", name="Orders to fulfil")).to_be_visible()
    assert serious_violations(page) == [], "seller orders"


def test_the_shop_pages_fit_a_phone(phone_page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    buyer = Person(http, "by")
    product = http.post(
        "/v1/products",
        json={"title": f"Very long product title {seller.username} " * 3, "priceMinor": "123456", "currency": "USD"},
        headers=seller.auth,
    ).json()
    http.post(
        f"/v1/products/{product['id']}:restock",
        json={"quantity": "3", "idempotencyKey": "restock-1"},
        headers=seller.auth,
    )
    http.post("/v1/cart/items", json={"productId": product["id"], "quantity": 1}, headers=buyer.auth)
    log_in(phone_page, buyer.username)
    for path, (role, name) in {
        f"/products/{product['id']}": ("button", "Add to cart"),
        "/cart": ("list", "Cart items"),
        "/checkout": ("list", "Items to buy"),
        "/orders": ("heading", "Your orders"),
    }.items():
        phone_page.goto(path)
        expect(phone_page.get_by_role(role, name=name)).to_be_visible()
        sideways = phone_page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
        assert sideways is False, path
    # At phone width the header's navigation is behind its "Menu" button.
    phone_page.get_by_role("button", name="Menu").click()
    phone_page.get_by_role("button", name="Log out").click()
    log_in(phone_page, seller.username)
    phone_page.goto("/seller/products")
    expect(phone_page.get_by_role("list", name="Your products")).to_be_visible()
    assert phone_page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False
    assert console.errors == []
