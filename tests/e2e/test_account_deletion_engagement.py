"""Account deletion through Envoy, as engagement and notifications see it: a
deleted account's likes vanish from the counts, its quotes from quoteCount,
and the notices it acted in are withdrawn (the others' stay)."""

from __future__ import annotations

import pytest

from tests.e2e.edge import PASSWORD, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 15.0


def shown(http, post_id: str, viewer=None) -> dict:
    r = http.get(f"/v1/posts/{post_id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


def like(http, who, post_id: str) -> None:
    r = http.post(f"/v1/posts/{post_id}:like", json={}, headers=who.auth)
    assert r.status_code == 200, r.text


def notices(http, who) -> list[dict]:
    r = http.get("/v1/notifications", params={"pageSize": 50}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json().get("notifications", [])


def test_a_deleted_accounts_likes_and_quotes_vanish_from_counts_and_its_notices_are_withdrawn(http):
    author, leaver, stayer = sign_up(http, "da"), sign_up(http, "dl"), sign_up(http, "ds")
    first, second = post(http, author, "like me"), post(http, author, "me too")
    for target in (first, second):
        like(http, leaver, target["id"])
    like(http, stayer, first["id"])
    r = http.post("/v1/posts", json={"text": "quoting", "repostOfId": second["id"]}, headers=leaver.auth)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: shown(http, second["id"]).get("quoteCount", 0) == 1, timeout=DEADLINE)
    assert wait_until(
        lambda: any(n["kind"] == "NOTIFICATION_KIND_LIKE" and n.get("actorCount") == 2 for n in notices(http, author)),
        timeout=DEADLINE,
    )
    assert shown(http, first["id"])["likeCount"] == 2

    r = http.post("/v1/users/me:delete", json={"password": PASSWORD}, headers=leaver.auth)
    assert r.status_code == 200, r.text

    def counts() -> tuple[int, int, int]:
        a, b = shown(http, first["id"]), shown(http, second["id"])
        return a.get("likeCount", 0), b.get("likeCount", 0), b.get("quoteCount", 0)

    assert wait_until(lambda: counts() == (1, 0, 0), timeout=DEADLINE), counts()
    assert shown(http, first["id"], viewer=stayer).get("likedByMe")
    # The like group names only the one who stayed; the leaver's other notices are gone.
    assert wait_until(
        lambda: all(leaver.id not in n.get("actorIds", []) for n in notices(http, author)), timeout=DEADLINE
    )
    likes = [n for n in notices(http, author) if n["kind"] == "NOTIFICATION_KIND_LIKE"]
    assert [n["actorIds"] for n in likes] == [[stayer.id]]
    assert not [n for n in notices(http, author) if n["kind"] == "NOTIFICATION_KIND_QUOTE"]
