"""Quote posts through Envoy: a post with repostOfId and text of its own
notifies the quoted author ("alice quoted your post"), counts on the
original (quoteCount, apart from reposts), and a deleted quote takes both back."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.edge import Account, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 10.0


def quote(http: httpx.Client, author: Account, original_id: str, text: str) -> dict:
    r = http.post("/v1/posts", json={"text": text, "repostOfId": original_id}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()


def counts_of(http: httpx.Client, post_id: str) -> tuple[int, int]:
    """(quoteCount, repostCount) of a post as anyone reads it."""
    r = http.get(f"/v1/posts/{post_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    return body.get("quoteCount", 0), body.get("repostCount", 0)


def quote_notices(http: httpx.Client, who: Account) -> list[dict]:
    r = http.get("/v1/notifications", params={"pageSize": 50}, headers=who.auth)
    assert r.status_code == 200, r.text
    return [n for n in r.json().get("notifications", []) if n["kind"] == "NOTIFICATION_KIND_QUOTE"]


def test_a_quote_notifies_the_quoted_author_counts_on_the_original_and_a_delete_takes_both_back(http):
    author, quoter = sign_up(http, "qa"), sign_up(http, "qq")
    original = post(http, author, "worth quoting")
    mine = quote(http, quoter, original["id"], "this, exactly")
    assert mine["repostOfId"] == original["id"]

    notices = wait_until(lambda: quote_notices(http, author), timeout=DEADLINE)
    assert notices, "the quoted author was never notified"
    (notice,) = notices
    assert notice["postId"] == mine["id"] and notice["actorIds"] == [quoter.id]
    assert notice["text"] == f"{quoter.username.upper()} quoted your post"
    assert wait_until(lambda: counts_of(http, original["id"]) == (1, 0), timeout=DEADLINE)

    r = http.delete(f"/v1/posts/{mine['id']}", headers=quoter.auth)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: counts_of(http, original["id"]) == (0, 0), timeout=DEADLINE)
    assert wait_until(lambda: not quote_notices(http, author), timeout=DEADLINE), "the notice was not withdrawn"


def test_each_quote_is_its_own_notice_and_a_pure_repost_is_no_quote(http):
    author, first, second = sign_up(http, "qa"), sign_up(http, "q1"), sign_up(http, "q2")
    original = post(http, author, "two takes")
    quotes = [quote(http, first, original["id"], "take one"), quote(http, second, original["id"], "take two")]
    r = http.post(f"/v1/posts/{original['id']}:repost", json={}, headers=second.auth)
    assert r.status_code == 200, r.text

    assert wait_until(lambda: len(quote_notices(http, author)) == 2, timeout=DEADLINE)
    assert {n["postId"] for n in quote_notices(http, author)} == {q["id"] for q in quotes}
    assert wait_until(lambda: counts_of(http, original["id"]) == (2, 1), timeout=DEADLINE)
    # The quote embeds the original with its counts too.
    r = http.get(f"/v1/posts/{quotes[0]['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["repostOf"].get("quoteCount", 0) == 2


def test_quoting_your_own_post_notifies_nobody_but_counts(http):
    author, other = sign_up(http, "qa"), sign_up(http, "qo")
    original = post(http, author, "me, again")
    quote(http, author, original["id"], "adding to myself")
    assert wait_until(lambda: counts_of(http, original["id"]) == (1, 0), timeout=DEADLINE)
    # A later quote by someone else is the only notice.
    quote(http, other, original["id"], "and me")
    assert wait_until(lambda: len(quote_notices(http, author)) == 1, timeout=DEADLINE)
    assert quote_notices(http, author)[0]["actorIds"] == [other.id]


def test_deleting_a_quote_keeps_its_authors_repost_of_the_same_post(http):
    author, fan = sign_up(http, "qa"), sign_up(http, "qf")
    original = post(http, author, "repost and quote me")
    r = http.post(f"/v1/posts/{original['id']}:repost", json={}, headers=fan.auth)
    assert r.status_code == 200, r.text
    mine = quote(http, fan, original["id"], "and a word on it")

    def reposters() -> list[list[str]]:
        r = http.get("/v1/notifications", params={"pageSize": 50}, headers=author.auth)
        assert r.status_code == 200, r.text
        return [n["actorIds"] for n in r.json()["notifications"] if n["kind"] == "NOTIFICATION_KIND_REPOST"]

    assert wait_until(lambda: quote_notices(http, author) and reposters() == [[fan.id]], timeout=DEADLINE)
    r = http.delete(f"/v1/posts/{mine['id']}", headers=fan.auth)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: not quote_notices(http, author), timeout=DEADLINE)
    assert wait_until(lambda: counts_of(http, original["id"]) == (0, 1), timeout=DEADLINE)
    assert reposters() == [[fan.id]]


def test_a_muted_quoter_notifies_nobody_but_still_counts(http):
    author, muted, other = sign_up(http, "qa"), sign_up(http, "qm"), sign_up(http, "qo")
    original = post(http, author, "quiet please")
    r = http.put(f"/v1/users/me/mutes/{muted.id}", json={}, headers=author.auth)
    assert r.status_code == 200, r.text
    quote(http, muted, original["id"], "you cannot hear this")
    quote(http, other, original["id"], "but this")
    assert wait_until(lambda: quote_notices(http, author), timeout=DEADLINE)
    assert wait_until(lambda: counts_of(http, original["id"]) == (2, 0), timeout=DEADLINE)
    assert [n["actorIds"] for n in quote_notices(http, author)] == [[other.id]]
