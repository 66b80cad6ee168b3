"""Direct conversations through Envoy: create or reuse, sends (idempotent, with
product cards), paged history both ways, unread counts and read marks, leave,
the participants-only rule, and the live stream GET /v1/conversations:watch."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import media_files
from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_many, sign_up_seller
from tests.e2e.edge import Account, error_message, sign_up

DEADLINE = 10.0


def create(http, who: Account, *others: Account, expect: int = 200) -> dict:
    r = http.post("/v1/conversations", json={"participantIds": [o.id for o in others]}, headers=who.auth)
    assert r.status_code == expect, r.text
    return r.json()


def send(http, who: Account, conversation_id: str, text: str = "hello", **fields) -> httpx.Response:
    body = {"text": text, **fields}
    for _ in range(50):
        r = http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=who.auth)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers.get("retry-after", "0.2") or 0.2))  # rate limited: wait our turn
    return r


def sent(http, who: Account, conversation_id: str, text: str = "hello", **fields) -> dict:
    r = send(http, who, conversation_id, text, **fields)
    assert r.status_code == 200, r.text
    return r.json()


def messages(http, who: Account, conversation_id: str, **params) -> httpx.Response:
    return http.get(f"/v1/conversations/{conversation_id}/messages", params=params, headers=who.auth)


def conversations(http, who: Account) -> list[dict]:
    r = http.get("/v1/conversations", params={"pageSize": 100}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()["conversations"]


def unread(http, who: Account, conversation_id: str) -> int:
    return next(c.get("unreadCount", 0) for c in conversations(http, who) if c["id"] == conversation_id)


# -- create or reuse --------------------------------------------------------------


def test_the_same_people_get_the_same_conversation(http):
    a, b, c = sign_up(http, "cv"), sign_up(http, "cv"), sign_up(http, "cv")
    first = create(http, a, b)
    assert sorted(first["participantIds"]) == sorted([a.id, b.id])
    assert create(http, a, b)["id"] == first["id"]
    assert create(http, b, a)["id"] == first["id"]
    # Naming oneself changes nothing.
    r = http.post("/v1/conversations", json={"participantIds": [a.id, b.id]}, headers=b.auth)
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    group = create(http, a, b, c)
    assert group["id"] != first["id"]
    assert create(http, c, b, a)["id"] == group["id"]
    assert {x["id"] for x in conversations(http, b)} >= {first["id"], group["id"]}


def test_a_group_holds_at_most_twenty_people(http):
    owner = sign_up(http, "cg")
    others = sign_up_many(http, 20, "cg")
    full = create(http, owner, *others[:19])
    assert len(full["participantIds"]) == 20
    r = http.post("/v1/conversations", json={"participantIds": [o.id for o in others]}, headers=owner.auth)
    assert r.status_code == 400 and "participantIds" in r.text, r.text


@pytest.mark.parametrize(
    "ids, status",
    [([], 400), (["self"], 400), (["12x"], 400), (["1"], 404)],
)
def test_bad_participants_are_refused(http, ids, status):
    a = sign_up(http, "cb")
    ids = [a.id if i == "self" else i for i in ids]
    r = http.post("/v1/conversations", json={"participantIds": ids}, headers=a.auth)
    assert r.status_code == status, r.text
    assert "participant" in error_message(r).lower()


# -- sending -------------------------------------------------------------------------


def test_a_repeated_client_message_id_returns_the_first_message(http):
    a, b = sign_up(http, "ci"), sign_up(http, "ci")
    cid = create(http, a, b)["id"]
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: sent(http, a, cid, "only once", clientMessageId=key), range(4)))
    assert len({m["id"] for m in answers}) == 1
    assert answers[0]["clientMessageId"] == key
    listed = messages(http, b, cid).json()["messages"]
    assert [m["id"] for m in listed] == [answers[0]["id"]]
    # Another key is another message.
    assert sent(http, a, cid, "again", clientMessageId=str(uuid.uuid4()))["id"] != answers[0]["id"]


def test_bad_messages_are_400_naming_the_field(http):
    a, b = sign_up(http, "cm"), sign_up(http, "cm")
    cid = create(http, a, b)["id"]
    for body, field in [
        ({"text": ""}, "text"),
        ({"text": "x" * 2001}, "text"),
        ({"text": "x", "productIds": ["1"]}, "productIds[0]"),
        ({"text": "x", "mediaIds": ["1"]}, "mediaIds[0]"),
        ({"text": "x", "clientMessageId": "k" * 65}, "clientMessageId"),
    ]:
        r = send(http, a, cid, **body)
        assert r.status_code == 400 and field in r.text, (body, r.text)
    assert sent(http, a, cid, "é" * 2000)["text"] == "é" * 2000  # code points, not bytes
    assert messages(http, b, cid).json()["messages"][0]["text"] == "é" * 2000


def test_a_message_with_a_product_card_can_be_bought_from(http):
    seller, buyer = sign_up_seller(http), sign_up(http, "cp")
    product = create_product(http, seller, stock=5, price_minor=4200, title="Blue kettle")
    cid = create(http, seller, buyer)["id"]
    message = sent(http, seller, cid, "this one?", productIds=[product["id"]])
    assert message["productIds"] == [product["id"]]
    card = messages(http, buyer, cid).json()["messages"][0]["products"][0]
    assert card["id"] == product["id"] and card["title"] == "Blue kettle"
    assert card["priceMinor"] == "4200" and card["sellerId"] == seller.id and card["active"] is True
    add_to_cart(http, buyer, card["id"], 1)
    r = checkout(http, buyer)
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["productId"] == product["id"]


def test_a_message_carries_the_senders_own_media_only(http):
    a, b = sign_up(http, "cd"), sign_up(http, "cd")
    cid = create(http, a, b)["id"]
    mine = http.post("/v1/media", content=media_files.png(), headers={"Content-Type": "image/png", **a.auth})
    theirs = http.post("/v1/media", content=media_files.png(), headers={"Content-Type": "image/png", **b.auth})
    assert mine.status_code == 200 and theirs.status_code == 200, (mine.text, theirs.text)
    message = sent(http, a, cid, "", mediaIds=[mine.json()["mediaId"]])
    assert message["mediaIds"] == [mine.json()["mediaId"]]
    listed = messages(http, b, cid).json()["messages"][0]
    assert listed["media"][0]["mediaId"] == mine.json()["mediaId"] and listed["media"][0]["url"]
    r = send(http, a, cid, "not mine", mediaIds=[theirs.json()["mediaId"]])
    assert r.status_code == 403 and "media_ids[0]" in r.text, r.text


# -- history ---------------------------------------------------------------------------


def test_two_thousand_messages_page_older_and_back_newer_for_every_participant(http):
    people = sign_up_many(http, 5, "ch")
    cid = create(http, people[0], *people[1:])["id"]

    def send_share(i: int) -> list[str]:
        who = people[i % len(people)]
        # A client per sender: the shared one, used from 50 threads while the
        # gateway answered many sends 429, failed reads with EBADF (two CI runs).
        with httpx.Client(base_url=http.base_url, timeout=http.timeout) as own:
            return [sent(own, who, cid, f"m{i}-{n}")["id"] for n in range(40)]

    with ThreadPoolExecutor(50) as pool:
        ids = [m for share in pool.map(send_share, range(50)) for m in share]
    assert len(ids) == 2000
    newest_first = sorted(ids, key=int, reverse=True)
    for reader in people:
        older, token, pages = [], "", []
        while True:
            page = messages(http, reader, cid, pageSize=100, **({"pageToken": token} if token else {})).json()
            pages.append(page)
            older += [m["id"] for m in page["messages"]]
            token = page.get("nextPageToken", "")
            if not token:
                break
        assert older == newest_first, f"{reader.username}: older walk differs"
        # Back towards newer from the oldest page.
        newer, token = list(pages[-1]["messages"]), pages[-1].get("previousPageToken", "")
        newer = [m["id"] for m in newer]
        while token:
            page = messages(http, reader, cid, pageSize=100, pageToken=token).json()
            newer = [m["id"] for m in page["messages"]] + newer
            token = page.get("previousPageToken", "")
        assert newer == newest_first, f"{reader.username}: newer walk differs"


def test_a_bad_page_token_is_400(http):
    a, b = sign_up(http, "ct"), sign_up(http, "ct")
    cid = create(http, a, b)["id"]
    r = messages(http, a, cid, pageToken="nope")
    assert r.status_code == 400 and "pageToken" in r.text


# -- unread counts and leaving -------------------------------------------------------------


def test_unread_counts_and_read_marks(http):
    a, b = sign_up(http, "cu"), sign_up(http, "cu")
    cid = create(http, a, b)["id"]
    first = sent(http, a, cid, "one")
    sent(http, a, cid, "two")
    sent(http, a, cid, "three")
    assert unread(http, b, cid) == 3
    assert unread(http, a, cid) == 0  # one's own messages are read
    r = http.post(f"/v1/conversations/{cid}:markRead", json={"upToId": first["id"]}, headers=b.auth)
    assert r.status_code == 200 and r.json()["unreadCount"] == 2
    r = http.post(f"/v1/conversations/{cid}:markRead", json={}, headers=b.auth)
    assert r.status_code == 200 and r.json().get("unreadCount", 0) == 0
    # A mark never moves back.
    http.post(f"/v1/conversations/{cid}:markRead", json={"upToId": first["id"]}, headers=b.auth)
    assert unread(http, b, cid) == 0
    sent(http, a, cid, "four")
    assert unread(http, b, cid) == 1
    # Newest activity first.
    other = create(http, b, sign_up(http, "cu"))["id"]
    assert [c["id"] for c in conversations(http, b)][:2] == [other, cid]
    sent(http, a, cid, "five")
    assert [c["id"] for c in conversations(http, b)][:2] == [cid, other]
    assert conversations(http, b)[0]["lastMessage"]["text"] == "five"


def test_one_conversation_is_read_by_its_participants_only(http):
    a, b, stranger = sign_up(http, "cg"), sign_up(http, "cg"), sign_up(http, "cg")
    cid = create(http, a, b)["id"]
    sent(http, a, cid, "one")
    sent(http, a, cid, "two")
    r = http.get(f"/v1/conversations/{cid}", headers=b.auth)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["id"] == cid and sorted(got["participantIds"]) == sorted([a.id, b.id])
    assert got["unreadCount"] == 2 and got["lastMessage"]["text"] == "two"
    assert got == next(c for c in conversations(http, b) if c["id"] == cid)
    assert http.get(f"/v1/conversations/{cid}", headers=stranger.auth).status_code == 404
    assert http.get(f"/v1/conversations/{cid}").status_code == 401
    r = http.get("/v1/conversations/abc", headers=a.auth)
    assert r.status_code == 400 and "conversation_id" in error_message(r)


def test_the_conversation_list_pages_by_latest_activity(http):
    me = sign_up(http, "cs")
    others = sign_up_many(http, 5, "cs")
    ids = [create(http, me, o)["id"] for o in others]
    sent(http, others[0], ids[0], "brings the first to the top")
    expected = [ids[0], *reversed(ids[1:])]
    seen, token = [], ""
    while True:
        r = http.get("/v1/conversations", params={"pageSize": 2, "pageToken": token}, headers=me.auth)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["conversations"]) <= 2
        seen += [c["id"] for c in page["conversations"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert seen == expected
    assert http.get("/v1/conversations", params={"pageToken": "x"}, headers=me.auth).status_code == 400


def test_a_participant_who_leaves_gets_404_and_the_others_go_on(http):
    a, b, c = sign_up(http, "cl"), sign_up(http, "cl"), sign_up(http, "cl")
    cid = create(http, a, b, c)["id"]
    sent(http, a, cid, "before")
    r = http.post(f"/v1/conversations/{cid}:leave", json={}, headers=b.auth)
    assert r.status_code == 200, r.text
    assert messages(http, b, cid).status_code == 404
    assert send(http, b, cid).status_code == 404
    assert http.post(f"/v1/conversations/{cid}:leave", json={}, headers=b.auth).status_code == 404
    assert cid not in [x["id"] for x in conversations(http, b)]
    listed = next(x for x in conversations(http, a) if x["id"] == cid)
    assert sorted(listed["participantIds"]) == sorted([a.id, c.id])
    sent(http, a, cid, "after")
    assert [m["text"] for m in messages(http, c, cid).json()["messages"]] == ["after", "before"]
    # The same three people again make a new conversation.
    assert create(http, a, b, c)["id"] != cid


def test_only_participants_can_see_a_conversation(http):
    a, b, stranger = sign_up(http, "cn"), sign_up(http, "cn"), sign_up(http, "cn")
    cid = create(http, a, b)["id"]
    sent(http, a, cid, "private")
    assert messages(http, stranger, cid).status_code == 404
    assert send(http, stranger, cid).status_code == 404
    assert http.post(f"/v1/conversations/{cid}:markRead", json={}, headers=stranger.auth).status_code == 404
    assert http.post(f"/v1/conversations/{cid}:leave", json={}, headers=stranger.auth).status_code == 404
    assert messages(http, stranger, "999999999").status_code == 404
    assert messages(http, stranger, "abc").status_code == 400
    assert conversations(http, stranger) == []


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/v1/conversations"), ("POST", "/v1/conversations"), ("GET", "/v1/conversations:watch")],
)
def test_every_conversations_endpoint_needs_a_token(http, method, path):
    assert http.request(method, path).status_code == 401


# -- live ------------------------------------------------------------------------------------


class Watcher:
    """Reads GET /v1/conversations:watch on a thread; messages arrive on `self.events`."""

    def __init__(self, edge_url: str, token: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.status: int | None = None
        self._ready = threading.Event()
        self._client = httpx.Client(base_url=edge_url, timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, args=(token,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "watch stream did not open"

    def _run(self, token: str) -> None:
        try:
            with self._client.stream(
                "GET", "/v1/conversations:watch", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                self.status = r.status_code
                self._ready.set()
                for line in r.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        if event.get("message"):
                            self.events.put(event["message"])
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


def test_watch_delivers_a_new_message_to_participants_only(http, edge_url):
    a, b, stranger = sign_up(http, "cw"), sign_up(http, "cw"), sign_up(http, "cw")
    seller = sign_up_seller(http)
    product = create_product(http, seller, stock=1, title="Live lamp")
    cid = create(http, a, b)["id"]
    watcher, outsider = Watcher(edge_url, b.token), Watcher(edge_url, stranger.token)
    try:
        assert watcher.status == 200
        started = time.monotonic()
        message = sent(http, a, cid, "live!", productIds=[product["id"]])
        event = watcher.next(timeout=DEADLINE)
        assert event is not None, "no message arrived live"
        assert time.monotonic() - started < 5.0
        assert event["id"] == message["id"] and event["text"] == "live!" and event["conversationId"] == cid
        assert event["products"][0]["title"] == "Live lamp"
        assert outsider.next(timeout=1.0) is None
    finally:
        watcher.close()
        outsider.close()
