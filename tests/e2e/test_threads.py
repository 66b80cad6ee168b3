"""Thread context (GET /v1/posts/{postId}/context), end to end through
Envoy: ancestors root first, the post, its replies paged, and what a
deleted ancestor or a hidden author does to the thread."""

from __future__ import annotations

import pytest

from tests.e2e.edge import Account, error_message, post, sign_up

pytestmark = pytest.mark.e2e


def reply(http, author: Account, parent_id: str, text: str) -> str:
    r = http.post("/v1/posts", json={"text": text, "replyToId": parent_id}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def context(http, post_id: str, who: Account | None = None, **params) -> dict:
    r = http.get(f"/v1/posts/{post_id}/context", params=params, headers=who.auth if who else {})
    assert r.status_code == 200, r.text
    return r.json()


def ids(posts: list[dict]) -> list[str]:
    return [p["id"] for p in posts]


def all_replies(http, post_id: str, page_size: int) -> list[list[str]]:
    pages, token = [], ""
    for _ in range(100):
        body = context(http, post_id, pageSize=page_size, **({"pageToken": token} if token else {}))
        assert body["post"]["id"] == post_id
        pages.append(ids(body["replies"]))
        token = body["nextPageToken"]
        if not token:
            return pages
    raise AssertionError("paging never ended")


@pytest.fixture
def thread(http):
    """root <- a <- b <- c, each by a different author, and c's replies."""
    users = [sign_up(http, "th") for _ in range(4)]
    root = post(http, users[0], "root")["id"]
    a = reply(http, users[1], root, "level 1")
    b = reply(http, users[2], a, "level 2")
    c = reply(http, users[3], b, "level 3")
    return users, [root, a, b, c]


def test_ancestors_come_root_first_down_to_the_parent(http, thread):
    users, (root, a, b, c) = thread
    body = context(http, c)
    assert ids(body["ancestors"]) == [root, a, b]
    assert body["post"]["id"] == c and body["post"]["text"] == "level 3"
    assert body["replies"] == [] and body["nextPageToken"] == ""
    # Hydrated like any post: authors attached.
    assert [p["author"]["id"] for p in body["ancestors"]] == [u.id for u in users[:3]]
    # Halfway down: ancestors above, the next level as replies.
    body = context(http, b, users[0])
    assert ids(body["ancestors"]) == [root, a]
    assert ids(body["replies"]) == [c]


def test_a_post_with_no_parent_has_no_ancestors(http, thread):
    _, (root, a, _b, _c) = thread
    body = context(http, root)
    assert body["ancestors"] == []
    assert body["post"]["id"] == root
    assert ids(body["replies"]) == [a]


def test_replies_page_oldest_first_exactly_once(http, thread):
    users, (root, a, b, c) = thread
    replies = [reply(http, users[i % 4], c, f"reply {i}") for i in range(5)]
    assert all_replies(http, c, page_size=2) == [replies[0:2], replies[2:4], replies[4:5]]
    # Every page carries the same ancestors and post.
    token = context(http, c, pageSize=2)["nextPageToken"]
    body = context(http, c, pageSize=2, pageToken=token)
    assert ids(body["ancestors"]) == [root, a, b] and body["post"]["id"] == c


def test_a_deleted_ancestor_is_left_out_and_the_walk_goes_on(http, thread):
    users, (root, a, b, c) = thread
    http.delete(f"/v1/posts/{a}", headers=users[1].auth).raise_for_status()
    assert ids(context(http, c)["ancestors"]) == [root, b]
    # The deleted post itself has no context, and is no longer a reply of root.
    assert http.get(f"/v1/posts/{a}/context").status_code == 404
    assert context(http, root)["replies"] == []


def test_unknown_post_bad_id_and_bad_token(http):
    assert http.get("/v1/posts/123456789/context").status_code == 404
    r = http.get("/v1/posts/nope/context")
    assert r.status_code == 400 and "post_id" in error_message(r)
    root = post(http, sign_up(http, "th"), "alone")["id"]
    r = http.get(f"/v1/posts/{root}/context", params={"pageToken": "forged"})
    assert r.status_code == 400 and "page_token" in error_message(r)


def test_muted_authors_are_left_out_for_the_muter_only(http, thread):
    users, (root, a, b, c) = thread
    viewer = sign_up(http, "th")
    r = http.put(f"/v1/users/me/mutes/{users[1].id}", json={}, headers=viewer.auth)
    assert r.status_code == 200, r.text
    assert ids(context(http, c, viewer)["ancestors"]) == [root, b]
    assert ids(context(http, root, viewer)["replies"]) == []
    assert ids(context(http, c)["ancestors"]) == [root, a, b]


def test_a_blockers_posts_leave_the_blocked_users_thread(http, thread):
    users, (root, a, b, c) = thread
    viewer = sign_up(http, "th")
    # The author of `a` blocks the viewer: `a` is gone from the viewer's thread
    # and its own context is 404 for them, as if absent.
    r = http.put(f"/v1/users/me/blocks/{viewer.id}", headers=users[1].auth)
    assert r.status_code == 200, r.text
    assert ids(context(http, c, viewer)["ancestors"]) == [root, b]
    assert http.get(f"/v1/posts/{a}/context", headers=viewer.auth).status_code == 404
    assert ids(context(http, a)["ancestors"]) == [root]
