"""Bookmarks, end to end through Envoy: private to their user, idempotent,
paged most recently bookmarked first, and a deleted post drops out."""

from __future__ import annotations

import pytest

from tests.e2e.edge import Account, error_message, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def bookmark(http, who: Account, post_id: str) -> dict:
    r = http.put(f"/v1/users/me/bookmarks/{post_id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def unbookmark(http, who: Account, post_id: str) -> None:
    r = http.delete(f"/v1/users/me/bookmarks/{post_id}", headers=who.auth)
    assert r.status_code == 200, r.text


def bookmarked_pages(http, who: Account, page_size: int = 100) -> list[list[str]]:
    """Every page of the caller's bookmarks, as post ids."""
    pages, token = [], ""
    for _ in range(100):
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        r = http.get("/v1/users/me/bookmarks", params=params, headers=who.auth)
        assert r.status_code == 200, r.text
        pages.append([p["id"] for p in r.json()["posts"]])
        token = r.json()["nextPageToken"]
        if not token:
            return pages
    raise AssertionError("paging never ended")


def bookmarked(http, who: Account, page_size: int = 100) -> list[str]:
    return [post_id for page in bookmarked_pages(http, who, page_size) for post_id in page]


def test_bookmark_and_unbookmark_are_idempotent(http):
    me, author = sign_up(http, "b"), sign_up(http, "b")
    saved = post(http, author, "worth keeping")
    first = bookmark(http, me, saved["id"])
    again = bookmark(http, me, saved["id"])
    assert first["postId"] == saved["id"]
    # Bookmarking again keeps the first bookmark (and its time), not a second row.
    assert again["bookmarkTime"] == first["bookmarkTime"]
    assert bookmarked(http, me) == [saved["id"]]

    unbookmark(http, me, saved["id"])
    unbookmark(http, me, saved["id"])
    assert bookmarked(http, me) == []
    # A bookmark removed and made again is new: it comes back.
    bookmark(http, me, saved["id"])
    assert bookmarked(http, me) == [saved["id"]]


def test_bookmarks_are_hydrated_posts(http):
    me, author = sign_up(http, "b"), sign_up(http, "b")
    saved = post(http, author, "with an author")
    r = http.post(f"/v1/posts/{saved['id']}:like", json={}, headers=me.auth)
    assert r.status_code == 200, r.text
    bookmark(http, me, saved["id"])
    r = http.get("/v1/users/me/bookmarks", headers=me.auth)
    assert r.status_code == 200, r.text
    (item,) = r.json()["posts"]
    assert item["text"] == "with an author"
    assert item["author"]["id"] == author.id and item["author"]["username"] == author.username

    # The engagement overlay, as on every other list of posts (polled: a read
    # while engagement restarts comes back without it, by design).
    def overlaid() -> bool:
        (item,) = http.get("/v1/users/me/bookmarks", headers=me.auth).json()["posts"]
        return item.get("likeCount") == 1 and item.get("likedByMe") is True

    assert wait_until(overlaid, timeout=10.0, interval=0.25)


def test_bookmarks_are_private(http):
    me, other, author = sign_up(http, "b"), sign_up(http, "b"), sign_up(http, "b")
    saved = post(http, author, "mine to keep")
    bookmark(http, me, saved["id"])
    assert bookmarked(http, other) == []
    # Another user's unbookmark touches only their own (empty) list.
    unbookmark(http, other, saved["id"])
    assert bookmarked(http, me) == [saved["id"]]
    # There is no path to anyone else's bookmarks, and none without a token.
    assert http.get(f"/v1/users/{me.id}/bookmarks", headers=other.auth).status_code == 404
    assert http.get("/v1/users/me/bookmarks").status_code == 401
    assert http.put(f"/v1/users/me/bookmarks/{saved['id']}").status_code == 401


def test_bookmarks_page_most_recently_bookmarked_first(http):
    me, author = sign_up(http, "b"), sign_up(http, "b")
    posts = [post(http, author, f"post {i}")["id"] for i in range(5)]
    # Bookmarked in an order other than the posts' own.
    order = [posts[2], posts[0], posts[4], posts[1], posts[3]]
    for post_id in order:
        bookmark(http, me, post_id)
    # Bookmarking an old one again does not move it.
    bookmark(http, me, posts[2])
    pages = bookmarked_pages(http, me, page_size=2)
    assert pages == [order[::-1][0:2], order[::-1][2:4], order[::-1][4:5]]


def test_a_deleted_post_drops_out_of_bookmarks(http):
    me, author = sign_up(http, "b"), sign_up(http, "b")
    kept, gone, last = (post(http, author, f"post {i}")["id"] for i in range(3))
    for post_id in (kept, gone, last):
        bookmark(http, me, post_id)
    http.delete(f"/v1/posts/{gone}", headers=author.auth).raise_for_status()
    assert bookmarked(http, me) == [last, kept]
    # Read again (after the lazy clean-up) and across small pages: still gone.
    assert bookmarked(http, me, page_size=1) == [last, kept]
    # A deleted post cannot be bookmarked again.
    r = http.put(f"/v1/users/me/bookmarks/{gone}", headers=me.auth)
    assert r.status_code == 404, r.text


def test_unknown_posts_and_bad_ids(http):
    me = sign_up(http, "b")
    r = http.put("/v1/users/me/bookmarks/123456789", headers=me.auth)
    assert r.status_code == 404, r.text
    r = http.put("/v1/users/me/bookmarks/nope", headers=me.auth)
    assert r.status_code == 400 and "post_id" in error_message(r)
    r = http.delete("/v1/users/me/bookmarks/nope", headers=me.auth)
    assert r.status_code == 400 and "post_id" in error_message(r)
    # Removing a bookmark that was never there is fine (idempotent).
    assert http.delete("/v1/users/me/bookmarks/123456789", headers=me.auth).status_code == 200
    r = http.get("/v1/users/me/bookmarks", params={"pageToken": "forged"}, headers=me.auth)
    assert r.status_code == 400 and "page_token" in error_message(r)
    assert bookmarked(http, me) == []


def test_a_blockers_post_cannot_be_bookmarked_and_leaves_the_list(http):
    me, author = sign_up(http, "b"), sign_up(http, "b")
    saved, later = post(http, author, "saved before the block"), post(http, author, "after")
    bookmark(http, me, saved["id"])
    r = http.put(f"/v1/users/me/blocks/{me.id}", headers=author.auth)
    assert r.status_code == 200, r.text
    assert http.put(f"/v1/users/me/bookmarks/{later['id']}", headers=me.auth).status_code == 404
    assert bookmarked(http, me) == []
    # Lifted: the bookmark was kept.
    r = http.delete(f"/v1/users/me/blocks/{me.id}", headers=author.auth)
    assert r.status_code == 200, r.text
    assert bookmarked(http, me) == [saved["id"]]
