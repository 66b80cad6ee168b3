"""Account deletion across the mesh, end to end through Envoy: what a deleted
account leaves behind in other people's views (the issue's cross-effects)."""

from __future__ import annotations

import uuid

import pytest

from services.kit.peers import accounts
from tests.e2e.edge import PASSWORD, error_message, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

# Deletion is applied by consumers of identity.events.v1 in every service.
SETTLE_SECONDS = 30.0
GONE_EVERYWHERE_SECONDS = accounts.SETTLE_SECONDS + 2.0


def delete_account(http, account, password: str = PASSWORD):
    return http.post("/v1/users/me:delete", json={"password": password}, headers=account.auth)


def counts(http, post_id: str) -> dict:
    r = http.get(f"/v1/posts/{post_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    return {k: body.get(k, 0) for k in ("likeCount", "repostCount", "replyCount", "quoteCount")}


def search_ids(http, query: str) -> list[str]:
    r = http.get("/v1/search/posts", params={"q": query, "pageSize": 50})
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json().get("posts", [])]


def test_a_deleted_accounts_posts_reposts_and_likes_vanish_everywhere(http):
    leaving, follower, other = sign_up(http, "del"), sign_up(http, "fol"), sign_up(http, "oth")
    follow(http, follower, leaving)
    word = f"farewell{uuid.uuid4().hex[:10]}"
    own = post(http, leaving, f"{word} my last words")
    theirs = post(http, other, "something worth liking")
    assert http.post(f"/v1/posts/{theirs['id']}:like", headers=leaving.auth).status_code == 200
    repost = http.post(f"/v1/posts/{theirs['id']}:repost", headers=leaving.auth)
    assert repost.status_code == 200, repost.text
    quote = http.post(
        "/v1/posts", json={"text": f"{word} quoting", "repostOfId": theirs["id"]}, headers=leaving.auth
    ).json()
    reply = http.post("/v1/posts", json={"text": "a reply", "replyToId": theirs["id"]}, headers=leaving.auth).json()

    assert wait_until(lambda: own["id"] in home_ids(http, follower), SETTLE_SECONDS)
    assert wait_until(lambda: own["id"] in search_ids(http, word), SETTLE_SECONDS)
    assert wait_until(
        lambda: counts(http, theirs["id"]) == {"likeCount": 1, "repostCount": 1, "replyCount": 1, "quoteCount": 1},
        SETTLE_SECONDS,
    ), counts(http, theirs["id"])

    r = delete_account(http, leaving)
    assert r.status_code == 200, r.text

    # The profile is gone at once; the posts as soon as every posts replica's
    # copy of the gone accounts has the account (a couple of seconds at most).
    assert http.get(f"/v1/users/{leaving.id}").status_code == 404
    for gone in (own, quote):
        assert wait_until(lambda: http.get(f"/v1/posts/{gone['id']}").status_code == 404, GONE_EVERYWHERE_SECONDS)
    # Then every copy elsewhere: followers' home timelines, search, counts.
    gone_from_home = {own["id"], repost.json()["id"], quote["id"]}
    assert wait_until(lambda: not gone_from_home & set(home_ids(http, follower)), SETTLE_SECONDS), home_ids(
        http, follower
    )
    assert wait_until(lambda: search_ids(http, word) == [], SETTLE_SECONDS), search_ids(http, word)
    assert wait_until(
        lambda: counts(http, theirs["id"]) == {"likeCount": 0, "repostCount": 0, "replyCount": 0, "quoteCount": 0},
        SETTLE_SECONDS,
    ), counts(http, theirs["id"])
    replies = http.get(f"/v1/posts/{theirs['id']}/replies").json().get("posts", [])
    assert reply["id"] not in [p["id"] for p in replies]


def test_a_deleted_account_cannot_log_in_and_its_username_is_held(http):
    leaving = sign_up(http, "del")
    assert delete_account(http, leaving, password="not the password").status_code in (400, 401, 403)
    assert http.post("/v1/sessions", json={"username": leaving.username, "password": PASSWORD}).status_code == 200

    r = delete_account(http, leaving)
    assert r.status_code == 200, r.text

    login = http.post("/v1/sessions", json={"username": leaving.username, "password": PASSWORD})
    assert login.status_code in (401, 403, 404), login.text
    refresh = http.post("/v1/sessions:refresh", json={"refreshToken": leaving.refresh_token})
    assert refresh.status_code in (401, 403), refresh.text
    taken = http.post("/v1/accounts", json={"username": leaving.username, "password": PASSWORD})
    assert taken.status_code == 409, taken.text
    assert "username" in error_message(taken)
    # Its still-unexpired access token can no longer write.
    assert http.post("/v1/posts", json={"text": "still here?"}, headers=leaving.auth).status_code in (401, 403)
