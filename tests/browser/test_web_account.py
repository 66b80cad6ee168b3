"""The account settings page in the browser: changing the password (the new
one works in another browser context, the old one no longer does), a copy of
one's data saved as a file, deleting the account (and a seller with open
sales refused); axe on /settings; the compact header at phone width."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.accounts import PASSWORD, post_as
from tests.browser.conftest import Console, _context, _screenshot_on_failure
from tests.conftest import EDGE_URL, unique_username

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
NEW_PASSWORD = "quiet lantern orchard"
NARROW_PHONE = {"width": 360, "height": 740}


def _sign_up(prefix: str, role: str = "USER") -> tuple[str, dict[str, str]]:
    """A new account made through the API: its name and a bearer header."""
    username = unique_username(prefix)
    body = {"username": username, "password": PASSWORD, "role": role}
    r = httpx.post(f"{EDGE_URL}/v1/accounts", json=body, timeout=15.0)
    assert r.status_code == 200, r.text
    return username, {"Authorization": f"Bearer {r.json()['accessToken']}"}


def _log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()


def _open_settings(page: Page) -> None:
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(r"/settings$"))
    expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()


def _refused_log_in(page: Page, username: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("username or password is incorrect")
    expect(page).to_have_url(re.compile(r"/$"))


@pytest.fixture
def other_page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A second browser context (another device) beside `page`."""
    context = _context(browser, console)
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()


def test_change_password_keeps_this_tab_and_the_new_one_works_elsewhere(page: Page, other_page: Page, console):
    username, _ = _sign_up("pw")
    _log_in(page, username)
    _open_settings(page)
    form = page.get_by_role("region", name="Change password")

    form.get_by_label("Current password").fill("not my password at all")
    form.get_by_label("New password").fill(NEW_PASSWORD)
    form.get_by_role("button", name="Change password").click()
    expect(form.get_by_role("alert")).to_have_text("current_password: is not the account's current password")
    expect(form.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")

    form.get_by_label("Current password").fill(PASSWORD)
    form.get_by_label("New password").fill("short")
    form.get_by_role("button", name="Change password").click()
    expect(form.get_by_role("alert")).to_have_text("new_password: must be 8 to 128 characters, got 5")
    expect(form.get_by_label("New password")).to_have_attribute("aria-invalid", "true")

    form.get_by_label("New password").fill(NEW_PASSWORD)
    form.get_by_role("button", name="Change password").click()
    # The sign-up's session (made through the API) was another one: it ends.
    expect(form.get_by_role("status")).to_have_text(
        re.compile(r"Your password was changed\. \d+ other sessions? (was|were) logged out; you stay logged in here\.")
    )
    expect(form.get_by_role("alert")).to_have_count(0)
    expect(form.get_by_label("Current password")).to_have_value("")

    # This tab stays signed in, across a reload and a rotation of its tokens.
    page.evaluate(
        """() => {
            const stored = JSON.parse(localStorage.getItem('aviary.session'));
            stored.expiresAt = Date.now();
            localStorage.setItem('aviary.session', JSON.stringify(stored));
        }"""
    )
    with page.expect_response(lambda r: r.url.endswith("/v1/sessions:refresh") and r.ok):
        page.reload()
    expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()

    # Elsewhere the old password is refused with the API's message and the new one works.
    _refused_log_in(other_page, username, PASSWORD)
    _log_in(other_page, username, NEW_PASSWORD)
    assert console.errors == []


def test_download_my_data_saves_the_whole_export(page: Page, console):
    username, _ = _sign_up("dl")
    post_as(username, "in my export #mine")
    _log_in(page, username)
    _open_settings(page)
    part = page.get_by_role("region", name="Download my data")
    with page.expect_download() as downloading:
        part.get_by_role("button", name="Download my data").click()
    download = downloading.value
    assert re.fullmatch(rf"aviary-{username}-\d{{4}}-\d{{2}}-\d{{2}}\.ndjson", download.suggested_filename)
    lines = Path(download.path()).read_text(encoding="utf-8").strip().split("\n")
    records = [json.loads(line) for line in lines]
    assert records[0]["profile"]["username"] == username
    assert any(r.get("post", {}).get("text") == "in my export #mine" for r in records), records
    assert records[-1] == {"complete": {"postCount": 1, "followCount": 0, "orderCount": 0}}
    expect(part.get_by_role("status")).to_contain_text(
        f"saved as {download.suggested_filename} (1 post, 0 follows, 0 orders)."
    )
    # The strict policy let the download through (a violation is a console error).
    assert console.errors == []


def test_an_export_cut_short_is_not_saved(page: Page, console):
    username, _ = _sign_up("dc")
    _log_in(page, username)
    _open_settings(page)

    def cut_short(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"profile": {"id": "1"}}) + "\n")

    page.route("**/v1/users/me:export", cut_short)
    downloads: list[object] = []
    page.on("download", lambda download: downloads.append(download))
    part = page.get_by_role("region", name="Download my data")
    part.get_by_role("button", name="Download my data").click()
    expect(part.get_by_role("alert")).to_have_text(
        "The export was cut short before its end; nothing was saved. Try again."
    )
    assert downloads == []


