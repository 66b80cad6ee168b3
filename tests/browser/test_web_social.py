"""The social side of the web client with two people in two browser contexts:
a follow from a profile, a post with an image arriving live in the follower's
home, a like raising the author's notification badge, a block hiding the
blocked author's posts; axe on the profile, notifications and search pages."""

from __future__ import annotations

import re
import struct
import time
import zlib
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
LIVE_WITHIN_MS = 2_000


def _png() -> bytes:
    """A real 2x2 PNG (the media service checks what it stores)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x1d\x6f\xb8" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _sign_up(prefix: str) -> str:
    username = unique_username(prefix)
    body = {"username": username, "password": PASSWORD, "displayName": username.upper()}
    r = httpx.post(f"{EDGE_URL}/v1/accounts", json=body, timeout=15.0)
    assert r.status_code == 200, r.text
    return username


def _log_in(page: Page, username: str) -> None:
    """Logs in and waits for the tab's one live stream to answer."""
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(lambda r: "/v1/events:watch" in r.url and r.ok):
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()


def _go_home(page: Page) -> None:
    page.get_by_role("link", name="Aviary", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)


@pytest.fixture
def two_people(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[tuple[Page, Page]]:
    # The reader opens the app as localhost while media URLs name 127.0.0.1: the
    # policy must still let the images in.
    reader_origin = EDGE_URL.replace("127.0.0.1", "localhost")
    contexts = [_context(browser, console, base_url=reader_origin), _context(browser, console)]
    pages = [context.new_page() for context in contexts]
    yield pages[0], pages[1]
    for page, context in zip(pages, contexts, strict=True):
        _screenshot_on_failure(request, page)
        context.close()


def test_follow_live_post_with_image_like_badge_and_block(two_people: tuple[Page, Page], console: Console):
    reader, author = two_people
    reader_name, author_name = _sign_up("fa"), _sign_up("fb")
    _log_in(reader, reader_name)
    _log_in(author, author_name)

    # The reader follows the author from the author's profile.
    reader.goto(f"/users/{author_name}")
    expect(reader.get_by_role("heading", level=1, name=author_name.upper())).to_be_visible()
    reader.get_by_role("button", name="Follow", exact=True).click()
    expect(reader.get_by_role("button", name="Unfollow")).to_have_attribute("aria-pressed", "true")
    expect(reader.get_by_text("1 followers")).to_be_visible()
    reader.reload()  # the profile itself says the reader follows (followedByMe)
    expect(reader.get_by_role("button", name="Unfollow")).to_have_attribute("aria-pressed", "true")
    _go_home(reader)
    # The follow makes the author's first notification.
    expect(author.get_by_role("link", name="Notifications, 1 unread")).to_be_visible()

    # The author posts with an image: previewed, uploaded, then posted.
    text = f"a bird at dawn #birds for @{reader_name}"
    author.get_by_label("What's happening?").fill(text)
    expect(author.locator(".preview mark.hashtag")).to_have_text("#birds")
    expect(author.locator(".preview mark.mention")).to_have_text(f"@{reader_name}")
    author.get_by_label("Add image").set_input_files({"name": "bird.png", "mimeType": "image/png", "buffer": _png()})
    expect(author.get_by_role("img", name="Preview of bird.png")).to_be_visible()
    author.get_by_label("Describe bird.png").fill("a small blue square")
    author.get_by_role("button", name="Post", exact=True).click()
    posted_at = time.monotonic()

    # It arrives live in the reader's home within 2 s, image included.
    reader_home = reader.get_by_role("list", name="Home timeline")
    post = reader_home.get_by_role("article", name=f"Post by {author_name.upper()}").filter(has_text="a bird at dawn")
    expect(post).to_be_visible(timeout=LIVE_WITHIN_MS)
    live_ms = (time.monotonic() - posted_at) * 1000
    assert live_ms <= LIVE_WITHIN_MS, f"arrived after {live_ms:.0f} ms"
    image = post.get_by_role("img", name="a small blue square")
    expect(image).to_be_visible()
    reader.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    expect(post.get_by_role("link", name="#birds")).to_have_attribute("href", "/search?q=%23birds")

    # A like raises the author's unread badge (the notification arrives on the live stream).
    post.get_by_role("button", name=re.compile(r"^Like")).click()
    expect(post.get_by_role("button", name=re.compile(r"^Unlike 1"))).to_have_attribute("aria-pressed", "true")
    expect(author.get_by_role("link", name="Notifications, 2 unread")).to_be_visible(timeout=5_000)
    author.get_by_role("link", name=re.compile(r"^Notifications")).click()
    expect(author.get_by_role("list", name="Notifications")).to_contain_text("liked")

    # The reader blocks the author: the author's posts leave the reader's home.
    post.get_by_role("link", name=f"@{author_name}").click()
    expect(reader.get_by_role("heading", level=1, name=author_name.upper())).to_be_visible()
    reader.get_by_role("button", name="Block").click()
    expect(reader.get_by_role("button", name="Unblock")).to_be_visible()
    _go_home(reader)
    expect(reader.get_by_text("a bird at dawn")).to_have_count(0)
    assert console.errors == []


def test_reply_quote_bookmark_and_delete_from_post_cards(page: Page, console: Console):
    username = _sign_up("pc")
    post_as(username, "the original thought")
    _log_in(page, username)
    home = page.get_by_role("list", name="Home timeline")
    # The quote made below embeds the original's text too: tell them apart by the quote's own words.
    original = home.get_by_role("article").filter(has_text="the original thought", has_not_text="quoting myself")

    original.get_by_role("button", name="Bookmark").click()
    expect(original.get_by_role("button", name="Remove bookmark")).to_have_attribute("aria-pressed", "true")

    original.get_by_role("button", name="Quote").click()
    quote_form = page.get_by_role("form", name="Quote post")
    expect(quote_form.get_by_role("blockquote")).to_contain_text("the original thought")
    quote_form.get_by_label("Your quote").fill("quoting myself")
    quote_form.get_by_role("button", name="Post", exact=True).click()
    expect(quote_form).to_have_count(0)

    original.get_by_role("link", name=re.compile(r"^Reply")).click()
    expect(page.get_by_role("heading", level=1, name="Post")).to_be_visible()
    page.get_by_label("Your reply").fill("a reply to myself")
    page.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_role("list", name="Replies")).to_contain_text("a reply to myself")

    focus = page.locator(".focus-post")
    focus.get_by_role("button", name="Delete").click()
    focus.get_by_role("button", name="Yes, delete").click()
    expect(focus).to_contain_text("This post was deleted.")
    page.goto("/home")
    quote = page.get_by_role("list", name="Home timeline").get_by_role("article").filter(has_text="quoting myself")
    expect(quote.first).to_be_visible()
    assert console.errors == []


