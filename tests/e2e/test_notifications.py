"""Notifications through Envoy's HTTP/JSON edge: the real follow, reply,
mention, repost, like and delete endpoints produce the events; the inbox is
read with GET /v1/notifications, marked with :markRead and watched live with
GET /v1/notifications:watch (one JSON object per line)."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from tests.e2e.edge import error_message, follow, post, sign_up, wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 10.0


def inbox(http: httpx.Client, user, **params) -> dict:
    r = http.get("/v1/notifications", params=params, headers=user.auth)
    assert r.status_code == 200, r.text
    return r.json()


def wait_inbox(http, user, predicate, timeout: float = DEADLINE) -> dict:
    page = wait_until(
        lambda: (lambda p: p if predicate(p["notifications"]) else None)(inbox(http, user)),
        timeout=timeout,
        interval=0.1,
    )
    assert page, f"inbox never matched; last: {inbox(http, user)}"
    return page


def of_kind(kind: str, post_id: str | None = None):
    def match(ns):
        return [
            n for n in ns if n["kind"] == f"NOTIFICATION_KIND_{kind}" and (post_id is None or n["postId"] == post_id)
        ]

    return match


def reply(http, author, parent_id: str, text: str) -> dict:
    r = http.post("/v1/posts", json={"text": text, "replyToId": parent_id}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()


def delete(http, author, post_id: str) -> None:
    r = http.delete(f"/v1/posts/{post_id}", headers=author.auth)
    assert r.status_code == 200, r.text


def like(http, user, post_id: str, action: str = "like") -> None:
    r = http.post(f"/v1/posts/{post_id}:{action}", json={}, headers=user.auth)
    assert r.status_code == 200, r.text


# -- one kind each -------------------------------------------------------------------


def test_follow_notifies_the_followee(http):
    star, fan = sign_up(http, "nf"), sign_up(http, "nf")
    follow(http, fan, star)
    page = wait_inbox(http, star, of_kind("FOLLOW"))
    [n] = page["notifications"]
    assert n["actorIds"] == [fan.id] and n["actorCount"] == 1 and n["postId"] == ""
    assert n["text"] == f"{fan.username.upper()} followed you"
    assert n["read"] is False and page["unreadCount"] == 1
    assert inbox(http, fan)["notifications"] == [], "the follower is told nothing"


def test_reply_notifies_the_parent_author_and_deleting_it_withdraws_the_notice(http):
    author, replier = sign_up(http, "nr"), sign_up(http, "nr")
    parent = post(http, author, "thoughts?")
    answer = reply(http, replier, parent["id"], "yes!")
    [n] = of_kind("REPLY")(wait_inbox(http, author, of_kind("REPLY", answer["id"]))["notifications"])
    assert n["actorIds"] == [replier.id] and n["text"] == f"{replier.username.upper()} replied to your post"

    delete(http, replier, answer["id"])
    wait_inbox(http, author, lambda ns: not of_kind("REPLY")(ns), timeout=5.0)


def test_mention_notifies_the_mentioned_user_and_deleting_the_post_withdraws_it(http):
    mentioned, author = sign_up(http, "nm"), sign_up(http, "nm")
    mentioning = post(http, author, f"hello @{mentioned.username}, and @nobody_here_zz")
    [n] = of_kind("MENTION")(wait_inbox(http, mentioned, of_kind("MENTION", mentioning["id"]))["notifications"])
    assert n["text"] == f"{author.username.upper()} mentioned you" and n["actorIds"] == [author.id]

    delete(http, author, mentioning["id"])
    wait_inbox(http, mentioned, lambda ns: not of_kind("MENTION")(ns), timeout=5.0)


def test_repost_notifies_the_original_author_about_the_original(http):
    # Needs POST /v1/posts/{id}:repost and reply/repost author ids on post events (posts service).
    author, reposter = sign_up(http, "np"), sign_up(http, "np")
    original = post(http, author, "worth sharing")
    r = http.post(f"/v1/posts/{original['id']}:repost", json={}, headers=reposter.auth)
    assert r.status_code == 200, r.text
    repost = r.json()
    [n] = of_kind("REPOST")(wait_inbox(http, author, of_kind("REPOST", original["id"]))["notifications"])
    assert n["actorIds"] == [reposter.id] and n["text"] == f"{reposter.username.upper()} reposted your post"

    # Deleting the repost takes its author out of the original's repost group.
    delete(http, reposter, repost["id"])
    wait_inbox(http, author, lambda ns: not of_kind("REPOST")(ns), timeout=5.0)


def test_likes_group_per_post_and_liking_again_counts_once(http):
    # Needs the engagement service (POST /v1/posts/{id}:like publishing like events).
    author = sign_up(http, "nl")
    fans = [sign_up(http, "nl") for _ in range(5)]
    liked = post(http, author, "like this")
    for fan in fans:
        like(http, fan, liked["id"])
    like(http, author, liked["id"])  # your own like is nobody's news
    like(http, fans[0], liked["id"], "unlike")
    like(http, fans[0], liked["id"])  # like, unlike, like again: still one actor

    page = wait_inbox(http, author, lambda ns: any(n["actorCount"] >= 5 for n in of_kind("LIKE")(ns)))
    time.sleep(1.0)  # let any (wrong) extra notice or actor arrive
    page = inbox(http, author)
    [n] = of_kind("LIKE", liked["id"])(page["notifications"])
    assert n["actorCount"] == 5 and sorted(n["actorIds"]) == sorted(f.id for f in fans)
    assert author.id not in n["actorIds"]
    assert n["text"].endswith(" and 4 others liked your post")
    assert len(page["notifications"]) == 1


def test_renamed_actor_shows_under_the_new_name(http):
    star, fan = sign_up(http, "nn"), sign_up(http, "nn")
    follow(http, fan, star)
    wait_inbox(http, star, of_kind("FOLLOW"))
    r = http.patch("/v1/users/me", json={"displayName": "Brand New Name"}, headers=fan.auth)
    assert r.status_code == 200, r.text
    # Texts are built at read time; name caches hold a few seconds.
    wait_inbox(http, star, lambda ns: ns and ns[0]["text"] == "Brand New Name followed you", timeout=15.0)


# -- read state -----------------------------------------------------------------------


def test_mark_read_marks_everything_and_zeroes_the_unread_count(http):
    user = sign_up(http, "nk")
    followers = [sign_up(http, "nk") for _ in range(2)]
    parent = post(http, user, "reply to me")
    for f in followers:
        follow(http, f, user)
    reply(http, followers[0], parent["id"], "replying")
    page = wait_inbox(
        http, user, lambda ns: of_kind("REPLY")(ns) and any(n["actorCount"] == 2 for n in of_kind("FOLLOW")(ns))
    )
    assert page["unreadCount"] == 2

    r = http.post("/v1/notifications:markRead", json={}, headers=user.auth)
    assert r.status_code == 200, r.text
    assert r.json()["marked"] == 2
    page = inbox(http, user)
    assert page["unreadCount"] == 0 and all(n["read"] for n in page["notifications"])
    r = http.post("/v1/notifications:markRead", json={"upToId": page["notifications"][0]["id"]}, headers=user.auth)
    assert r.status_code == 200 and r.json()["marked"] == 0


# -- live ------------------------------------------------------------------------------


class Watcher:
    """Reads GET /v1/notifications:watch on a thread; events arrive on `self.events`."""

    def __init__(self, edge_url: str, token: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.status: int | None = None
        self.lines = 0
        self._ready = threading.Event()
        self._client = httpx.Client(base_url=edge_url, timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, args=(token,), daemon=True)
        self._thread.start()
        # Headers come once the server is subscribed: nothing later is missed.
        assert self._ready.wait(10), "watch stream did not open"

    def _run(self, token: str) -> None:
        try:
            with self._client.stream(
                "GET", "/v1/notifications:watch", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                self.status = r.status_code
                self._ready.set()
                for line in r.iter_lines():
                    if line.strip():
                        self.lines += 1
                        event = json.loads(line)
                        if event.get("notification") or event.get("removedId"):
                            self.events.put(event)
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()

    def next(self, timeout: float) -> dict | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._client.close()


def test_watch_streams_a_new_notification_live(http, edge_url):
    user, fan, stranger = sign_up(http, "nw"), sign_up(http, "nw"), sign_up(http, "nw")
    watcher = Watcher(edge_url, user.token)
    try:
        assert watcher.status == 200
        follow(http, stranger, fan)  # someone else's news: not on this stream
        follow(http, fan, user)
        event = watcher.next(timeout=DEADLINE)
        assert event is not None, "no notification arrived live"
        n = event["notification"]
        assert n["kind"] == "NOTIFICATION_KIND_FOLLOW" and n["actorIds"] == [fan.id]
        assert n["text"] == f"{fan.username.upper()} followed you" and n["read"] is False
        # The same notification as the inbox lists.
        assert inbox(http, user)["notifications"][0]["id"] == n["id"]
    finally:
        watcher.close()


def test_watch_tells_a_withdrawn_notification(http, edge_url):
    author, replier = sign_up(http, "nw"), sign_up(http, "nw")
    parent = post(http, author, "go on")
    watcher = Watcher(edge_url, author.token)
    try:
        answer = reply(http, replier, parent["id"], "replying live")
        created = watcher.next(timeout=DEADLINE)
        assert created and created["notification"]["postId"] == answer["id"]
        delete(http, replier, answer["id"])
        removed = watcher.next(timeout=DEADLINE)
        assert removed and removed.get("removedId") == created["notification"]["id"]
    finally:
        watcher.close()


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/notifications"),
        ("GET", "/v1/notifications:watch"),
        ("POST", "/v1/notifications:markRead"),
    ],
)
def test_every_notifications_endpoint_needs_a_token(http, method, path):
    r = http.request(method, path, json={} if method == "POST" else None)
    assert r.status_code == 401, r.text
    assert error_message(r)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"pageSize": "-1"}, "page_size"),
        ({"pageSize": "lots"}, "pageSize"),  # refused at the edge, by the name sent
        ({"pageToken": "not-a-token"}, "page_token"),
    ],
    ids=["negative-size", "text-size", "bad-token"],
)
def test_bad_paging_is_400_naming_the_field(http, params, field):
    user = sign_up(http, "nb")
    r = http.get("/v1/notifications", params=params, headers=user.auth)
    assert r.status_code == 400, r.text
    assert field in error_message(r)


@pytest.mark.parametrize("up_to", ["abc", "-5", "99999999999999999999", "0"])
def test_bad_up_to_id_is_400(http, up_to):
    user = sign_up(http, "nb")
    r = http.post("/v1/notifications:markRead", json={"upToId": up_to}, headers=user.auth)
    assert r.status_code == 400, r.text
    assert "up_to_id" in error_message(r)
