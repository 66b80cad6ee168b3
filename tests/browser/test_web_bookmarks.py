"""Bookmarks and one's own reposts in the web client: a post bookmarked from
home is listed on /bookmarks and leaves it when the bookmark is removed
there; a repost still says "Undo repost" after a reload (the API's
repostedByMe) and is undone without knowing the repost's id. axe checks
/bookmarks with a bookmark and empty, wide and at phone width."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.accounts import Person, log_in, wait_for_home_timeline

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def open_bookmarks(page: Page) -> None:
    """Through the header's Account navigation (behind "Menu" at phone width)."""
    menu = page.get_by_role("button", name="Menu")
    if menu.is_visible():
        menu.click()
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Bookmarks").click()
    expect(page.get_by_role("heading", level=1, name="Bookmarks")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    assert page.title() == "Bookmarks · Aviary"


def reposted_by_me(http: httpx.Client, reader: Person, post_id: str) -> bool:
    r = http.get(f"/v1/posts/{post_id}", headers=reader.auth)
    assert r.status_code == 200, r.text
    return r.json().get("repostedByMe", False)


def wait_for(probe, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_a_post_bookmarked_from_home_is_listed_and_removed_on_the_bookmarks_page(page: Page, http, console):
    reader = Person(http, "bm")
    kept = reader.post(http, "a recipe worth keeping")
    other = reader.post(http, "a passing thought")
    token = reader.auth["Authorization"].removeprefix("Bearer ")
    wait_for_home_timeline(http, token, {kept, other})
    log_in(page, reader.username)

    home = page.get_by_role("list", name="Home timeline")
    card = home.get_by_role("article").filter(has_text="a recipe worth keeping")
    card.get_by_role("button", name="Bookmark", exact=True).click()
    expect(card.get_by_role("button", name="Remove bookmark")).to_have_attribute("aria-pressed", "true")

    open_bookmarks(page)
    listed = page.get_by_role("list", name="Bookmarked posts")
    expect(listed.get_by_role("article")).to_have_count(1)
    saved = listed.get_by_role("article").filter(has_text="a recipe worth keeping")
    expect(saved.get_by_role("button", name="Remove bookmark")).to_have_attribute("aria-pressed", "true")

    saved.get_by_role("button", name="Remove bookmark").click()
    expect(page.get_by_role("list", name="Bookmarked posts")).to_have_count(0)
    expect(page.get_by_text("No bookmarks yet.")).to_be_visible()
    page.reload()  # the API agrees: nothing bookmarked
    expect(page.get_by_role("heading", level=1, name="Bookmarks")).to_be_visible()
    expect(page.get_by_text("No bookmarks yet.")).to_be_visible()
    r = http.get("/v1/users/me/bookmarks", headers=reader.auth)
    assert r.status_code == 200 and r.json().get("posts", []) == [], r.text
    assert console.errors == []


def test_a_repost_still_says_undo_after_a_reload_and_is_undone(page: Page, http, console):
    author, reader = Person(http, "ra"), Person(http, "rr")
    post_id = author.post(http, "worth sharing with everyone")
    log_in(page, reader.username)
    page.goto(f"/posts/{post_id}")
    actions = page.get_by_role("group", name="Post actions")
    actions.get_by_role("button", name=re.compile(r"^Repost 0")).click()
    expect(actions.get_by_role("button", name=re.compile(r"^Undo repost 1"))).to_have_attribute("aria-pressed", "true")

    # The posts events reach engagement a moment after the repost.
    wait_for(lambda: reposted_by_me(http, reader, post_id))
    page.reload()
    undo = page.get_by_role("group", name="Post actions").get_by_role("button", name=re.compile(r"^Undo repost 1"))
    expect(undo).to_have_attribute("aria-pressed", "true")
    # Home shows the reader's own repost of it, marked as theirs too.
    page.get_by_role("link", name="Aviary", exact=True).click()
    shared = page.get_by_role("list", name="Home timeline").get_by_role("article").filter(has_text="worth sharing")
    expect(shared.get_by_text(f"{reader.name} reposted")).to_be_visible()
    expect(shared.get_by_role("button", name=re.compile(r"^Undo repost 1"))).to_be_visible()

    page.goto(f"/posts/{post_id}")
    undo = page.get_by_role("group", name="Post actions").get_by_role("button", name=re.compile(r"^Undo repost"))
    undo.click()
    repost = page.get_by_role("group", name="Post actions").get_by_role("button", name=re.compile(r"^Repost 0"))
    expect(repost).to_have_attribute("aria-pressed", "false")
    wait_for(lambda: not reposted_by_me(http, reader, post_id))
    page.reload()
    expect(
        page.get_by_role("group", name="Post actions").get_by_role("button", name=re.compile(r"^Repost 0"))
    ).to_be_visible()
    assert console.errors == []


@pytest.mark.parametrize("width", ["wide", "phone"])
def test_the_bookmarks_page_passes_axe_with_a_bookmark_and_empty(page: Page, phone_page: Page, http, console, width):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    tab = phone_page if width == "phone" else page
    reader = Person(http, "ax")
    post_id = reader.post(http, "checked by axe on bookmarks")
    r = http.put(f"/v1/users/me/bookmarks/{post_id}", headers=reader.auth)
    assert r.status_code == 200, r.text
    tab.add_init_script(path=str(AXE))
    log_in(tab, reader.username)
    open_bookmarks(tab)
    expect(tab.get_by_role("list", name="Bookmarked posts")).to_contain_text("checked by axe on bookmarks")
    assert serious_violations(tab) == []
    assert tab.evaluate("() => document.documentElement.scrollWidth > window.innerWidth") is False

    tab.get_by_role("button", name="Remove bookmark").click()
    expect(tab.get_by_text("No bookmarks yet.")).to_be_visible()
    assert serious_violations(tab) == []
    assert console.errors == []