def test_delete_account_with_its_password(page: Page, console):
    username, _ = _sign_up("del")
    post_as(username, "soon gone")
    _log_in(page, username)
    _open_settings(page)
    part = page.get_by_role("region", name="Delete account")
    part.get_by_role("button", name="Delete my account…").click()
    confirm = part.get_by_role("form", name="Are you sure? Type your password to confirm")
    expect(confirm.get_by_label("Your password", exact=True)).to_be_focused()

    confirm.get_by_label("Your password", exact=True).fill("not my password at all")
    confirm.get_by_role("button", name="Delete my account for good").click()
    expect(confirm.get_by_role("alert")).to_have_text("password: is not the account's current password")
    expect(page).to_have_url(re.compile(r"/settings$"))

    confirm.get_by_label("Your password", exact=True).fill(PASSWORD)
    confirm.get_by_role("button", name="Delete my account for good").click()
    expect(page.get_by_role("heading", level=1, name="Log in to Aviary")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Your account was deleted\."))
    assert page.evaluate("() => localStorage.getItem('aviary.session')") is None

    _refused_log_in(page, username, PASSWORD)
    page.goto(f"/users/{username}")
    expect(page.get_by_text(f"There is no account called @{username}.")).to_be_visible()
    assert console.errors == []


def test_a_seller_with_open_sales_is_told_why_it_cannot_be_deleted(page: Page, console):
    seller, seller_auth = _sign_up("ds", role="SELLER")
    _, buyer_auth = _sign_up("db")
    with httpx.Client(base_url=EDGE_URL, timeout=15.0) as http:
        product = http.post(
            "/v1/products",
            json={"title": "A kept promise", "priceMinor": "1500", "currency": "USD"},
            headers=seller_auth,
        )
        assert product.status_code == 200, product.text
        product_id = product.json()["id"]
        restock = {"quantity": "2", "idempotencyKey": f"restock-{uuid.uuid4()}"}
        r = http.post(f"/v1/products/{product_id}:restock", json=restock, headers=seller_auth)
        assert r.status_code == 200, r.text
        r = http.post("/v1/cart/items", json={"productId": product_id, "quantity": 1}, headers=buyer_auth)
        assert r.status_code == 200, r.text
        checkout = {"idempotencyKey": f"checkout-{uuid.uuid4()}", "paymentMethod": "pm_card_visa"}
        r = http.post("/v1/checkouts", json=checkout, headers=buyer_auth)
        assert r.status_code == 200, r.text

    _log_in(page, seller)
    _open_settings(page)
    part = page.get_by_role("region", name="Delete account")
    part.get_by_role("button", name="Delete my account…").click()
    part.get_by_label("Your password", exact=True).fill(PASSWORD)
    part.get_by_role("button", name="Delete my account for good").click()
    expect(part.get_by_role("alert")).to_have_text(
        "you have 1 unfulfilled order(s) to ship or cancel before deleting the account"
    )
    # Still signed in: cancelling puts the first button back, focused.
    part.get_by_role("button", name="Cancel").click()
    expect(part.get_by_role("button", name="Delete my account…")).to_be_focused()
    page.reload()
    expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()
    assert console.errors == []


def _serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_settings_page_passes_axe(page: Page):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    page.add_init_script(path=str(AXE))
    username, _ = _sign_up("ax")
    _log_in(page, username)
    _open_settings(page)
    # At desktop width every header link fits one row, on pages with or without the trends column.
    assert page.get_by_role("banner").bounding_box()["height"] < 80
    assert _serious_violations(page) == []
    # With a refusal shown and the deletion's confirmation open, in both palettes.
    password = page.get_by_role("region", name="Change password")
    password.get_by_label("Current password").fill("not my password at all")
    password.get_by_label("New password").fill(NEW_PASSWORD)
    password.get_by_role("button", name="Change password").click()
    expect(password.get_by_role("alert")).to_be_visible()
    page.get_by_role("button", name="Delete my account…").click()
    assert _serious_violations(page) == []
    page.emulate_media(color_scheme="dark")
    assert _serious_violations(page) == []


@pytest.fixture
def narrow_page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = _context(browser, console, viewport=NARROW_PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()


def _top(page: Page, locator) -> float:
    box = locator.bounding_box()
    assert box is not None
    return box["y"] + box["height"] / 2


def test_the_header_folds_into_a_menu_at_phone_width(narrow_page: Page, console):
    page = narrow_page
    username, _ = _sign_up("hm", role="SELLER")
    _log_in(page, username)
    header = page.get_by_role("banner")
    brand = header.get_by_role("link", name="Aviary", exact=True)
    notifications = header.get_by_role("link", name=re.compile(r"^Notifications"))
    menu = header.get_by_role("button", name="Menu")

    # One row: the brand, the notifications link and the menu button side by side, nothing else shown.
    expect(notifications).to_have_count(1)
    expect(menu).to_have_attribute("aria-expanded", "false")
    rows = {round(_top(page, part)) for part in (brand, notifications, menu)}
    assert max(rows) - min(rows) <= 4, rows
    assert header.bounding_box()["height"] < 80
    expect(header.get_by_role("navigation", name="Account")).to_be_hidden()
    assert page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False

    # The keyboard opens it; Escape closes it and leaves focus on the button.
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    account = header.get_by_role("navigation", name="Account")
    expect(account.get_by_role("link", name="Settings")).to_be_visible()
    expect(header.get_by_role("navigation", name="Shopping").get_by_role("link", name="Selling")).to_be_visible()
    page.keyboard.press("Tab")
    expect(header.get_by_role("navigation", name="Shopping").get_by_role("link", name="Cart")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(account).to_be_hidden()

    # Its links work, and following one closes it.
    page.keyboard.press("Enter")
    account.get_by_role("link", name="Settings").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Settings")).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    assert page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False

    menu.click()
    account.get_by_role("link", name=f"@{username}").click()
    expect(page).to_have_url(re.compile(rf"/users/{username}$"))
    menu.click()
    account.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1, name="Log in to Aviary")).to_be_visible()
    assert console.errors == []


_DAY_IN_BROWSER = "iso => new Date(iso).toLocaleDateString(undefined, {month: 'short', day: 'numeric'})"


def test_posts_show_relative_times_with_the_full_date_in_the_title(page: Page, console):
    username, auth = _sign_up("rt")
    created = httpx.post(f"{EDGE_URL}/v1/posts", json={"text": "how long ago?"}, headers=auth, timeout=15.0)
    assert created.status_code == 200, created.text
    created_at = created.json()["createdAt"]
    posted = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    post_as(username, "a second post, so the first is in the timeline too")

    # The browser's clock is moved on; each answer is what a reader would see then.
    page.clock.install(time=posted + datetime.timedelta(seconds=20))
    _log_in(page, username)
    when = page.get_by_role("article").filter(has_text="how long ago?").locator("time")
    expect(when).to_have_attribute("datetime", created_at)
    expect(when).to_have_attribute("title", re.compile(rf"\b{posted.year}\b"))
    expect(when.locator("[aria-hidden=true]")).to_have_text("now")
    for later, shown in (
        (datetime.timedelta(minutes=5, seconds=10), "5m"),
        (datetime.timedelta(hours=3, minutes=1), "3h"),
        # After a day, the day it was posted (as the reader's calendar has it: "Dec 4").
        (datetime.timedelta(days=3), page.evaluate(_DAY_IN_BROWSER, created_at)),
    ):
        page.clock.set_fixed_time(posted + later)
        page.reload()
        expect(when.locator("[aria-hidden=true]")).to_have_text(shown)
    assert console.errors == []
