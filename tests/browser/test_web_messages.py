"""Direct conversations in the browser, two people in two browser contexts: one
starts a conversation from the other's profile and sends a message with a
product card picked from the catalog; it arrives live on the other's open
conversation page, whose card leads to the product; the conversation list
shows a later message unread, then read. Also: a retried send after a lost
answer is stored once, a deleted account's messages and the 412 for writing
to it, axe on the list and a conversation, and phone width."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.accounts import PASSWORD, Person, log_in
from tests.browser.conftest import Console, _context, _screenshot_on_failure

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
LIVE_WITHIN_MS = 2_000
SEARCH_INDEXED_WITHIN_S = 15


@pytest.fixture
def two_people(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[tuple[Page, Page]]:
    contexts = [_context(browser, console), _context(browser, console)]
    pages = [context.new_page() for context in contexts]
    yield pages[0], pages[1]
    for page, context in zip(pages, contexts, strict=True):
        _screenshot_on_failure(request, page)
        context.close()


def listed_product(http: httpx.Client, seller: Person) -> tuple[str, str]:
    """A product the products search already finds: (id, title)."""
    title = f"Kettle {secrets.token_hex(4)}"
    body = {"title": title, "priceMinor": "3450", "currency": "USD", "stock": "4"}
    r = http.post("/v1/products", json=body, headers=seller.auth)
    assert r.status_code == 200, r.text
    product_id = r.json()["id"]
    deadline = time.monotonic() + SEARCH_INDEXED_WITHIN_S
    while product_id not in {p["id"] for p in http.get("/v1/search/products", params={"q": title}).json()["products"]}:
        assert time.monotonic() < deadline, f"the products search does not find {title!r}"
        time.sleep(0.2)
    return product_id, title


def conversation_between(http: httpx.Client, a: Person, b: Person) -> str:
    r = http.post("/v1/conversations", json={"participantIds": [b.id]}, headers=a.auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def messages_in(http: httpx.Client, person: Person, conversation_id: str) -> list[dict]:
    r = http.get(f"/v1/conversations/{conversation_id}/messages", headers=person.auth)
    assert r.status_code == 200, r.text
    return r.json().get("messages", [])


def attach_product(page: Page, title: str) -> None:
    page.get_by_role("button", name="Attach a product").click()
    page.get_by_label("Product name").fill(title)
    page.get_by_role("button", name="Find", exact=True).click()
    page.get_by_role("list", name="Products found").get_by_role("button", name=f"Attach {title}").click()
    expect(page.get_by_role("list", name="Products attached")).to_contain_text(title)


def conversation_row(page: Page, name: str):
    return page.get_by_role("list", name="Conversations").get_by_role("listitem").filter(has_text=name)


def test_a_message_with_a_product_card_arrives_live_and_is_read(two_people, http, console):
    sender_page, reader_page = two_people
    seller = Person(http, "ms", role="SELLER")
    product_id, title = listed_product(http, seller)
    sender, reader = Person(http, "ma"), Person(http, "mb")
    log_in(sender_page, sender.username, live=True)
    log_in(reader_page, reader.username, live=True)

    # The sender starts the conversation from the reader's profile.
    sender_page.goto(f"/users/{reader.username}")
    sender_page.get_by_role("button", name="Message", exact=True).click()
    expect(sender_page).to_have_url(re.compile(r"/messages/\d+$"))
    expect(sender_page.get_by_role("heading", level=1, name=f"Conversation with {reader.name}")).to_be_visible()
    conversation_id = sender_page.url.rsplit("/", 1)[1]
    expect(sender_page.get_by_text("No messages yet.")).to_be_visible()

    # The reader opens it from their list, before anything is sent.
    reader_page.get_by_role("navigation", name="Account").get_by_role("link", name="Messages").click()
    expect(reader_page.get_by_role("heading", level=1, name="Messages")).to_be_visible()
    conversation_row(reader_page, sender.name).get_by_role("link").click()
    expect(reader_page.get_by_role("heading", level=1, name=f"Conversation with {sender.name}")).to_be_visible()
    assert reader_page.url.endswith(f"/messages/{conversation_id}")

    # The sender writes, picks the product in the catalog and sends (a double click sends once).
    sender_page.get_by_label("Message", exact=True).fill("this one is lovely")
    attach_product(sender_page, title)
    sender_page.get_by_role("button", name="Send", exact=True).dblclick()
    sent_at = time.monotonic()

    # It arrives live on the reader's open page, product card included.
    received = (
        reader_page.get_by_role("list", name="Messages").locator(":scope > li").filter(has_text="this one is lovely")
    )
    expect(received).to_be_visible(timeout=LIVE_WITHIN_MS)
    live_ms = (time.monotonic() - sent_at) * 1000
    assert live_ms <= LIVE_WITHIN_MS, f"arrived after {live_ms:.0f} ms"
    expect(received).to_contain_text(sender.name)
    card = received.get_by_role("link", name=re.compile(re.escape(title)))
    expect(card).to_contain_text("$34.50")
    expect(card).to_have_attribute("href", f"/products/{product_id}")

    # Sent once, shown once on the sender's page (the live echo is the same message).
    sent = sender_page.get_by_role("list", name="Messages").locator(":scope > li")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text("You")
    expect(sender_page.get_by_label("Message", exact=True)).to_have_value("")
    assert len(messages_in(http, sender, conversation_id)) == 1

    # The reader follows the card to the product's page.
    card.click()
    expect(reader_page.get_by_role("heading", level=1, name=title)).to_be_visible()

    # A second message while the reader is away: their list shows it unread, then read once opened.
    sender_page.get_by_label("Message", exact=True).fill("still in stock?")
    sender_page.get_by_role("button", name="Send", exact=True).click()
    expect(sent).to_have_count(2)
    reader_page.get_by_role("navigation", name="Account").get_by_role("link", name="Messages").click()
    row = conversation_row(reader_page, sender.name)
    expect(row).to_contain_text("1 unread")
    expect(row).to_contain_text(f"{sender.name}: still in stock?")
    with reader_page.expect_response(lambda r: r.url.endswith(":markRead") and r.ok):
        row.get_by_role("link").click()
    expect(reader_page.get_by_role("list", name="Messages").locator(":scope > li")).to_have_count(2)
    reader_page.get_by_role("link", name="All conversations").click()
    expect(row).to_contain_text("still in stock?")
    expect(row).not_to_contain_text("unread")

    # With the list open, the next message marks the row unread live.
    sender_page.get_by_label("Message", exact=True).fill("I can ship today")
    sender_page.get_by_role("button", name="Send", exact=True).click()
    expect(row).to_contain_text(f"{sender.name}: I can ship today", timeout=LIVE_WITHIN_MS)
    expect(row).to_contain_text("1 unread")
    assert console.errors == []


def test_a_send_retried_after_a_lost_answer_is_stored_once(page: Page, http):
    sender, reader = Person(http, "ma"), Person(http, "mb")
    conversation_id = conversation_between(http, sender, reader)
    log_in(page, sender.username, live=True)
    page.goto(f"/messages/{conversation_id}")
    expect(page.get_by_role("heading", level=1, name=f"Conversation with {reader.name}")).to_be_visible()

    keys: list[str] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.post_data_json["clientMessageId"])
        if len(keys) == 1:
            route.fetch()  # the server stores it; the browser never hears back
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(f"**/v1/conversations/{conversation_id}/messages", lose_the_first_answer)
    page.get_by_label("Message", exact=True).fill("only once, please")
    send = page.get_by_role("button", name="Send", exact=True)
    send.click()
    expect(page.get_by_role("alert")).to_contain_text("Cannot reach Aviary")
    send.click()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    assert len(keys) == 2 and keys[0] == keys[1], keys
    expect(page.get_by_role("list", name="Messages").locator(":scope > li")).to_have_count(1)
    assert [m["text"] for m in messages_in(http, sender, conversation_id)] == ["only once, please"]

    # The next message gets a key of its own.
    page.get_by_label("Message", exact=True).fill("and a second")
    send.click()
    expect(page.get_by_role("list", name="Messages").locator(":scope > li")).to_have_count(2)
    assert len(keys) == 3 and keys[2] != keys[0], keys


def test_a_deleted_account_shows_as_such_and_takes_no_messages(page: Page, http):
    writer, leaver = Person(http, "ma"), Person(http, "mb")
    conversation_id = conversation_between(http, writer, leaver)
    r = http.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"text": "bye for now", "clientMessageId": "k1"},
        headers=leaver.auth,
    )
    assert r.status_code == 200, r.text
    r = http.post("/v1/users/me:delete", json={"password": PASSWORD}, headers=leaver.auth)
    assert r.status_code == 200, r.text
    # The service caches senders for a few seconds; wait until it names the deleted account.
    deadline = time.monotonic() + 30
    while messages_in(http, writer, conversation_id)[0].get("sender", {}).get("displayName") != "Deleted account":
        assert time.monotonic() < deadline, "the sender is not shown as deleted after 30 s"
        time.sleep(0.5)

    log_in(page, writer.username, live=True)
    page.goto(f"/messages/{conversation_id}")
    message = page.get_by_role("list", name="Messages").locator(":scope > li").filter(has_text="bye for now")
    expect(message).to_contain_text("Deleted account")
    expect(message.get_by_role("link")).to_have_count(0)  # no profile to link to
    page.get_by_label("Message", exact=True).fill("are you there?")
    with page.expect_response(lambda r: r.url.endswith("/messages") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send", exact=True).click()
    assert answer.value.status == 412
    expect(page.get_by_role("alert")).to_contain_text("deleted their account")
    expect(page.get_by_label("Message", exact=True)).to_have_value("are you there?")


def test_messaging_someone_who_blocked_you_shows_the_refusal(page: Page, http):
    writer, blocker = Person(http, "ma"), Person(http, "mb")
    r = http.put(f"/v1/users/me/blocks/{writer.id}", headers=blocker.auth)
    assert r.status_code == 200, r.text
    log_in(page, writer.username, live=True)
    page.goto(f"/users/{blocker.username}")
    # Loaded first: the refused posts put an alert above the card, moving its buttons.
    expect(page.locator(".loading")).to_have_count(0)
    with page.expect_response(lambda r: r.url.endswith("/v1/conversations")) as answer:
        page.get_by_role("button", name="Message", exact=True).click()
    assert answer.value.status == 403
    expect(page.get_by_role("alert").filter(has_text="blocks the other")).to_be_visible()
    assert page.url.endswith(f"/users/{blocker.username}")


def test_leaving_a_conversation_takes_it_off_the_list(page: Page, http):
    me, other = Person(http, "ma"), Person(http, "mb")
    conversation_id = conversation_between(http, me, other)
    log_in(page, me.username, live=True)
    # Notifications link to /conversations/{id}: the app takes it to the conversation's page.
    page.goto(f"/conversations/{conversation_id}")
    expect(page).to_have_url(re.compile(rf"/messages/{conversation_id}$"))
    expect(page.get_by_role("heading", level=1, name=f"Conversation with {other.name}")).to_be_visible()
    page.get_by_role("link", name="All conversations").click()
    expect(conversation_row(page, other.name)).to_contain_text("No messages yet.")
    conversation_row(page, other.name).get_by_role("link").click()
    page.get_by_role("button", name="Leave conversation").click()
    page.get_by_role("group", name="Confirm leaving").get_by_role("button", name="Leave", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Messages")).to_be_visible()
    expect(page.get_by_text("No conversations yet.")).to_be_visible()
    r = http.get(f"/v1/conversations/{conversation_id}/messages", headers=me.auth)
    assert r.status_code == 404, r.text


def serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_axe_finds_nothing_serious_on_the_conversation_pages(page: Page, http):
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    page.add_init_script(path=str(AXE))
    seller = Person(http, "ms", role="SELLER")
    product_id, title = listed_product(http, seller)
    me, other = Person(http, "ma"), Person(http, "mb")
    conversation_id = conversation_between(http, me, other)
    body = {"text": "have a look", "productIds": [product_id], "clientMessageId": "k1"}
    r = http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=other.auth)
    assert r.status_code == 200, r.text
    log_in(page, me.username, live=True)

    page.goto("/messages")
    expect(conversation_row(page, other.name)).to_contain_text("1 unread")
    assert serious_violations(page) == []

    page.goto(f"/messages/{conversation_id}")
    expect(page.get_by_role("link", name=re.compile(re.escape(title)))).to_be_visible()
    attach_product(page, title)
    assert serious_violations(page) == []


def test_the_conversation_pages_fit_a_phone(phone_page: Page, http, console):
    page = phone_page
    seller = Person(http, "ms", role="SELLER")
    product_id, title = listed_product(http, seller)
    me, other = Person(http, "ma"), Person(http, "mb")
    conversation_id = conversation_between(http, me, other)
    body = {"text": "a long word " + "w" * 120, "productIds": [product_id], "clientMessageId": "k1"}
    r = http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=other.auth)
    assert r.status_code == 200, r.text
    log_in(page, me.username, live=True)
    for path, ready in (
        ("/messages", lambda: expect(conversation_row(page, other.name)).to_be_visible()),
        (f"/messages/{conversation_id}", lambda: attach_product(page, title)),
    ):
        page.goto(path)
        ready()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width"
    assert console.errors == []
