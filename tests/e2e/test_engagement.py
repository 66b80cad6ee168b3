"""Likes, reposts and engagement counts, end to end through Envoy."""

from __future__ import annotations

import pytest

from tests.e2e.edge import error_message, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def _like(http, who, post_id: str):
    return http.post(f"/v1/posts/{post_id}:like", json={}, headers=who.auth)


def _unlike(http, who, post_id: str):
    return http.post(f"/v1/posts/{post_id}:unlike", json={}, headers=who.auth)


def _repost(http, who, post_id: str):
    return http.post(f"/v1/posts/{post_id}:repost", json={}, headers=who.auth)


def _get(http, post_id: str, who=None) -> dict:
    r = http.get(f"/v1/posts/{post_id}", headers=who.auth if who else {})
    assert r.status_code == 200, r.text
    return r.json()


def _counts(body: dict) -> tuple[int, int, int]:
    return body.get("likeCount", 0), body.get("repostCount", 0), body.get("replyCount", 0)


def test_like_is_idempotent_and_counted_per_user(http):
    author, fan, other = sign_up(http, "l"), sign_up(http, "l"), sign_up(http, "l")
    created = post(http, author, "like this")
    for _ in range(3):
        r = _like(http, fan, created["id"])
        assert r.status_code == 200, r.text
        assert r.json()["likeCount"] == 1 and r.json()["likedByMe"] is True
    assert _like(http, other, created["id"]).json()["likeCount"] == 2
    assert _get(http, created["id"], fan)["likedByMe"] is True
    assert _get(http, created["id"], author)["likedByMe"] is False
    anonymous = _get(http, created["id"])
    assert anonymous["likeCount"] == 2 and anonymous.get("likedByMe", False) is False


def test_unlike_is_idempotent_and_takes_the_count_back(http):
    author, fan = sign_up(http, "l"), sign_up(http, "l")
    created = post(http, author, "unlike this")
    _like(http, fan, created["id"]).raise_for_status()
    for _ in range(2):
        r = _unlike(http, fan, created["id"])
        assert r.status_code == 200, r.text
        assert r.json()["likeCount"] == 0 and r.json().get("likedByMe", False) is False
    # Unliking what one never liked changes nothing either.
    assert _unlike(http, author, created["id"]).json().get("likeCount", 0) == 0
    assert _like(http, fan, created["id"]).json()["likeCount"] == 1


def test_likes_show_on_home_timeline_and_author_posts_at_once(http):
    author, reader = sign_up(http, "l"), sign_up(http, "l")
    follow(http, reader, author)
    created = post(http, author, "count me on the timeline")
    assert wait_until(lambda: created["id"] in home_ids(http, reader), timeout=10.0)
    # Read once so the timeline has the post cached, then like: the count and
    # likedByMe must not wait for that cache.
    home_ids(http, reader)
    _like(http, reader, created["id"]).raise_for_status()
    page = http.get("/v1/timelines/home", headers=reader.auth).json()["posts"]
    shown = next(p for p in page if p["id"] == created["id"])
    assert shown["likeCount"] == 1 and shown["likedByMe"] is True
    mine = http.get(f"/v1/users/{author.id}/posts", headers=reader.auth).json()["posts"]
    assert next(p for p in mine if p["id"] == created["id"])["likedByMe"] is True


def test_liking_bad_or_missing_posts(http):
    fan = sign_up(http, "l")
    r = _like(http, fan, "123")
    assert r.status_code == 404 and "123" in error_message(r)
    r = _like(http, fan, "not-a-number")
    assert r.status_code == 400 and "post_id" in error_message(r)
    assert _unlike(http, fan, "123").status_code == 404
    author = sign_up(http, "l")
    created = post(http, author, "no anonymous likes")
    assert http.post(f"/v1/posts/{created['id']}:like", json={}).status_code == 401
    assert _counts(_get(http, created["id"])) == (0, 0, 0)


def test_liking_a_deleted_post_is_404_and_counts_nothing(http):
    author, fan = sign_up(http, "l"), sign_up(http, "l")
    created = post(http, author, "soon gone")
    http.delete(f"/v1/posts/{created['id']}", headers=author.auth).raise_for_status()
    assert _like(http, fan, created["id"]).status_code == 404


def test_repost_is_idempotent_attributed_and_shown_once(http):
    author, reposter = sign_up(http, "r"), sign_up(http, "r")
    reader, reposters_reader = sign_up(http, "r"), sign_up(http, "r")
    follow(http, reader, author)
    follow(http, reader, reposter)
    follow(http, reposters_reader, reposter)
    original = post(http, author, "worth sharing")
    first = _repost(http, reposter, original["id"])
    assert first.status_code == 200, first.text
    repost = first.json()
    assert repost["authorId"] == reposter.id and repost["repostOfId"] == original["id"]
    assert repost["repostOf"]["id"] == original["id"] and repost["repostOf"]["authorId"] == author.id
    assert repost.get("text", "") == ""
    # Again: the same repost, not a second one.
    assert _repost(http, reposter, original["id"]).json()["id"] == repost["id"]
    # Reposting the repost reposts the original.
    assert _repost(http, reposter, repost["id"]).json()["id"] == repost["id"]
    assert wait_until(lambda: _get(http, original["id"]).get("repostCount", 0) == 1, timeout=10.0, interval=0.2)

    def home(who) -> list[dict]:
        return http.get("/v1/timelines/home", params={"pageSize": 50}, headers=who.auth).json()["posts"]

    # Someone following only the reposter gets the repost, attributed to the reposter.
    assert wait_until(lambda: [p["id"] for p in home(reposters_reader)] == [repost["id"]], timeout=10.0)
    assert home(reposters_reader)[0]["author"]["username"] == reposter.username
    # The fanout that delivered it has delivered it to the reader too: the
    # reader, who has the original already, is shown the original once.
    page = home(reader)
    showing = [p for p in page if p["id"] == original["id"] or p.get("repostOfId") == original["id"]]
    assert [p["id"] for p in showing] == [original["id"]]
    posts_of_reposter = http.get(f"/v1/users/{reposter.id}/posts").json()["posts"]
    assert repost["id"] in [p["id"] for p in posts_of_reposter]


