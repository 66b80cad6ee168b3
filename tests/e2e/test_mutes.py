"""Mutes, end to end through Envoy: the list, end times, what the muter
stops seeing, and that nothing changes for the muted user."""

from __future__ import annotations

import datetime
import time

import pytest

from tests.e2e.edge import Account, error_message, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def _rfc3339(seconds_from_now: float) -> str:
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mute(http, who: Account, whom: Account, expires_at: str | None = None) -> dict:
    body = {"expiresAt": expires_at} if expires_at else {}
    r = http.put(f"/v1/users/me/mutes/{whom.id}", json=body, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()["mute"]


def muted_ids(http, who: Account, page_size: int = 100) -> list[str]:
    ids, token = [], ""
    while True:
        r = http.get("/v1/users/me/mutes", params={"pageSize": page_size, "pageToken": token}, headers=who.auth)
        assert r.status_code == 200, r.text
        ids += [m["user"]["id"] for m in r.json().get("mutes", [])]
        token = r.json().get("nextPageToken", "")
        if not token:
            return ids


def test_mute_is_idempotent_listed_paged_and_lifted(http):
    me = sign_up(http, "m")
    others = [sign_up(http, "x") for _ in range(3)]
    for other in others:
        mute(http, me, other)
    again = mute(http, me, others[0], _rfc3339(3600))
    assert again["user"]["id"] == others[0].id and again["expiresAt"]
    assert sorted(muted_ids(http, me, page_size=2)) == sorted(o.id for o in others)

    r = http.delete(f"/v1/users/me/mutes/{others[0].id}", headers=me.auth)
    assert r.status_code == 200 and r.json().get("removed") is True
    r = http.delete(f"/v1/users/me/mutes/{others[0].id}", headers=me.auth)
    assert r.status_code == 200 and r.json().get("removed", False) is False
    assert others[0].id not in muted_ids(http, me)


def test_bad_mutes_are_refused(http):
    me, other = sign_up(http, "m"), sign_up(http, "x")
    r = http.put(f"/v1/users/me/mutes/{me.id}", json={}, headers=me.auth)
    assert r.status_code == 400 and ("user_id" in error_message(r) or "userId" in error_message(r))
    assert http.put("/v1/users/me/mutes/999999999999", json={}, headers=me.auth).status_code == 404
    r = http.put(f"/v1/users/me/mutes/{other.id}", json={"expiresAt": "yesterday"}, headers=me.auth)
    assert r.status_code == 400
    assert http.get("/v1/users/me/mutes").status_code == 401


def test_a_mute_ending_in_the_past_is_refused_and_does_nothing(http):
    muter, muted = sign_up(http, "m"), sign_up(http, "x")
    follow(http, muter, muted)
    theirs = post(http, muted, "still shown")
    assert wait_until(lambda: theirs["id"] in home_ids(http, muter), timeout=3.0)
    r = http.put(f"/v1/users/me/mutes/{muted.id}", json={"expiresAt": _rfc3339(-60)}, headers=muter.auth)
    assert r.status_code == 400
    assert "expires" in error_message(r).lower()
    assert muted.id not in muted_ids(http, muter)
    assert theirs["id"] in home_ids(http, muter)


def test_a_mute_hides_home_posts_and_reposts_until_it_ends(http):
    muter, muted, friend = sign_up(http, "m"), sign_up(http, "x"), sign_up(http, "f")
    follow(http, muter, muted)
    follow(http, muter, friend)
    theirs = post(http, muted, "muted soon")
    r = http.post(f"/v1/posts/{theirs['id']}:repost", headers=friend.auth)
    assert r.status_code == 200, r.text
    repost_id = r.json()["id"]
    kept = post(http, friend, "not muted")
    assert wait_until(lambda: kept["id"] in home_ids(http, muter), timeout=3.0)

    mute(http, muter, muted, _rfc3339(2.5))
    shown = home_ids(http, muter)
    assert theirs["id"] not in shown and repost_id not in shown and kept["id"] in shown
    # The follow stands (a mute changes nothing else) and the mute ends on time.
    following = http.get(f"/v1/users/{muter.id}/following", params={"pageSize": 100}).json()
    assert muted.id in [u["id"] for u in following.get("users", [])]
    time.sleep(2.6)
    # Shown again once, at its oldest appearance: the post itself, not the
    # friend's later repost of it (tests/e2e/test_reposts_once.py).
    shown = home_ids(http, muter)
    assert theirs["id"] in shown and repost_id not in shown
    assert muted.id not in muted_ids(http, muter)


def test_the_muted_user_is_not_told_and_their_view_is_unchanged(http):
    muter, muted = sign_up(http, "m"), sign_up(http, "x")
    follow(http, muter, muted)
    follow(http, muted, muter)
    mine = post(http, muter, "the muted user still sees this")
    assert wait_until(lambda: mine["id"] in home_ids(http, muted), timeout=3.0)
    before = http.get("/v1/notifications", params={"pageSize": 50}, headers=muted.auth).json()
    mute(http, muter, muted)
    assert mine["id"] in home_ids(http, muted)
    assert http.get(f"/v1/posts/{mine['id']}", headers=muted.auth).status_code == 200
    assert http.get(f"/v1/users/{muter.id}/posts", headers=muted.auth).status_code == 200
    after = http.get("/v1/notifications", params={"pageSize": 50}, headers=muted.auth).json()
    assert [n["id"] for n in after.get("notifications", [])] == [n["id"] for n in before.get("notifications", [])]
    # They can still follow, and the muter is not listed as blocking them.
    r = http.put(f"/v1/users/me/following/{muter.id}", headers=muted.auth)
    assert r.status_code == 200


def test_muted_actors_create_no_notifications_and_the_feed_leaves_them_out(http):
    muter, muted, other = sign_up(http, "m"), sign_up(http, "x"), sign_up(http, "o")
    follow(http, muter, muted)
    theirs = post(http, muted, "in the feed before the mute")
    assert wait_until(lambda: theirs["id"] in home_ids(http, muter), timeout=3.0)

    def feed_ids() -> list[str]:
        r = http.get("/v1/feed", params={"pageSize": 50}, headers=muter.auth)
        assert r.status_code == 200, r.text
        return [i["post"]["id"] for i in r.json().get("items", []) if "post" in i]

    assert theirs["id"] in feed_ids()
    mine = post(http, muter, "likes wanted")
    mute(http, muter, muted)
    assert theirs["id"] not in feed_ids()

    http.post(f"/v1/posts/{mine['id']}:like", headers=muted.auth)
    http.post(f"/v1/posts/{mine['id']}:like", headers=other.auth)

    def actors() -> set[str]:
        r = http.get("/v1/notifications", params={"pageSize": 50}, headers=muter.auth)
        return {a for n in r.json().get("notifications", []) for a in n.get("actorIds", [])}

    assert wait_until(lambda: other.id in actors(), timeout=3.0)
    assert muted.id not in actors()


def test_thread_context_leaves_muted_replies_out(http):
    muter, muted, other = sign_up(http, "m"), sign_up(http, "x"), sign_up(http, "o")
    root = post(http, other, "a thread")
    ids = {}
    for name, author in (("muted", muted), ("other", other)):
        r = http.post("/v1/posts", json={"text": f"by {name}", "replyToId": root["id"]}, headers=author.auth)
        assert r.status_code == 200, r.text
        ids[name] = r.json()["id"]
    mute(http, muter, muted)
    r = http.get(f"/v1/posts/{root['id']}/context", headers=muter.auth)
    assert r.status_code == 200, r.text
    replies = [p["id"] for p in r.json().get("replies", [])]
    assert ids["other"] in replies and ids["muted"] not in replies
    # The muted user's own view of the thread is unchanged.
    theirs = http.get(f"/v1/posts/{root['id']}/context", headers=muted.auth).json()
    assert ids["muted"] in [p["id"] for p in theirs.get("replies", [])]


def test_a_muted_authors_new_posts_are_not_pushed_live(http, edge_url):
    from tests.e2e.test_watch import Watcher

    muter, muted, friend = sign_up(http, "m"), sign_up(http, "x"), sign_up(http, "f")
    follow(http, muter, muted)
    follow(http, muter, friend)
    mute(http, muter, muted)
    watcher = Watcher(edge_url, muter.token)
    try:
        hidden, shown = post(http, muted, "not pushed"), post(http, friend, "pushed")
        assert watcher.next_ids(1, timeout=5.0) == [shown["id"]]
        assert hidden["id"] not in watcher.next_ids(1, timeout=1.0)
    finally:
        watcher.close()


def test_mentions_by_muted_users_do_not_notify(http):
    muter, muted, other = sign_up(http, "m"), sign_up(http, "x"), sign_up(http, "o")
    mute(http, muter, muted)
    post(http, muted, f"hello @{muter.username}")
    post(http, other, f"hi @{muter.username}")

    def actors() -> set[str]:
        r = http.get("/v1/notifications", params={"pageSize": 50}, headers=muter.auth)
        assert r.status_code == 200, r.text
        return {a for n in r.json().get("notifications", []) for a in n.get("actorIds", [])}

    assert wait_until(lambda: other.id in actors(), timeout=3.0)
    assert muted.id not in actors()