def test_mute_and_report_from_a_profile_at_phone_width(phone_page: Page, console: Console):
    page = phone_page
    viewer, other = _sign_up("mv"), _sign_up("mo")
    _log_in(page, viewer)
    page.goto(f"/users/{other}")
    page.get_by_role("button", name="Mute").click()
    expect(page.get_by_role("status").filter(has_text=f"You muted @{other}")).to_be_visible()
    page.reload()  # the profile itself says the viewer mutes them (mutedByMe)
    expect(page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")

    page.get_by_role("button", name="Report").click()
    form = page.get_by_role("form", name=f"Report @{other}")
    form.get_by_label("Reason").select_option(label="Impersonation")
    form.get_by_label("Anything the moderators should know (optional)").fill("uses my name")
    form.get_by_role("button", name="Send report").click()
    expect(page.get_by_text(f"the moderators will look at your report of @{other}")).to_be_visible()

    for path in (f"/users/{other}", "/notifications", "/search?q=anything"):
        page.goto(path)
        expect(page.locator(".loading")).to_have_count(0)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width"
    assert console.errors == []


def _serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_profile_notifications_and_search_pages_pass_axe(page: Page):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    page.add_init_script(path=str(AXE))
    username = _sign_up("ax")
    post_as(username, "audited by axe #a11y")
    _log_in(page, username)

    page.goto(f"/users/{username}")
    expect(page.get_by_role("list", name=f"Posts by {username.upper()}")).to_contain_text("audited by axe")
    assert _serious_violations(page) == []
    page.emulate_media(color_scheme="dark")  # the dark palette keeps enough contrast too
    assert _serious_violations(page) == []
    page.emulate_media(color_scheme="light")

    page.goto("/notifications")
    expect(page.get_by_text("No notifications yet.")).to_be_visible()
    assert _serious_violations(page) == []

    page.goto("/search?q=audited")
    expect(page.get_by_role("heading", level=2, name="Trending")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    assert _serious_violations(page) == []
    page.get_by_role("button", name="Products").click()
    expect(page).to_have_url(re.compile(r"/search\?q=audited&type=products$"))
    expect(page.locator(".loading")).to_have_count(0)
    assert _serious_violations(page) == []