def test_deleting_a_repost_takes_it_back_and_allows_a_new_one(http):
    author, reposter = sign_up(http, "r"), sign_up(http, "r")
    original = post(http, author, "repost me twice")
    repost = _repost(http, reposter, original["id"]).json()
    assert wait_until(lambda: _get(http, original["id"]).get("repostCount", 0) == 1, timeout=10.0, interval=0.2)
    http.delete(f"/v1/posts/{repost['id']}", headers=reposter.auth).raise_for_status()
    assert wait_until(lambda: _get(http, original["id"]).get("repostCount", 0) == 0, timeout=10.0, interval=0.2)
    again = _repost(http, reposter, original["id"]).json()
    assert again["id"] != repost["id"]
    assert wait_until(lambda: _get(http, original["id"]).get("repostCount", 0) == 1, timeout=10.0, interval=0.2)


def test_deleted_original_takes_its_reposts_off_timelines(http):
    author, reposter, reader = sign_up(http, "r"), sign_up(http, "r"), sign_up(http, "r")
    follow(http, reader, reposter)
    original = post(http, author, "here today")
    repost = _repost(http, reposter, original["id"]).json()
    assert wait_until(lambda: repost["id"] in home_ids(http, reader), timeout=10.0)
    http.delete(f"/v1/posts/{original['id']}", headers=author.auth).raise_for_status()
    assert wait_until(lambda: repost["id"] not in home_ids(http, reader), timeout=10.0)
    assert http.get(f"/v1/posts/{repost['id']}").status_code == 404
    assert repost["id"] not in [p["id"] for p in http.get(f"/v1/users/{reposter.id}/posts").json()["posts"]]


def test_repost_of_missing_or_deleted_post(http):
    author, reposter = sign_up(http, "r"), sign_up(http, "r")
    assert _repost(http, reposter, "123").status_code == 404
    r = _repost(http, reposter, "x1")
    assert r.status_code == 400 and "post_id" in error_message(r)
    gone = post(http, author, "deleted before the repost")
    http.delete(f"/v1/posts/{gone['id']}", headers=author.auth).raise_for_status()
    r = _repost(http, reposter, gone["id"])
    assert r.status_code == 412, r.text
    assert http.get(f"/v1/users/{reposter.id}/posts").json().get("posts", []) == []
    assert http.post(f"/v1/posts/{gone['id']}:repost", json={}).status_code == 401


def test_create_post_with_repost_of_and_no_text_is_the_same_repost(http):
    author, reposter = sign_up(http, "r"), sign_up(http, "r")
    original = post(http, author, "two doors, one room")
    via_create = http.post("/v1/posts", json={"repostOfId": original["id"]}, headers=reposter.auth)
    assert via_create.status_code == 200, via_create.text
    assert _repost(http, reposter, original["id"]).json()["id"] == via_create.json()["id"]
    # With text it is a quote: a post of its own, not counted as a repost.
    quote = http.post("/v1/posts", json={"text": "so true", "repostOfId": original["id"]}, headers=reposter.auth)
    assert quote.status_code == 200 and quote.json()["repostOf"]["id"] == original["id"]
    assert wait_until(lambda: _get(http, original["id"]).get("repostCount", 0) == 1, timeout=10.0, interval=0.2)


def test_reply_count_follows_replies_and_their_deletion(http):
    author, replier = sign_up(http, "c"), sign_up(http, "c")
    parent = post(http, author, "ask me anything")
    replies = []
    for i in range(2):
        r = http.post("/v1/posts", json={"text": f"answer {i}", "replyToId": parent["id"]}, headers=replier.auth)
        assert r.status_code == 200, r.text
        replies.append(r.json())
    assert wait_until(lambda: _get(http, parent["id"]).get("replyCount", 0) == 2, timeout=10.0, interval=0.2)
    http.delete(f"/v1/posts/{replies[0]['id']}", headers=replier.auth).raise_for_status()
    assert wait_until(lambda: _get(http, parent["id"]).get("replyCount", 0) == 1, timeout=10.0, interval=0.2)


def test_liking_a_repost_likes_the_original(http):
    author, reposter, fan = sign_up(http, "r"), sign_up(http, "r"), sign_up(http, "r")
    original = post(http, author, "like through a repost")
    repost = _repost(http, reposter, original["id"]).json()
    r = _like(http, fan, repost["id"])
    assert r.status_code == 200 and r.json()["postId"] == original["id"]
    assert _get(http, original["id"], fan)["likedByMe"] is True
