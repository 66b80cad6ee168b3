"""Product tags, the mixed feed, search and trends in the browser: a post tags
a product picked from the catalog by keyboard and shows its card; the For you
tab mixes posts with a recommended product; the search page finds a post by a
word and a product by its title; the trends panel lists a tag several people
used. axe-core checks the For you feed and the picker with its list open.

What is seeded through the API is waited for through the API (search indexing,
recommendations and trends are fed by events), so the pages are then read once
and deterministically."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.accounts import Person, log_in, wait_for_home_timeline

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
# The devstack's AVIARY_FEED_PRODUCT_EVERY: a product follows every four posts.
POSTS_BEFORE_A_PRODUCT = 4
# Trends list a tag from AVIARY_TRENDS_MIN_USERS (3) distinct users; more make it
# outrank the few-user tags other tests leave in the one-hour window, so it is in
# the panel's top ten.
TREND_USERS = 6

# The posts service's limit (CreatePostRequest.product_ids: at most 10).
MAX_TAGGED_PRODUCTS = 10

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Polls an API read until it answers with something (events reach search,
    recommendations and trends a moment after the write)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.25)


def create_product(http: httpx.Client, seller: Person, title: str) -> dict:
    r = http.post(
        "/v1/products",
        json={
            "title": title,
            "description": "Hand-beaten, for the stove.",
            "priceMinor": "3450",
            "currency": "USD",
            "stock": "20",
        },
        headers=seller.auth,
    )
    assert r.status_code == 200, r.text
    return r.json()


def searchable_product(http: httpx.Client, word: str, product_id: str) -> bool:
    r = http.get("/v1/search/products", params={"q": word})
    assert r.status_code == 200, r.text
    return any(p["id"] == product_id for p in r.json().get("products", []))


def posts_found(http: httpx.Client, q: str) -> int:
    r = http.get("/v1/search/posts", params={"q": q, "pageSize": 50})
    assert r.status_code == 200, r.text
    return len(r.json().get("posts", []))


def searchable_post(http: httpx.Client, word: str, post_id: str) -> bool:
    r = http.get("/v1/search/posts", params={"q": word})
    assert r.status_code == 200, r.text
    return any(p["id"] == post_id for p in r.json().get("posts", []))


def post(http: httpx.Client, author: Person, text: str) -> str:
    r = http.post("/v1/posts", json={"text": text}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def pick_by_keyboard(page: Page, word: str, title: str) -> None:
    """Types into the product combobox, moves to the match with the arrow key, picks it with Enter."""
    combobox = page.get_by_role("combobox", name="Search products to tag")
    expect(combobox).to_be_focused()
    page.keyboard.type(word)
    option = page.get_by_role("listbox", name="Matching products").get_by_role("option", name=re.compile(title))
    expect(option).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    expect(combobox).to_have_attribute("aria-activedescendant", option.get_attribute("id") or "")
    page.keyboard.press("Enter")
    expect(page.get_by_role("list", name="Products to tag")).to_contain_text(title)
    expect(combobox).to_have_value("")
    expect(combobox).to_be_focused()


def test_a_post_tags_a_product_picked_from_the_catalog_by_keyboard(page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    writer = Person(http, "tg")
    word = f"kettle{secrets.token_hex(4)}"
    title = f"Copper {word}"
    product = create_product(http, seller, title)
    wait_for("the product in search", lambda: searchable_product(http, word, product["id"]))

    log_in(page, writer.username)
    text = f"My new kettle, tagged {secrets.token_hex(3)}"
    page.get_by_label("What's happening?").fill(text)
    page.get_by_role("button", name="Tag products").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("up to 10 products")).to_be_visible()
    pick_by_keyboard(page, word, title)

    # A chip can be removed (by keyboard too); the product is then offered again.
    page.get_by_role("button", name=f"Remove {title}").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("list", name="Products to tag")).to_have_count(0)
    pick_by_keyboard(page, word, title)

    # Enter in the combobox picked without posting; Ctrl+Enter in the text posts.
    page.get_by_label("What's happening?").press("Control+Enter")
    card = page.get_by_role("list", name="Home timeline").get_by_role("article").filter(has_text=text).first
    link = card.get_by_role("list", name="Tagged products").get_by_role("link", name=re.compile(title))
    expect(link).to_have_attribute("href", f"/products/{product['id']}")
    expect(link).to_contain_text("$34.50")
    expect(page.get_by_role("list", name="Products to tag")).to_have_count(0)

    # The server stored the tag: the post's own page shows the card too.
    permalink = card.locator("a.permalink").get_attribute("href") or ""
    post_id = permalink.rsplit("/", 1)[-1]
    r = http.get(f"/v1/posts/{post_id}")
    assert r.status_code == 200, r.text
    assert r.json()["productIds"] == [product["id"]]

    link.click()
    expect(page).to_have_url(re.compile(rf"/products/{product['id']}$"))
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    assert console.errors == []


def test_a_post_tags_at_most_the_servers_limit_of_products(page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    writer = Person(http, "lm")
    word = f"spoon{secrets.token_hex(4)}"
    products = [create_product(http, seller, f"Spoon {n} {word}") for n in range(MAX_TAGGED_PRODUCTS + 1)]

    def all_searchable() -> bool:
        r = http.get("/v1/search/products", params={"q": word, "pageSize": 50})
        assert r.status_code == 200, r.text
        return len(r.json().get("products", [])) == len(products)

    wait_for("the products in search", all_searchable)
    log_in(page, writer.username)
    page.get_by_label("What's happening?").fill("a drawer of spoons")
    page.get_by_role("button", name="Tag products").click()
    combobox = page.get_by_role("combobox", name="Search products to tag")
    chips = page.get_by_role("list", name="Products to tag").get_by_role("listitem")
    for n in range(MAX_TAGGED_PRODUCTS):
        combobox.press_sequentially(word)
        expect(page.get_by_role("option").first).to_be_visible()
        combobox.press("ArrowDown")
        combobox.press("Enter")
        expect(chips).to_have_count(n + 1)
    expect(combobox).to_have_attribute("aria-disabled", "true")
    expect(combobox).to_be_focused()
    expect(page.get_by_text(f"You tagged {MAX_TAGGED_PRODUCTS} products, the most a post can have.")).to_be_visible()
    combobox.press_sequentially(word)
    expect(combobox).to_have_value("")
    expect(page.get_by_role("option")).to_have_count(0)

    page.get_by_role("button", name="Post", exact=True).click()
    card = page.get_by_role("list", name="Home timeline").get_by_role("article").filter(has_text="a drawer of spoons")
    expect(card.get_by_role("list", name="Tagged products").get_by_role("link")).to_have_count(MAX_TAGGED_PRODUCTS)
    assert console.errors == []


def feed_with_product(http: httpx.Client, reader: Person, product_id: str) -> dict | None:
    r = http.get("/v1/feed", params={"pageSize": 20}, headers=reader.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    return body if any(i.get("product", {}).get("id") == product_id for i in body.get("items", [])) else None


def test_the_for_you_tab_mixes_posts_and_a_recommended_product(page: Page, http, console):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    seller = Person(http, "sl", role="SELLER")
    reader = Person(http, "fy")
    title = f"Teapot {secrets.token_hex(4)}"
    product = create_product(http, seller, title)
    # Following a seller makes their new products the reader's strongest
    # recommendation (a fresh reader has engaged with nothing else).
    r = http.put(f"/v1/users/me/following/{seller.id}", headers=reader.auth)
    assert r.status_code == 200, r.text
    texts = [f"from the workshop, part {n} {secrets.token_hex(3)}" for n in range(POSTS_BEFORE_A_PRODUCT + 1)]
    ids = {post(http, seller, text) for text in texts}
    wait_for_home_timeline(http, reader.token, ids)

    def recommended() -> bool:
        r = http.get("/v1/recommendations", headers=reader.auth)
        assert r.status_code == 200, r.text
        best = (r.json().get("recommendations") or [{}])[0]
        return best.get("product", {}).get("id") == product["id"]

    wait_for("the followed seller's product first among the reader's recommendations", recommended)
    # The feed reuses a ranking for a while after it is built: this one, with
    # the product, is the one the page then shows.
    wait_for("the product in the reader's feed", lambda: feed_with_product(http, reader, product["id"]), timeout=45)

    page.add_init_script(path=str(AXE))
    log_in(page, reader.username)
    tabs = page.get_by_role("tablist", name="Timelines")
    following = tabs.get_by_role("tab", name="Following")
    for_you = tabs.get_by_role("tab", name="For you")
    expect(following).to_have_attribute("aria-selected", "true")
    following.focus()
    page.keyboard.press("ArrowRight")
    expect(for_you).to_have_attribute("aria-selected", "true")
    expect(for_you).to_be_focused()
    expect(page).to_have_url(re.compile(r"/home\?tab=for-you$"))

    panel = page.get_by_role("tabpanel", name="For you")
    feed = panel.get_by_role("list", name="For you")
    expect(feed.get_by_role("article", name=re.compile("^Post by "))).to_have_count(len(texts))
    card = feed.get_by_role("article", name=f"Recommended product: {title}")
    expect(card).to_contain_text("From a seller you follow")
    expect(card.get_by_role("link", name=re.compile(title))).to_have_attribute("href", f"/products/{product['id']}")
    # The product sits between posts: every fifth entry.
    entries = feed.locator(":scope > li")
    expect(entries.nth(POSTS_BEFORE_A_PRODUCT)).to_contain_text(title)
    expect(page.locator(".loading")).to_have_count(0)
    assert serious_violations(page) == []

    # The tab is in the address: a reload comes back to it; Following shows the timeline again.
    page.reload()
    expect(page.get_by_role("tab", name="For you")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("list", name="For you")).to_contain_text(title)
    page.get_by_role("tab", name="Following").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    expect(page.get_by_role("list", name="Home timeline")).to_contain_text(texts[0])
    assert console.errors == []


def test_the_for_you_tab_of_a_new_account_says_it_is_empty(page: Page, http):
    reader = Person(http, "fe")
    log_in(page, reader.username)
    page.goto("/home?tab=for-you")
    expect(page.get_by_role("tab", name="For you")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("Nothing for you yet.")).to_be_visible()


def trend_users(http: httpx.Client, tag: str) -> int:
    r = http.get("/v1/trends", params={"pageSize": 50})
    assert r.status_code == 200, r.text
    return next((int(t["userCount"]) for t in r.json().get("trends", []) if t["hashtag"] == tag), 0)


def test_search_finds_a_post_and_a_product_and_trends_list_a_busy_tag(page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    word = f"lantern{secrets.token_hex(4)}"
    title = f"Paper {word}"
    product = create_product(http, seller, title)
    tag = f"kites{secrets.token_hex(4)}"
    post_word = f"breezy{secrets.token_hex(4)}"
    searcher = Person(http, "sr")
    post_id = post(http, searcher, f"A {post_word} day for #{tag}")
    for _ in range(TREND_USERS - 1):
        post(http, Person(http, "tu"), f"Flying at the beach #{tag}")

    wait_for("the post in search", lambda: searchable_post(http, post_word, post_id))
    wait_for("the product in search", lambda: searchable_product(http, word, product["id"]))
    wait_for(f"#{tag} trending with {TREND_USERS} people", lambda: trend_users(http, tag) == TREND_USERS, timeout=60)
    wait_for(f"the {TREND_USERS} posts with #{tag} in search", lambda: posts_found(http, f"#{tag}") == TREND_USERS)

    log_in(page, searcher.username)
    page.get_by_role("link", name="Search", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Search")).to_be_visible()
    page.get_by_label("Search posts and products").fill(post_word)
    page.get_by_label("Search posts and products").press("Enter")
    posts = page.get_by_role("list", name=f"Posts matching {post_word}")
    expect(posts.get_by_role("article")).to_have_count(1)
    expect(posts).to_contain_text(f"#{tag}")

    page.get_by_label("Search posts and products").fill(word)
    page.get_by_label("Search posts and products").press("Enter")
    expect(page.get_by_text(f"No posts match “{word}”.")).to_be_visible()
    page.get_by_role("group", name="What to search").get_by_role("button", name="Products").click()
    expect(page).to_have_url(re.compile(rf"/search\?q={word}&type=products$"))
    products = page.get_by_role("list", name=f"Products matching {word}")
    expect(products.get_by_role("link", name=title)).to_have_attribute("href", f"/products/{product['id']}")

    # A fresh page asks for trends again (each trends process recomputes its list every 2 s).
    page.reload()
    trends = page.get_by_role("region", name="Trending")
    trend = trends.get_by_role("link", name=f"#{tag}")
    expect(trend).to_be_visible()
    expect(trends.get_by_role("listitem").filter(has_text=f"#{tag}")).to_contain_text(f"{TREND_USERS} people")
    trend.click()
    expect(page).to_have_url(re.compile(rf"/search\?q=%23{tag}$"))
    expect(page.get_by_role("list", name=f"Posts matching #{tag}").get_by_role("article")).to_have_count(TREND_USERS)
    assert console.errors == []


def test_the_picker_and_the_tabs_fit_a_phone(phone_page: Page, http, console):
    seller = Person(http, "sl", role="SELLER")
    writer = Person(http, "ph")
    word = f"blanket{secrets.token_hex(4)}"
    title = f"Extraordinarily warm hand-woven woollen {word} for long winter evenings"
    product = create_product(http, seller, title)
    wait_for("the product in search", lambda: searchable_product(http, word, product["id"]))

    phone_page.add_init_script(path=str(AXE))
    log_in(phone_page, writer.username)
    phone_page.get_by_role("button", name="Tag products").click()
    phone_page.get_by_role("combobox", name="Search products to tag").fill(word)
    option = phone_page.get_by_role("option", name=re.compile(word))
    expect(option).to_be_visible()
    assert serious_violations(phone_page) == []  # the combobox with its listbox open
    option.click()
    expect(phone_page.get_by_role("list", name="Products to tag")).to_contain_text(title)
    assert phone_page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False

    phone_page.get_by_role("tab", name="For you").click()
    expect(phone_page.get_by_text("Nothing for you yet.")).to_be_visible()
    assert phone_page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False
    assert console.errors == []


# Envoy's answer to a call past a service's bound (tests/e2e/test_edge_shedding.py).
SHED = {
    "code": 14,
    "message": "the service is busy: try again in a moment",
    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}],
}


def test_a_home_read_the_edge_shed_is_asked_again_after_retry_after(page: Page, http):
    reader = Person(http, "rs")
    post_id = reader.post(http, "read after a shed call")
    wait_for_home_timeline(http, reader.token, {post_id})
    asked: list[float] = []

    def shed_the_first(route) -> None:
        asked.append(time.monotonic())
        if len(asked) > 1:
            route.continue_()
            return
        headers = {"retry-after": "1", "content-type": "application/json"}
        route.fulfill(status=503, headers=headers, body=json.dumps(SHED))

    page.route(re.compile(r"/v1/timelines/home(\?|$)"), shed_the_first)
    log_in(page, reader.username)
    expect(page.get_by_text("read after a shed call")).to_be_visible()
    # The page reads home twice (its first page, and again once the live
    # stream is open); the shed one is asked again a second later.
    deadline = time.monotonic() + 10
    while len(asked) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # Playwright runs the route handler only while it is called
    assert len(asked) == 3, "the shed read was not asked again"
    assert asked[2] - asked[0] >= 0.9, "asked again before Retry-After"
    expect(page.get_by_role("status")).to_have_count(0)  # no longer loading
    expect(page.get_by_role("alert")).to_have_count(0)  # and nothing said it failed
