"""repostedByMe and :unrepost end to end through Envoy: a repost shows as the
reader's own on the post's page and in their home timeline, and `:unrepost`
(no repost id needed) takes it back, with the repost count."""

from __future__ import annotations

import pytest

from tests.e2e.edge import Account, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

SETTLE_SECONDS = 15.0


def get_post(http, viewer: Account | None, post_id: str) -> dict:
    r = http.get(f"/v1/posts/{post_id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


def flags(p: dict) -> tuple[bool, int]:
    """(repostedByMe, repostCount); proto JSON leaves out false and 0."""
    return p.get("repostedByMe", False), p.get("repostCount", 0)


def home_showing(http, reader: Account, original_id: str) -> list[dict]:
    """The posts the reader's home shows for the original: a pure repost's original, or the post itself."""
    r = http.get("/v1/timelines/home", params={"pageSize": 100}, headers=reader.auth)
    assert r.status_code == 200, r.text
    shown = [p["repostOf"] if p.get("repostOf") and not p.get("text") else p for p in r.json()["posts"]]
    return [p for p in shown if p["id"] == original_id]


def test_a_repost_shows_as_mine_until_unreposted(http):
    author, fan, other = sign_up(http, "rb"), sign_up(http, "rb"), sign_up(http, "rb")
    original = post(http, author, "share this")

    r = http.post(f"/v1/posts/{original['id']}:repost", json={}, headers=fan.auth)
    assert r.status_code == 200, r.text
    repost = r.json()
    assert repost["repostOfId"] == original["id"]

    assert wait_until(lambda: flags(get_post(http, fan, original["id"])) == (True, 1), SETTLE_SECONDS)
    assert flags(get_post(http, other, original["id"])) == (False, 1)
    assert flags(get_post(http, None, original["id"])) == (False, 1)
    # In the reposter's home (their own repost, the original inside it), marked as theirs.
    shown = wait_until(lambda: home_showing(http, fan, original["id"]), SETTLE_SECONDS)
    assert [flags(p) for p in shown] == [(True, 1)]

    r = http.post(f"/v1/posts/{original['id']}:unrepost", json={}, headers=fan.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {}
    assert http.get(f"/v1/posts/{repost['id']}").status_code == 404
    assert wait_until(lambda: flags(get_post(http, fan, original["id"])) == (False, 0), SETTLE_SECONDS)
    assert wait_until(lambda: home_showing(http, fan, original["id"]) == [], SETTLE_SECONDS)

    # Idempotent: again, and on a post never reposted.
    assert http.post(f"/v1/posts/{original['id']}:unrepost", json={}, headers=fan.auth).status_code == 200
    assert http.post(f"/v1/posts/{original['id']}:unrepost", json={}, headers=other.auth).status_code == 200
    assert flags(get_post(http, fan, original["id"])) == (False, 0)


def test_unrepost_needs_a_caller_and_a_valid_id(http):
    fan = sign_up(http, "rb")
    assert http.post("/v1/posts/1:unrepost", json={}).status_code == 401
    r = http.post("/v1/posts/abc:unrepost", json={}, headers=fan.auth)
    assert r.status_code == 400, r.text
    assert "post" in r.json()["message"].lower()
