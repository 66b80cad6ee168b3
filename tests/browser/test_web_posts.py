"""A post's page in the browser: the thread around it (ancestors, the post,
replies), readable signed out, reached from the home timeline, and a clear
message for a post that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.accounts import PASSWORD, wait_for_home_timeline
from tests.conftest import EDGE_URL, unique_username

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


def _account(http: httpx.Client, prefix: str) -> tuple[str, dict[str, str]]:
    username = unique_username(prefix)
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "displayName": username.upper()})
    assert r.status_code == 200, r.text
    return username, {"Authorization": f"Bearer {r.json()['accessToken']}"}


def _post(http: httpx.Client, auth: dict[str, str], text: str, reply_to: str | None = None) -> str:
    body = {"text": text, **({"replyToId": reply_to} if reply_to else {})}
    r = http.post("/v1/posts", json=body, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


@pytest.fixture
def thread():
    with httpx.Client(base_url=EDGE_URL, timeout=15.0) as http:
        author, author_auth = _account(http, "th")
        replier, replier_auth = _account(http, "re")
        root = _post(http, author_auth, f"the root of a thread {author}")
        reply = _post(http, replier_auth, f"a reply from {replier}", reply_to=root)
        wait_for_home_timeline(http, author_auth["Authorization"].removeprefix("Bearer "), {root})
        return {"author": author, "replier": replier, "root": root, "reply": reply}


def test_a_reply_shows_its_ancestors_signed_out(page: Page, thread, console):
    page.goto(f"/posts/{thread['reply']}")
    expect(page.get_by_role("heading", level=1, name="Post")).to_be_visible()
    expect(page.get_by_role("list", name="Earlier in the thread")).to_contain_text(
        f"the root of a thread {thread['author']}"
    )
    expect(page.get_by_role("article", name=f"Post by {thread['replier'].upper()}").first).to_contain_text(
        f"a reply from {thread['replier']}"
    )
    expect(page.get_by_text("No replies yet.")).to_be_visible()
    assert console.errors == []


def test_the_root_lists_its_replies_and_is_reached_from_the_home_timeline(page: Page, thread):
    page.goto("/")
    page.get_by_label("Username").fill(thread["author"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    timeline = page.get_by_role("list", name="Home timeline")
    root = timeline.get_by_role("article", name=f"Post by {thread['author'].upper()}").first
    root.locator(".permalink").click()
    expect(page).to_have_url(re.compile(rf"/posts/{thread['root']}$"))
    expect(page.get_by_role("heading", level=1, name="Post")).to_be_focused()
    expect(page.get_by_role("list", name="Replies")).to_contain_text(f"a reply from {thread['replier']}")
    page.go_back()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()


def test_a_missing_post_says_so(page: Page):
    page.goto("/posts/1")
    expect(page.get_by_role("alert")).to_have_text("This post does not exist or was deleted.")


def test_the_post_page_has_no_serious_accessibility_violation(page: Page, thread):
    page.add_init_script(path=str(AXE))
    page.goto(f"/posts/{thread['root']}")
    expect(page.get_by_role("list", name="Replies")).to_be_visible()
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    serious = [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []
