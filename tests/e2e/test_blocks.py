"""Blocks, end to end through Envoy: the list, follows ending both ways,
refused follows, and what each side stops seeing."""

from __future__ import annotations

import pytest

from tests.e2e.edge import Account, error_message, follow, home_ids, post, sign_up, wait_until

pytestmark = pytest.mark.e2e


def block(http, who: Account, whom: Account) -> dict:
    r = http.put(f"/v1/users/me/blocks/{whom.id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def unblock(http, who: Account, whom: Account) -> dict:
    r = http.delete(f"/v1/users/me/blocks/{whom.id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def blocked_ids(http, who: Account, page_size: int = 100) -> list[str]:
    ids, token = [], ""
    while True:
        r = http.get("/v1/users/me/blocks", params={"pageSize": page_size, "pageToken": token}, headers=who.auth)
        assert r.status_code == 200, r.text
        ids += [u["id"] for u in r.json().get("users", [])]
        token = r.json().get("nextPageToken", "")
        if not token:
            return ids


def following_ids(http, who: Account) -> list[str]:
    r = http.get(f"/v1/users/{who.id}/following", params={"pageSize": 100})
    assert r.status_code == 200, r.text
    return [u["id"] for u in r.json().get("users", [])]


def test_block_is_idempotent_listed_paged_and_lifted(http):
    me = sign_up(http, "b")
    others = [sign_up(http, "x") for _ in range(3)]
    first = block(http, me, others[0])
    assert first["blocked"] is True and first.get("created") is True
    again = block(http, me, others[0])
    assert again.get("created", False) is False
    for other in others[1:]:
        block(http, me, other)
    assert sorted(blocked_ids(http, me, page_size=2)) == sorted(o.id for o in others)

    lifted = unblock(http, me, others[0])
    assert lifted.get("removed") is True
    assert unblock(http, me, others[0]).get("removed", False) is False
    assert others[0].id not in blocked_ids(http, me)


def test_blocking_yourself_or_nobody_is_refused(http):
    me = sign_up(http, "b")
    r = http.put(f"/v1/users/me/blocks/{me.id}", headers=me.auth)
    assert r.status_code == 400
    assert "user_id" in error_message(r) or "userId" in error_message(r)
    assert http.put("/v1/users/me/blocks/999999999999", headers=me.auth).status_code == 404
    assert http.put("/v1/users/me/blocks/nope", headers=me.auth).status_code == 400
    assert http.get("/v1/users/me/blocks").status_code == 401


def test_block_ends_follows_both_ways_and_refuses_new_ones(http):
    blocker, blocked = sign_up(http, "b"), sign_up(http, "x")
    follow(http, blocker, blocked)
    follow(http, blocked, blocker)
    block(http, blocker, blocked)
    assert blocked.id not in following_ids(http, blocker)
    assert blocker.id not in following_ids(http, blocked)
    profile = http.get(f"/v1/users/{blocker.id}").json()
    assert profile.get("followerCount", 0) == 0 and profile.get("followingCount", 0) == 0

    # Refused either way (like Mastodon and Twitter: 403), while the block stands.
    for who, whom in ((blocked, blocker), (blocker, blocked)):
        r = http.put(f"/v1/users/me/following/{whom.id}", headers=who.auth)
        assert r.status_code == 403, r.text
    unblock(http, blocker, blocked)
    follow(http, blocked, blocker)


def test_a_block_hides_posts_already_in_the_blockers_home(http):
    blocker, blocked, friend = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "f")
    follow(http, blocker, blocked)
    follow(http, blocker, friend)
    follow(http, friend, blocked)
    theirs = post(http, blocked, "delivered before the block")
    assert wait_until(lambda: theirs["id"] in home_ids(http, blocker), timeout=3.0)
    # The friend reposts it: a repost of a hidden author is hidden too.
    r = http.post(f"/v1/posts/{theirs['id']}:repost", headers=friend.auth)
    assert r.status_code == 200, r.text
    repost_id = r.json()["id"]
    kept = post(http, friend, "still shown")
    assert wait_until(lambda: kept["id"] in home_ids(http, blocker), timeout=3.0)

    block(http, blocker, blocked)
    shown = home_ids(http, blocker)
    assert theirs["id"] not in shown
    assert repost_id not in shown
    assert kept["id"] in shown
    # And it stays hidden after a while (fanout's purge, no reappearance).
    assert not wait_until(lambda: theirs["id"] in home_ids(http, blocker), timeout=1.0)


def test_the_blocked_user_cannot_see_the_blockers_posts(http):
    blocker, blocked, stranger = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "s")
    mine = post(http, blocker, "not for the blocked")
    block(http, blocker, blocked)
    assert http.get(f"/v1/posts/{mine['id']}", headers=blocked.auth).status_code == 404
    assert http.get(f"/v1/users/{blocker.id}/posts", headers=blocked.auth).status_code == 404
    assert http.get(f"/v1/posts/{mine['id']}/replies", headers=blocked.auth).status_code == 404
    # Everyone else still does.
    assert http.get(f"/v1/posts/{mine['id']}", headers=stranger.auth).status_code == 200
    assert http.get(f"/v1/posts/{mine['id']}").status_code == 200
    assert http.get(f"/v1/users/{blocker.id}/posts", headers=blocker.auth).status_code == 200
    # Nor reply to, quote or repost them.
    r = http.post("/v1/posts", json={"text": "a reply", "replyToId": mine["id"]}, headers=blocked.auth)
    assert r.status_code == 404, r.text
    r = http.post("/v1/posts", json={"text": "a quote", "repostOfId": mine["id"]}, headers=blocked.auth)
    assert r.status_code == 404, r.text
    assert http.post(f"/v1/posts/{mine['id']}:repost", headers=blocked.auth).status_code == 404
    assert http.post(f"/v1/posts/{mine['id']}:like", headers=blocked.auth).status_code == 404
    unblock(http, blocker, blocked)
    assert http.get(f"/v1/posts/{mine['id']}", headers=blocked.auth).status_code == 200


def test_replies_by_blocked_users_are_left_out_for_the_blocker(http):
    blocker, blocked, other = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "o")
    root = post(http, other, "a thread")

    def reply(author: Account, text: str) -> str:
        r = http.post("/v1/posts", json={"text": text, "replyToId": root["id"]}, headers=author.auth)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    bad, good = reply(blocked, "hidden reply"), reply(other, "shown reply")
    block(http, blocker, blocked)
    r = http.get(f"/v1/posts/{root['id']}/replies", headers=blocker.auth)
    assert r.status_code == 200, r.text
    ids = [p["id"] for p in r.json().get("posts", [])]
    assert good in ids and bad not in ids
    everyone = [p["id"] for p in http.get(f"/v1/posts/{root['id']}/replies").json().get("posts", [])]
    assert bad in everyone


def test_the_feed_leaves_blocked_authors_out(http):
    blocker, blocked, friend = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "f")
    follow(http, blocker, blocked)
    follow(http, blocker, friend)
    theirs = post(http, blocked, "ranked before the block")
    kept = post(http, friend, "a friend's post")
    assert wait_until(lambda: kept["id"] in home_ids(http, blocker) and theirs["id"] in home_ids(http, blocker), 3.0)

    def feed_ids() -> list[str]:
        r = http.get("/v1/feed", params={"pageSize": 50}, headers=blocker.auth)
        assert r.status_code == 200, r.text
        return [i["post"]["id"] for i in r.json().get("items", []) if "post" in i]

    assert theirs["id"] in feed_ids()  # a ranking is now cached
    block(http, blocker, blocked)
    shown = feed_ids()
    assert theirs["id"] not in shown and kept["id"] in shown


def test_a_blocked_actor_creates_no_notification_and_old_ones_are_hidden(http):
    blocker, blocked, other = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "o")
    mine = post(http, blocker, "like me")

    def notices() -> list[dict]:
        r = http.get("/v1/notifications", params={"pageSize": 50}, headers=blocker.auth)
        assert r.status_code == 200, r.text
        return r.json().get("notifications", [])

    def acted(actor: Account) -> bool:
        return any(actor.id in n.get("actorIds", []) for n in notices())

    http.post(f"/v1/posts/{mine['id']}:like", headers=blocked.auth)
    assert wait_until(lambda: acted(blocked), timeout=3.0)
    block(http, blocker, blocked)
    assert not acted(blocked)  # made before the block: hidden at read

    # Made after the block: never created (an unblock would show it otherwise).
    follow_attempt = http.put(f"/v1/users/me/following/{blocker.id}", headers=blocked.auth)
    assert follow_attempt.status_code == 403
    later = post(http, blocker, "another")
    http.post(f"/v1/posts/{later['id']}:like", headers=blocked.auth)
    http.post(f"/v1/posts/{later['id']}:like", headers=other.auth)
    assert wait_until(lambda: acted(other), timeout=3.0)
    unblock(http, blocker, blocked)
    assert not any(n.get("postId") == later["id"] and blocked.id in n.get("actorIds", []) for n in notices())


def test_search_leaves_blocked_authors_out_for_both_sides(http):
    blocker, blocked, other = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "o")
    word = f"blk{blocker.id[-9:]}"
    theirs, mine = post(http, blocked, f"{word} by the blocked"), post(http, blocker, f"{word} by the blocker")

    def found(who: Account) -> set[str]:
        r = http.get("/v1/search/posts", params={"q": word}, headers=who.auth)
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json().get("posts", [])}

    assert wait_until(lambda: found(other) == {theirs["id"], mine["id"]}, timeout=10, interval=0.1)
    block(http, blocker, blocked)
    # Search caches a viewer's hidden authors a few seconds at most.
    assert wait_until(lambda: found(blocker) == {mine["id"]}, timeout=8, interval=0.2)
    assert wait_until(lambda: found(blocked) == {theirs["id"]}, timeout=8, interval=0.2)
    assert found(other) == {theirs["id"], mine["id"]}


def test_blocked_users_cannot_message_each_other(http):
    blocker, blocked, other = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "o")
    r = http.post("/v1/conversations", json={"participantIds": [blocked.id]}, headers=blocker.auth)
    assert r.status_code == 200, r.text
    conversation = r.json()["id"]
    block(http, blocker, blocked)
    for who in (blocker, blocked):
        r = http.post(f"/v1/conversations/{conversation}/messages", json={"text": "hi"}, headers=who.auth)
        assert r.status_code == 403, r.text
    r = http.post("/v1/conversations", json={"participantIds": [blocker.id, other.id]}, headers=blocked.auth)
    assert r.status_code == 403, r.text
    # Others are unaffected, and an unblock lets them talk again.
    r = http.post("/v1/conversations", json={"participantIds": [other.id]}, headers=blocker.auth)
    assert r.status_code == 200, r.text
    unblock(http, blocker, blocked)
    r = http.post(f"/v1/conversations/{conversation}/messages", json={"text": "hi"}, headers=blocked.auth)
    assert r.status_code == 200, r.text


def test_thread_context_leaves_blocked_authors_out_and_is_404_for_the_blocked(http):
    blocker, blocked, other = sign_up(http, "b"), sign_up(http, "x"), sign_up(http, "o")

    def reply(author: Account, to: str, text: str) -> str:
        r = http.post("/v1/posts", json={"text": text, "replyToId": to}, headers=author.auth)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    root = post(http, blocked, "a thread by the soon blocked")
    middle = reply(other, root["id"], "in the middle")
    hidden_reply, shown_reply = reply(blocked, middle, "hidden below"), reply(other, middle, "shown below")
    mine = post(http, blocker, "the blocker's own")
    block(http, blocker, blocked)

    r = http.get(f"/v1/posts/{middle}/context", headers=blocker.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["post"]["id"] == middle
    assert root["id"] not in [p["id"] for p in body.get("ancestors", [])]
    replies = [p["id"] for p in body.get("replies", [])]
    assert shown_reply in replies and hidden_reply not in replies
    # Signed out, the thread is whole.
    whole = http.get(f"/v1/posts/{middle}/context").json()
    assert root["id"] in [p["id"] for p in whole.get("ancestors", [])]
    assert hidden_reply in [p["id"] for p in whole.get("replies", [])]
    assert http.get(f"/v1/posts/{mine['id']}/context", headers=blocked.auth).status_code == 404
